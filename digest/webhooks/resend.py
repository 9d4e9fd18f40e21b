"""Resend webhooks, signed the Svix way (the Standard Webhooks scheme).

Three headers, ``svix-id``, ``svix-timestamp`` and ``svix-signature`` (the ``webhook-`` prefix
of Standard Webhooks is accepted too). The signed content is ``{id}.{timestamp}.{body}``; the
key is the base64 part of the ``whsec_...`` secret; the signature header is a space-separated
list of ``v1,<base64 HMAC-SHA256>`` entries, one of which must match (several appear while a
secret is being rotated). The timestamp must be within ``TOLERANCE_SECONDS`` of our clock.

The message id is the same on every retry of an event, so it is the event key. Resend reports
``email.bounced`` when the receiving server permanently rejected the message; a bounce whose
``bounce.type`` says ``Transient`` or ``Undetermined`` is treated as soft all the same.
"""

from __future__ import annotations

import base64
import binascii
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
    SignatureError,
    address,
    angle_id,
    dig,
    from_iso,
    header,
    load_json,
    make_key,
    require_object,
    text,
)

NAME = "resend"
TOLERANCE_SECONDS = 300
SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix of every Svix secret, not a secret

_EVENT_TYPES = {
    "email.delivered": EventType.DELIVERED,
    "email.bounced": EventType.BOUNCED,
    "email.delivery_delayed": EventType.DEFERRED,
    "email.complained": EventType.COMPLAINED,
    "email.opened": EventType.OPENED,
    "email.clicked": EventType.CLICKED,
    "email.failed": EventType.REJECTED,
    "email.suppressed": EventType.REJECTED,
}
_SOFT_BOUNCE_TYPES = frozenset({"transient", "undetermined"})


def configured(settings: Settings) -> bool:
    secret = settings.resend_webhook_secret
    return secret is not None and bool(secret.get_secret_value())


def signing_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret; ``NotConfiguredError`` if it is not one."""
    try:
        return base64.b64decode(secret.strip().removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise NotConfiguredError("the Resend webhook secret is not a whsec_ secret") from None


def _svix_header(headers: Mapping[str, str], name: str) -> str | None:
    return header(headers, f"svix-{name}") or header(headers, f"webhook-{name}")


def verify(
    headers: Mapping[str, str], body: bytes, settings: Settings, *, now: float | None = None
) -> None:
    """Check the Svix signature and its freshness; raise ``SignatureError`` if either fails."""
    secret = settings.resend_webhook_secret
    if secret is None or not secret.get_secret_value():
        raise NotConfiguredError("the Resend webhook secret is not set")
    key = signing_key(secret.get_secret_value())
    message_id = _svix_header(headers, "id")
    timestamp = _svix_header(headers, "timestamp")
    signatures = _svix_header(headers, "signature")
    if not message_id or not timestamp or not signatures:
        raise MissingSignatureError("no Svix signature headers")
    signed = b".".join([message_id.encode("utf-8"), timestamp.encode("utf-8"), body])
    expected = hmac.new(key, signed, hashlib.sha256).digest()
    if not any(
        hmac.compare_digest(expected, candidate) for candidate in _v1_signatures(signatures)
    ):
        raise SignatureError("the Svix signature does not match")
    try:
        age = (time.time() if now is None else now) - int(timestamp)
    except ValueError:
        raise SignatureError("the Svix timestamp is not a number") from None
    if abs(age) > TOLERANCE_SECONDS:
        raise SignatureError("the Svix signature is stale")


def _v1_signatures(value: str) -> list[bytes]:
    found: list[bytes] = []
    for entry in value.split():
        version, _, encoded = entry.partition(",")
        if version != "v1":
            continue
        try:
            found.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    return found


def parse(body: bytes, headers: Mapping[str, str] | None = None) -> list[NormalizedEvent]:
    """The one event of a Resend webhook body (keyed by the ``svix-id`` header when given)."""
    payload = require_object(load_json(body), "the Resend payload")
    found = payload.get("data")
    data: dict[str, Any] = found if isinstance(found, dict) else {}
    name = text(payload.get("type")) or ""
    event_type = _EVENT_TYPES.get(name, EventType.UNKNOWN)
    bounce: BounceKind | None = None
    if event_type is EventType.BOUNCED:
        kind = (text(dig(data, "bounce", "type")) or "").lower()
        bounce = BounceKind.SOFT if kind in _SOFT_BOUNCE_TYPES else BounceKind.HARD

    email_id = text(dig(data, "email_id"))
    svix_id = _svix_header(headers, "id") if headers is not None else None
    key = (
        make_key(svix_id) if svix_id else make_key(name, email_id, text(payload.get("created_at")))
    )
    recipients = dig(data, "to")
    first = recipients[0] if isinstance(recipients, list) and recipients else recipients
    message_id = text(dig(data, "message_id"))
    return [
        NormalizedEvent(
            provider=NAME,
            event_key=key,
            event_type=event_type,
            bounce=bounce,
            email=address(first),
            message_id=angle_id(message_id) if message_id and "@" in message_id else None,
            provider_message_id=email_id,
            occurred_at=from_iso(payload.get("created_at")),
            description=_description(data),
            raw=payload,
        )
    ]


def _description(data: dict[str, Any]) -> str:
    for path in (("bounce", "message"), ("failed", "reason"), ("suppressed", "message")):
        found = text(dig(data, *path))
        if found:
            return found
    return ""
