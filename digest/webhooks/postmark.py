"""Postmark webhooks: HTTP Basic credentials on the webhook URL, one JSON event per request.

Postmark does not sign its webhooks; the URL is configured with a user and password
(``https://user:password@host/webhooks/postmark``) which Postmark sends as HTTP Basic
``Authorization``. Both are compared in constant time.

``RecordType`` says what happened (Delivery, Bounce, SpamComplaint, Open, Click,
SubscriptionChange); for bounces the ``Type`` field refines it. Only ``HardBounce`` and
``BadEmailAddress`` are hard bounces: ``SpamNotification`` means a filter, not the recipient,
refused the message, so it is a soft bounce rather than a complaint. Bounce and spam-complaint
records carry Postmark's own ``ID``; the other record types are keyed by what makes them unique.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from digest.config import Settings
from digest.webhooks.events import (
    BounceKind,
    EventType,
    MissingSignatureError,
    NormalizedEvent,
    NotConfiguredError,
    PayloadError,
    SignatureError,
    from_iso,
    header,
    load_json,
    make_key,
    require_object,
    text,
)

NAME = "postmark"

_RECORD_TYPES = {
    "Delivery": EventType.DELIVERED,
    "SpamComplaint": EventType.COMPLAINED,
    "Open": EventType.OPENED,
    "Click": EventType.CLICKED,
    "SubscriptionChange": EventType.UNSUBSCRIBED,
}

# Bounce ``Type`` -> (event type, bounce kind). Unlisted types are unknown.
_BOUNCE_TYPES: dict[str, tuple[EventType, BounceKind | None]] = {
    "HardBounce": (EventType.BOUNCED, BounceKind.HARD),
    "BadEmailAddress": (EventType.BOUNCED, BounceKind.HARD),
    "SoftBounce": (EventType.BOUNCED, BounceKind.SOFT),
    "SpamNotification": (EventType.BOUNCED, BounceKind.SOFT),
    "VirusNotification": (EventType.BOUNCED, BounceKind.SOFT),
    "Transient": (EventType.DEFERRED, None),
    "DnsError": (EventType.DEFERRED, None),
    "OpenRelayTest": (EventType.DEFERRED, None),
    "SpamComplaint": (EventType.COMPLAINED, None),
    "Unsubscribe": (EventType.UNSUBSCRIBED, None),
    "ManualSuppression": (EventType.UNSUBSCRIBED, None),
    "Blocked": (EventType.REJECTED, None),
    "ManuallyDeactivated": (EventType.REJECTED, None),
    "Unconfirmed": (EventType.REJECTED, None),
    "DMARCPolicy": (EventType.REJECTED, None),
    "SMTPApiError": (EventType.REJECTED, None),
    "TemplateRenderingFailed": (EventType.REJECTED, None),
}


def configured(settings: Settings) -> bool:
    password = settings.postmark_webhook_password
    return bool(settings.postmark_webhook_user and password and password.get_secret_value())


def verify(headers: Mapping[str, str], body: bytes, settings: Settings) -> None:
    """Check the HTTP Basic credentials; raise ``SignatureError`` unless they match."""
    password = settings.postmark_webhook_password
    if not settings.postmark_webhook_user or password is None:
        raise NotConfiguredError("the Postmark webhook credentials are not set")
    authorization = header(headers, "Authorization")
    if not authorization:
        raise MissingSignatureError("no HTTP Basic credentials")
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        raise MissingSignatureError("no HTTP Basic credentials")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("malformed HTTP Basic credentials") from None
    user, colon, given_password = decoded.partition(b":")
    # Compare digests so that neither the lengths nor the contents leak through timing, and
    # evaluate both comparisons whatever the first one says.
    user_ok = hmac.compare_digest(_digest(user), _digest(settings.postmark_webhook_user.encode()))
    password_ok = hmac.compare_digest(
        _digest(given_password), _digest(password.get_secret_value().encode())
    )
    if not (colon and user_ok and password_ok):
        raise SignatureError("wrong HTTP Basic credentials")


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


def parse(body: bytes, headers: Mapping[str, str] | None = None) -> list[NormalizedEvent]:
    """The one event of a Postmark webhook body."""
    payload = require_object(load_json(body), "the Postmark payload")
    return [_event(payload, hashlib.sha256(body).hexdigest())]


def _event(payload: dict[str, Any], body_hash: str) -> NormalizedEvent:
    record_type = text(payload.get("RecordType"))
    if record_type is None and payload.get("RecordType") is not None:
        raise PayloadError("RecordType is not a string")
    event_type = _RECORD_TYPES.get(record_type or "", EventType.UNKNOWN)
    bounce: BounceKind | None = None
    if record_type == "Bounce":
        event_type, bounce = _BOUNCE_TYPES.get(
            text(payload.get("Type")) or "", (EventType.UNKNOWN, None)
        )
    elif record_type == "SubscriptionChange":
        event_type, bounce = _subscription_change(payload)

    provider_message_id = text(payload.get("MessageID"))
    recipient = text(payload.get("Email")) or text(payload.get("Recipient"))
    when = (
        payload.get("DeliveredAt")
        or payload.get("BouncedAt")
        or payload.get("ReceivedAt")
        or payload.get("ChangedAt")
    )
    record_id = text(payload.get("ID"))
    if record_type in ("Bounce", "SpamComplaint") and record_id:
        key = make_key(record_type, record_id)
    elif record_type == "Delivery" and provider_message_id and recipient:
        key = make_key(record_type, provider_message_id, recipient)
    elif record_type in ("Open", "Click", "SubscriptionChange") and provider_message_id:
        key = make_key(
            record_type,
            provider_message_id,
            recipient,
            text(when),
            text(payload.get("OriginalLink")),
            payload.get("SuppressSending"),
        )
    else:
        key = make_key(record_type or "unknown", "sha256", body_hash)
    description = " ".join(
        part
        for part in (text(payload.get("Description")), text(payload.get("Details")))
        if part is not None
    )
    return NormalizedEvent(
        provider=NAME,
        event_key=key,
        event_type=event_type,
        bounce=bounce,
        email=recipient,
        message_id=None,
        provider_message_id=provider_message_id,
        occurred_at=from_iso(when),
        description=description,
        raw=payload,
    )


def _subscription_change(payload: dict[str, Any]) -> tuple[EventType, BounceKind | None]:
    if payload.get("SuppressSending") is not True:
        return EventType.UNKNOWN, None  # a reactivation: nothing for us to act on
    reason = text(payload.get("SuppressionReason"))
    if reason == "HardBounce":
        return EventType.BOUNCED, BounceKind.HARD
    if reason == "SpamComplaint":
        return EventType.COMPLAINED, None
    return EventType.UNSUBSCRIBED, None
