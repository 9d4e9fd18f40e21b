"""SendGrid's Signed Event Webhook: ECDSA P-256 over ``timestamp + body``, a JSON array of events.

SendGrid signs the bytes of the header ``X-Twilio-Email-Event-Webhook-Timestamp`` followed by
the raw body with its private key (ECDSA with SHA-256) and sends the base64 DER signature in
``X-Twilio-Email-Event-Webhook-Signature``. The verification key shown in SendGrid's mail
settings is a base64 DER SubjectPublicKeyInfo (a PEM block is accepted as well).

SendGrid documents no freshness window for the timestamp and retries failed posts for hours,
so none is enforced: a replayed request is byte-identical (the signature covers the body) and
its events are recognized by ``sg_event_id`` and stored once.

A ``bounce`` of ``type`` ``blocked`` is a soft bounce (a block that may lift); any other bounce
is hard. A ``dropped`` event for an address SendGrid itself suppresses after a bounce or a spam
report is reported as that bounce or complaint, so our list learns what SendGrid knows.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
from collections.abc import Mapping
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from digest.config import Settings
from digest.webhooks.events import (
    BounceKind,
    EventType,
    MissingSignatureError,
    NormalizedEvent,
    NotConfiguredError,
    PayloadError,
    SignatureError,
    angle_id,
    from_unix,
    header,
    load_json,
    make_key,
    text,
)

NAME = "sendgrid"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"

_EVENT_TYPES = {
    "delivered": EventType.DELIVERED,
    "bounce": EventType.BOUNCED,
    "deferred": EventType.DEFERRED,
    "dropped": EventType.REJECTED,
    "spamreport": EventType.COMPLAINED,
    "open": EventType.OPENED,
    "click": EventType.CLICKED,
    "unsubscribe": EventType.UNSUBSCRIBED,
    "group_unsubscribe": EventType.UNSUBSCRIBED,
}
# ``sg_message_id`` is the X-Message-Id the send API returned, followed by a routing suffix.
_ROUTING_SUFFIX = re.compile(r"\.(?:filter|recvd-)")


def configured(settings: Settings) -> bool:
    return bool(
        settings.sendgrid_webhook_public_key and settings.sendgrid_webhook_public_key.strip()
    )


@functools.lru_cache(maxsize=4)
def public_key(encoded: str) -> ec.EllipticCurvePublicKey:
    """The verification key from its base64 DER (or PEM) form; ``NotConfiguredError`` if bad."""
    try:
        if "BEGIN PUBLIC KEY" in encoded:
            key = serialization.load_pem_public_key(encoded.strip().encode("ascii"))
        else:
            key = serialization.load_der_public_key(base64.b64decode("".join(encoded.split())))
    except (ValueError, TypeError, binascii.Error, UnicodeEncodeError):
        raise NotConfiguredError("the SendGrid webhook public key cannot be read") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise NotConfiguredError("the SendGrid webhook public key is not an elliptic-curve key")
    return key


def verify(headers: Mapping[str, str], body: bytes, settings: Settings) -> None:
    """Check the ECDSA signature of ``timestamp + body``; raise ``SignatureError`` if wrong."""
    if not settings.sendgrid_webhook_public_key:
        raise NotConfiguredError("the SendGrid webhook public key is not set")
    key = public_key(settings.sendgrid_webhook_public_key)
    signature = header(headers, SIGNATURE_HEADER)
    timestamp = header(headers, TIMESTAMP_HEADER)
    if not signature or not timestamp:
        raise MissingSignatureError("no SendGrid signature headers")
    try:
        der = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("malformed SendGrid signature") from None
    try:
        key.verify(der, timestamp.encode("utf-8") + body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SignatureError("the SendGrid signature does not match") from None


def parse(body: bytes, headers: Mapping[str, str] | None = None) -> list[NormalizedEvent]:
    """One event per element of the posted array."""
    payload = load_json(body)
    if not isinstance(payload, list):
        raise PayloadError("the SendGrid payload is not a JSON array")
    events: list[NormalizedEvent] = []
    for position, item in enumerate(payload):
        if not isinstance(item, dict):
            raise PayloadError(f"SendGrid event {position} is not a JSON object")
        events.append(_event(item))
    return events


def _event(item: dict[str, Any]) -> NormalizedEvent:
    name = text(item.get("event")) or ""
    event_type = _EVENT_TYPES.get(name, EventType.UNKNOWN)
    bounce: BounceKind | None = None
    if name == "bounce":
        bounce = BounceKind.SOFT if text(item.get("type")) == "blocked" else BounceKind.HARD
    elif name == "dropped":
        reason = (text(item.get("reason")) or "").lower()
        if reason == "bounced address":
            event_type, bounce = EventType.BOUNCED, BounceKind.HARD
        elif reason == "spam reporting address":
            event_type = EventType.COMPLAINED

    event_id = text(item.get("sg_event_id"))
    if event_id:
        key = make_key(event_id)
    else:
        canonical = orjson.dumps(item, option=orjson.OPT_SORT_KEYS)
        key = make_key("sha256", hashlib.sha256(canonical).hexdigest())
    sg_message_id = text(item.get("sg_message_id"))
    provider_message_id = (
        _ROUTING_SUFFIX.split(sg_message_id, maxsplit=1)[0] if sg_message_id else None
    )
    smtp_id = text(item.get("smtp-id"))
    return NormalizedEvent(
        provider=NAME,
        event_key=key,
        event_type=event_type,
        bounce=bounce,
        email=text(item.get("email")),
        message_id=angle_id(smtp_id) if smtp_id and "@" in smtp_id else None,
        provider_message_id=provider_message_id,
        occurred_at=from_unix(item.get("timestamp")),
        description=text(item.get("reason")) or text(item.get("response")) or "",
        raw=item,
    )
