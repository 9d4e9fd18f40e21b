"""Mailgun webhooks: an HMAC-SHA256 of ``timestamp + token`` inside the JSON body.

The body is ``{"signature": {"timestamp", "token", "signature"}, "event-data": {...}}``; the
signature is the hex HMAC-SHA256 of the timestamp followed by the token, keyed with the
webhook signing key. For a subaccount's domain Mailgun adds ``parent-signature``, made with the
primary account's key; either one matching is enough.

The signature does not cover ``event-data``, so two further checks matter: the timestamp must
be within ``TOLERANCE_SECONDS`` of our clock, and a token is accepted once (it is stored as the
event's ``replay_token``, unique per provider, so a captured signature cannot carry a second,
forged event). A retry of the same event is recognized by its key, ``event-data.id`` together
with the event's own timestamp (Mailgun guarantees the id unique only within a day).

``failed`` with ``severity`` ``permanent`` is a hard bounce, ``temporary`` a deferral (Mailgun
keeps trying). A permanent failure because the address is on Mailgun's own unsubscribe or
complaint list is reported as a rejection or a complaint instead.
"""

from __future__ import annotations

import hashlib
import hmac
import time
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
    address,
    angle_id,
    dig,
    from_unix,
    load_json,
    make_key,
    require_object,
    text,
)

NAME = "mailgun"
TOLERANCE_SECONDS = 300

_EVENT_TYPES = {
    "delivered": EventType.DELIVERED,
    "failed": EventType.BOUNCED,
    "rejected": EventType.REJECTED,
    "complained": EventType.COMPLAINED,
    "opened": EventType.OPENED,
    "clicked": EventType.CLICKED,
    "unsubscribed": EventType.UNSUBSCRIBED,
}


def configured(settings: Settings) -> bool:
    key = settings.mailgun_webhook_signing_key
    return key is not None and bool(key.get_secret_value())


def verify(
    headers: Mapping[str, str], body: bytes, settings: Settings, *, now: float | None = None
) -> None:
    """Check the signature block of the body; raise ``SignatureError`` unless it is genuine and
    fresh."""
    key = settings.mailgun_webhook_signing_key
    if key is None or not key.get_secret_value():
        raise NotConfiguredError("the Mailgun webhook signing key is not set")
    try:
        block = load_json(body).get("signature")
    except (PayloadError, AttributeError):
        raise MissingSignatureError("no Mailgun signature block") from None
    timestamp = text(dig(block, "timestamp"))
    token = text(dig(block, "token"))
    signatures = [text(dig(block, "signature")), text(dig(block, "parent-signature"))]
    if not timestamp or not token or not any(signatures):
        raise MissingSignatureError("no Mailgun signature block")
    expected = hmac.new(
        key.get_secret_value().encode("utf-8"),
        (timestamp + token).encode("utf-8"),
        hashlib.sha256,
    ).hexdigest()
    if not any(
        hmac.compare_digest(expected.encode(), given.lower().encode())
        for given in signatures
        if given and given.isascii()
    ):
        raise SignatureError("the Mailgun signature does not match")
    try:
        age = (time.time() if now is None else now) - float(timestamp)
    except ValueError:
        raise SignatureError("the Mailgun timestamp is not a number") from None
    if abs(age) > TOLERANCE_SECONDS:
        raise SignatureError("the Mailgun signature is stale")


def parse(body: bytes, headers: Mapping[str, str] | None = None) -> list[NormalizedEvent]:
    """The one event of a Mailgun webhook body."""
    payload = require_object(load_json(body), "the Mailgun payload")
    data = require_object(payload.get("event-data"), "event-data")
    name = text(data.get("event")) or ""
    event_type = _EVENT_TYPES.get(name, EventType.UNKNOWN)
    bounce: BounceKind | None = None
    if name == "failed":
        event_type, bounce = _failure(data)

    event_id = text(data.get("id"))
    if event_id is None:
        raise PayloadError("event-data has no id")
    message_id = angle_id(dig(data, "message", "headers", "message-id"))
    recipient = address(data.get("recipient"))
    if recipient is None and event_type is EventType.REJECTED:
        recipient = address(dig(data, "message", "headers", "to"))
    description = (
        text(dig(data, "delivery-status", "description"))
        or text(dig(data, "delivery-status", "message"))
        or text(dig(data, "reject", "reason"))
        or text(data.get("reason"))
        or ""
    )
    return [
        NormalizedEvent(
            provider=NAME,
            event_key=make_key(event_id, text(data.get("timestamp"))),
            event_type=event_type,
            bounce=bounce,
            email=recipient,
            message_id=message_id,
            provider_message_id=message_id,
            occurred_at=from_unix(data.get("timestamp")),
            description=description,
            raw=payload,
            replay_token=text(dig(payload, "signature", "token")),
        )
    ]


def _failure(data: dict[str, Any]) -> tuple[EventType, BounceKind | None]:
    if text(data.get("severity")) != "permanent":
        return EventType.DEFERRED, None
    reason = text(data.get("reason"))
    if reason == "suppress-unsubscribe":
        return EventType.REJECTED, None
    if reason == "suppress-complaint":
        return EventType.COMPLAINED, None
    return EventType.BOUNCED, BounceKind.HARD
