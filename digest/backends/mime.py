"""The RFC 5322 form of an ``OutgoingMessage``: what SMTP, SES raw sends and the outbox carry.

``build_mime`` returns a multipart/alternative message (text/plain first, then text/html,
UTF-8, 7bit when the text allows it, else quoted-printable, never base64, so no line exceeds
998 octets; ``MIME-Version`` only on the top level) with From, To, Subject, Date,
Message-ID, Reply-To (when set), MIME-Version and every extra header of the message, each
exactly once. ``to_bytes`` serializes it with CRLF line ends.

From, To and Reply-To are written by ``format_address`` (quoted or RFC 2047-encoded display
names, never folded by the email package, which leaves encoded-word look-alikes bare and folds
long names into a second mailbox) and stored verbatim. The subject is RFC 2047-encoded by the
email package when it is not ASCII. ASCII extra headers (List-Unsubscribe and friends) are
folded here at spaces and stored verbatim: the email package would otherwise turn a long URL
into encoded words, which mail clients do not decode in List-* headers.
"""

from __future__ import annotations

import email.policy
import re
from datetime import UTC, datetime
from email.message import EmailMessage

from digest.message import OutgoingMessage, fold_address, format_address, parse_address

# SMTP's CRLF policy; ``cte_type="7bit"`` keeps bodies and headers 7-bit clean (no raw UTF-8 on
# the wire), ``refold_source="none"`` emits the headers folded here exactly as given.
POLICY = email.policy.SMTP.clone(cte_type="7bit", refold_source="none")

FOLD_AT = 78  # RFC 5322 "should" line length
MAX_LINE = 998  # RFC 5322 "must" line length, CRLF excluded
_MESSAGE_ID = re.compile(r"^<[!-;=?-~]+@[!-;=?-~]+>$")


def build_mime(message: OutgoingMessage, *, date: datetime | None = None) -> EmailMessage:
    """The complete MIME message; ``date`` defaults to now (a naive value is taken as UTC)."""
    if not _MESSAGE_ID.match(message.message_id):
        raise ValueError(f"Message-ID must look like <local@domain>, got {message.message_id!r}")
    when = date or datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)

    msg = EmailMessage(policy=POLICY)
    msg.set_raw("From", fold_address(parse_address(message.sender)))
    msg.set_raw("To", fold_address(format_address(message.to, message.to_name)))
    msg["Subject"] = message.subject
    msg["Date"] = when
    msg.set_raw("Message-ID", message.message_id)
    if message.reply_to:
        msg.set_raw("Reply-To", fold_address(parse_address(message.reply_to)))
    for name, value in message.headers.items():
        if value.isascii():
            msg.set_raw(name, fold(name, value))
        else:
            msg[name] = value
    msg.set_content(message.text, subtype="plain", charset="utf-8", cte=_cte(message.text))
    msg.add_alternative(message.html, subtype="html", charset="utf-8", cte=_cte(message.html))
    for part in msg.iter_parts():
        del part["MIME-Version"]  # RFC 2045: once, in the top-level header only
    return msg


def _cte(body: str) -> str:
    """7bit for ASCII with short lines, else quoted-printable: it keeps text readable (and
    filters score base64-encoded text parts as suspicious)."""
    if body.isascii() and all(len(line) <= MAX_LINE for line in body.splitlines()):
        return "7bit"
    return "quoted-printable"


def to_bytes(msg: EmailMessage) -> bytes:
    """The message as sent on the wire: CRLF line ends, 7-bit clean."""
    return msg.as_bytes(policy=POLICY)


def fold(name: str, value: str) -> str:
    """Fold an ASCII header value at spaces so lines stay near 78 octets (never over 998).

    Folding only inserts a line break before an existing space, so unfolding restores the
    value exactly.
    """
    lines: list[str] = []
    words = value.split(" ")
    current = words[0]
    width = len(name) + 2  # "Name: " precedes the first line
    for word in words[1:]:
        if width + len(current) + 1 + len(word) > FOLD_AT and current.strip():
            lines.append(current)
            current, width = "", 0
        current = f"{current} {word}"
    lines.append(current)
    if len(name) + 2 + len(lines[0]) > MAX_LINE or any(len(line) > MAX_LINE for line in lines):
        raise ValueError(f"header {name} has a word too long for a {MAX_LINE}-octet line")
    return "\n".join(lines)
