"""The neutral event model every provider's webhook is normalized to, and the errors of receiving.

One ``NormalizedEvent`` per recipient and happening, whatever the provider called it, with the
provider's own event kept in ``raw`` (the shape of django-anymail's ``AnymailTrackingEvent``).
``event_key`` is the provider's stable id of the event, the same on every redelivery, so that
storing is idempotent.

Errors, as one small tree::

    WebhookError                 anything that makes us refuse a webhook request
    ├── SignatureError           not provably from the provider: answer 401/403, store nothing
    │   └── MissingSignatureError  no credentials or signature at all (401)
    ├── PayloadError             signed correctly but not a payload we can read (400)
    ├── NotConfiguredError       the provider's secret is not set: refuse rather than trust (503)
    └── UnavailableError         cannot verify or act right now, e.g. a certificate fetch
                                 failed (503: the provider retries later)

The small helpers below (keys, times, addresses) are shared by the provider modules.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Any

import orjson

from digest.errors import DigestError
from digest.json_bounds import bounds_problem

MAX_EVENT_KEY_LENGTH = 200  # the width of ``webhook_event.event_key``


class EventType(enum.StrEnum):
    """What happened to a message, in the provider-neutral vocabulary."""

    DELIVERED = "delivered"  # accepted by the receiving server
    BOUNCED = "bounced"  # refused by the receiving server; see ``BounceKind``
    DEFERRED = "deferred"  # delayed; the provider keeps trying
    COMPLAINED = "complained"  # the recipient reported it as spam
    OPENED = "opened"
    CLICKED = "clicked"
    UNSUBSCRIBED = "unsubscribed"  # through the provider's own unsubscribe handling
    REJECTED = "rejected"  # the provider refused to send it (suppressed, invalid, policy)
    UNKNOWN = "unknown"  # anything else; still stored with its raw payload


class BounceKind(enum.StrEnum):
    """Hard: the address is unusable, stop mailing it. Soft: this message failed, the address
    may still work (mailbox full, greylisted, a block that will lift)."""

    HARD = "hard"
    SOFT = "soft"


@dataclass(frozen=True, slots=True)
class NormalizedEvent:
    """One provider event about one recipient of one message.

    ``message_id`` is our RFC 5322 Message-ID (with angle brackets) when the payload carries
    it; ``provider_message_id`` is the provider's id of the message, as its send API returned
    it. ``bounce`` is set for ``bounced`` events only. ``raw`` is the provider's event as
    received (for a batch, the one element this event came from).
    """

    provider: str
    event_key: str
    event_type: EventType
    email: str | None
    message_id: str | None
    provider_message_id: str | None
    occurred_at: dt.datetime | None
    description: str
    raw: dict[str, Any]
    bounce: BounceKind | None = None
    # A one-time signature nonce that must never be accepted twice (see ``WebhookEvent``).
    replay_token: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if (self.bounce is None) != (self.event_type is not EventType.BOUNCED):
            raise ValueError("bounce kind is set for bounced events, and only for them")
        if not self.event_key or len(self.event_key) > MAX_EVENT_KEY_LENGTH:
            raise ValueError(f"event_key must be 1 to {MAX_EVENT_KEY_LENGTH} characters")


class WebhookError(DigestError):
    """Base of the reasons to refuse a webhook request (see ``digest.errors`` for the tree)."""

    status_code = 400
    exit_code = 65  # EX_DATAERR


class SignatureError(WebhookError):
    """The request is not provably from the provider (wrong secret, tampered, stale)."""

    status_code = 403
    exit_code = 77  # EX_NOPERM


class MissingSignatureError(SignatureError):
    """The request carries no credentials or signature at all."""

    status_code = 401


class PayloadError(WebhookError):
    """The request is authentic but its body is not a payload we understand."""

    status_code = 400
    exit_code = 65  # EX_DATAERR


class NotConfiguredError(WebhookError):
    """The provider's webhook secret is not set, so nothing can be verified."""

    status_code = 503
    exit_code = 78  # EX_CONFIG


class UnavailableError(WebhookError):
    """Something needed to verify or act on the request is unreachable; worth retrying."""

    status_code = 503
    exit_code = 75  # EX_TEMPFAIL


# -- helpers shared by the provider modules -------------------------------------------------------


def load_json(body: bytes) -> Any:
    """The JSON document in ``body``; ``PayloadError`` if it is not UTF-8 JSON or is out of
    bounds (``digest.json_bounds``: nesting and size)."""
    problem = bounds_problem(body)
    if problem is not None:
        raise PayloadError(f"the body: {problem}")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"the body is not JSON: {exc}") from None


def require_object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(f"{what} is not a JSON object")
    return value


def text(value: Any) -> str | None:
    """``value`` as a non-empty string, or None (numbers become their decimal text)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def dig(mapping: Any, *path: str) -> Any:
    """``mapping[path[0]][path[1]]...``, or None as soon as a step is missing or not a mapping."""
    current = mapping
    for step in path:
        if not isinstance(current, dict):
            return None
        current = current.get(step)
    return current


def make_key(*parts: object) -> str:
    """A stable event key from its parts; hashed when it would not fit the column."""
    key = "/".join("" if part is None else str(part) for part in parts)
    if len(key) <= MAX_EVENT_KEY_LENGTH:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def address(value: Any) -> str | None:
    """The bare address of ``value`` (``"Ada <ada@example.com>"`` -> ``ada@example.com``)."""
    raw = text(value)
    if raw is None:
        return None
    _name, addr = parseaddr(raw)
    return addr or None


def angle_id(value: Any) -> str | None:
    """A Message-ID in its header form, with angle brackets."""
    raw = text(value)
    if raw is None:
        return None
    return raw if raw.startswith("<") and raw.endswith(">") else f"<{raw.strip('<>')}>"


def from_unix(value: Any) -> dt.datetime | None:
    """An aware UTC datetime from seconds since the epoch (int, float or their text)."""
    try:
        seconds = float(value)
        return dt.datetime.fromtimestamp(seconds, dt.UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def from_iso(value: Any) -> dt.datetime | None:
    """An aware datetime from ISO 8601 text (a naive one is taken as UTC)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


def header(headers: Any, name: str) -> str | None:
    """A request header by case-insensitive name from a mapping of headers."""
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    return value if isinstance(value, str) else None
