"""The one shape of an email handed to a backend, whichever provider carries it."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field

# Every character ``str.splitlines`` breaks on, plus NUL: the email package splits header
# values with ``splitlines``, so any of them could turn text into a new header line.
_LINE_BREAKS = frozenset("\r\n\0\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
# RFC 5322 field name: printable US-ASCII except the colon.
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")
# Headers every message gets from its own fields (or from the MIME structure): a second copy in
# ``OutgoingMessage.headers`` would be ambiguous, so it is refused.
RESERVED_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "sender",
        "subject",
        "date",
        "message-id",
        "reply-to",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
    }
)


class HeaderInjectionError(ValueError):
    """A header value contains a line break (or NUL): it would let text become a header."""


def check_header_value(name: str, value: str) -> str:
    """Return ``value`` unchanged, or refuse it if it could inject a header."""
    # Every line-break character is non-printable, so the common case costs one C call.
    if value.isprintable():
        return value
    if not _LINE_BREAKS.isdisjoint(value):
        raise HeaderInjectionError(f"header {name} must not contain line breaks")
    return value


def check_header_name(name: str) -> str:
    """Return ``name`` unchanged, or refuse it unless it is a valid RFC 5322 field name."""
    if not _HEADER_NAME.match(name):
        raise HeaderInjectionError(f"invalid header name {name!r}")
    return name


class ReservedHeaderError(ValueError):
    """An extra header duplicates one the message sets from its own fields."""


def sanitize_display_name(name: str) -> str:
    """A display name safe to put in a header: control characters and line breaks become
    spaces, runs of whitespace collapse to one. Names come from people, so they are cleaned
    rather than refused."""
    if name.isprintable():
        return " ".join(name.split())
    cleaned = "".join(
        " " if char in _LINE_BREAKS or unicodedata.category(char) in ("Cc", "Zl", "Zp") else char
        for char in name
    )
    return " ".join(cleaned.split())


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A complete message: addresses, subject, both bodies and the extra headers.

    ``message_id`` is the RFC 5322 Message-ID including angle brackets; it identifies the
    message in the ledger and in provider events. ``headers`` carries the list headers
    (List-Id, List-Unsubscribe, List-Unsubscribe-Post) and anything else the provider must
    sign and pass through. ``idempotency_key`` lets backends whose provider deduplicates resend
    safely. ``metadata`` travels as provider tags/custom args so webhooks can be correlated.
    ``to_name`` is sanitized (see ``sanitize_display_name``); every other header value with a
    line break is refused, and so is an extra header in ``RESERVED_HEADERS``.
    """

    sender: str
    to: str
    subject: str
    html: str
    text: str
    message_id: str
    to_name: str = ""
    reply_to: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    idempotency_key: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.to_name:
            object.__setattr__(self, "to_name", sanitize_display_name(self.to_name))
        for name, value in (
            ("From", self.sender),
            ("To", self.to),
            ("Subject", self.subject),
            ("Message-ID", self.message_id),
            ("Reply-To", self.reply_to or ""),
        ):
            check_header_value(name, value)
        for name, value in self.headers.items():
            check_header_name(name)
            check_header_value(name, value)
            if name.lower() in RESERVED_HEADERS:
                raise ReservedHeaderError(
                    f"header {name} is set from the message's own fields, not from headers"
                )
