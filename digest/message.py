"""The one shape of an email handed to a backend, whichever provider carries it.

Shared by ``digest.render`` (which makes messages) and ``digest.backends`` (which send them),
so it sits below both. A rendered message also carries how its bodies were made
(``MergeParts``): the content variant's two compiled templates, shared by every subscriber of
that variant, and this subscriber's slot values. Providers that merge per-recipient values
into one body on their side (SendGrid, Mailgun) send the templates once per call and the
values per recipient; every other backend sends ``html`` and ``text``, which are exactly the
templates filled with the values.
"""

from __future__ import annotations

import base64
import functools
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parseaddr

from digest.errors import InputError

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


class HeaderInjectionError(InputError, ValueError):
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


class ReservedHeaderError(InputError, ValueError):
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


# Names that may stand unquoted: ASCII letters and digits in words. Everything else (specials
# such as , < > " \ ; : @, and atext such as = ? that make encoded-word look-alikes) is quoted
# or encoded.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9]+( [A-Za-z0-9]+)*\Z")
# A quoted name keeps the header line within 78 octets up to this length; longer names are
# encoded instead, as words of at most 75 characters on lines of their own.
_MAX_QUOTED = 40
_ENCODED_WORD_BYTES = 45  # 60 base64 characters: a 72-character encoded word


def format_address(address: str, name: str = "") -> str:
    """``name <address>`` in a form every RFC 5322 parser reads as exactly one mailbox.

    The one way digest writes From, To and Reply-To, in MIME headers and in providers' JSON
    alike. The name is sanitized; plain words stay as they are, short ASCII names become a
    quoted-string (``"`` and ``\\`` escaped), and anything else (non-ASCII, long enough to
    fold, or containing ``=?`` so that a decoder could take it for an encoded word) becomes
    RFC 2047 base64 encoded words, separated by spaces, which decode to the name and nothing
    else. The result is one line; ``fold_address`` breaks it between the words.
    """
    name = sanitize_display_name(name)
    if not name:
        return address
    if _PLAIN_NAME.match(name):
        return f"{name} <{address}>"
    if name.isascii() and len(name) <= _MAX_QUOTED and "=?" not in name:
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{quoted}" <{address}>'
    return f"{' '.join(_encoded_words(name))} <{address}>"


@functools.lru_cache(maxsize=64)
def parse_address(value: str) -> str:
    """A configured address (``"Name <user@example.com>"`` or bare) written by
    ``format_address``: the From and Reply-To of every message and provider payload.

    Cached: every message of a send has the same sender, and ``email.utils.parseaddr`` cost
    a fifth of a send's time (measured: 2.4 s of 12.6 s for 20,000 Postmark messages).
    """
    name, addr = parseaddr(value)
    if "@" not in addr:
        raise ValueError(f"not an email address: {value!r}")
    return format_address(addr, name)


def fold_address(value: str) -> str:
    """A ``format_address`` value with its encoded words on lines of their own (``\\n ``),
    for a MIME header; unfolding gives ``value`` back."""
    if not value.startswith("=?utf-8?b?"):
        return value
    return value.replace("?= ", "?=\n ")


def _encoded_words(name: str) -> list[str]:
    # Whole characters per word: a decoder must be able to decode each word on its own.
    pieces: list[bytes] = [b""]
    for char in name:
        encoded = char.encode("utf-8")
        if len(pieces[-1]) + len(encoded) > _ENCODED_WORD_BYTES:
            pieces.append(b"")
        pieces[-1] += encoded
    return [f"=?utf-8?b?{base64.b64encode(piece).decode('ascii')}?=" for piece in pieces]


@dataclass(frozen=True, slots=True)
class BodyTemplate:
    """A compiled body split at its per-recipient slots.

    ``chunks`` holds the literal text with ``None`` where a slot goes; ``positions`` pairs
    each ``None`` with the index of the value that fills it (several places may use one
    value). ``fill`` is the only way a body is made from it, for every backend alike.
    """

    chunks: tuple[str | None, ...]
    positions: tuple[tuple[int, int], ...]

    def fill(self, values: Sequence[str]) -> str:
        """The body with each slot replaced by its value (escaped for this part already)."""
        parts = list(self.chunks)
        for position, index in self.positions:
            parts[position] = values[index]
        return "".join(parts)  # type: ignore[arg-type]  # every None was replaced above

    def render(self, placeholder: Callable[[int], str]) -> str:
        """The body with each slot written as ``placeholder(index)`` (a provider's merge tag)."""
        return self.fill([placeholder(index) for index in range(self.slot_count)])

    @property
    def slot_count(self) -> int:
        return 1 + max((index for _, index in self.positions), default=-1)

    @property
    def literals(self) -> tuple[str, ...]:
        """The literal text around the slots."""
        return tuple(chunk for chunk in self.chunks if chunk is not None)

    @property
    def size(self) -> int:
        """Characters of literal text (the filled body is this plus the values)."""
        return sum(len(chunk) for chunk in self.literals)


@dataclass(frozen=True, slots=True)
class MergeParts:
    """How a message's bodies were made: ``html == html_template.fill(html_values)`` and the
    same for text. The templates are shared (the same objects) by every message of one
    content variant; the values are this subscriber's, HTML-escaped in ``html_values``.

    ``html`` and ``text`` are the bodies made from them, the very objects the message holds:
    a message whose body was replaced afterwards no longer matches its parts, which
    ``OutgoingMessage.merged`` tells at once, whatever the new body's length or content.
    """

    html_template: BodyTemplate
    text_template: BodyTemplate
    html_values: tuple[str, ...]
    text_values: tuple[str, ...]
    html: str | None = field(default=None, repr=False, compare=False)
    text: str | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A complete message: addresses, subject, both bodies and the extra headers.

    ``message_id`` is the RFC 5322 Message-ID including angle brackets; it identifies the
    message in the ledger and in provider events. ``headers`` carries the list headers
    (List-Id, List-Unsubscribe, List-Unsubscribe-Post) and anything else the provider must
    sign and pass through. ``idempotency_key`` lets backends whose provider deduplicates resend
    safely. ``metadata`` travels as provider tags/custom args so webhooks can be correlated.
    ``to_name`` is sanitized (see ``sanitize_display_name``); every other header value with a
    line break is refused, and so is an extra header in ``RESERVED_HEADERS``. ``merge`` is set
    on rendered messages (see the module docstring); a message without it is sent as it is.
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
    merge: MergeParts | None = field(default=None, repr=False, compare=False)

    @property
    def merged(self) -> MergeParts | None:
        """``merge`` while both bodies are the ones made from it; None when there are no
        parts or a body was replaced after rendering (the message is then sent as it is)."""
        merge = self.merge
        if merge is not None and merge.html is self.html and merge.text is self.text:
            return merge
        return None

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
