"""MIME building: structure, encodings, header safety and line lengths."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest
from backend_fakes import build_message

from digest.backends.mime import build_mime, fold, to_bytes
from digest.message import (
    HeaderInjectionError,
    OutgoingMessage,
    ReservedHeaderError,
    sanitize_display_name,
)


def _parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _body(parsed: EmailMessage, subtype: str) -> str:
    part = parsed.get_body((subtype,))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n").rstrip("\n")


def test_structure_and_headers() -> None:
    message = build_message(reply_to="Editors <editors@verdicts.example.com>")
    raw = to_bytes(build_mime(message, date=datetime(2025, 2, 10, 8, 0, tzinfo=UTC)))
    parsed = _parse(raw)

    assert parsed.get_content_type() == "multipart/alternative"
    parts = list(parsed.iter_parts())
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    assert all(part.get_content_charset() == "utf-8" for part in parts)
    assert parsed["From"].addresses[0].addr_spec == "digest@verdicts.example.com"
    assert parsed["To"].addresses[0].display_name == "Reader 1"
    assert parsed["To"].addresses[0].addr_spec == "reader1@example.org"
    assert parsed["Subject"] == "This week: Cursor vs Copilot"
    assert parsed["Date"].datetime == datetime(2025, 2, 10, 8, 0, tzinfo=UTC)
    assert parsed["Message-ID"] == "<2025-w07.1@verdicts.example.com>"
    assert parsed["Reply-To"].addresses[0].addr_spec == "editors@verdicts.example.com"
    assert parsed["MIME-Version"] == "1.0"
    for name, value in message.headers.items():
        assert parsed.get_all(name) == [value]
    for name in ("From", "To", "Subject", "Date", "Message-ID", "Reply-To", "MIME-Version"):
        assert len(parsed.get_all(name) or []) == 1, name
    assert _body(parsed, "plain") == message.text.rstrip("\n")
    assert _body(parsed, "html") == message.html


def test_crlf_line_ends_only() -> None:
    raw = to_bytes(build_mime(build_message()))
    assert b"\r\n" in raw
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert b"\r" not in raw.replace(b"\r\n", b"")


def test_no_reply_to_when_unset() -> None:
    assert "Reply-To" not in _parse(to_bytes(build_mime(build_message())))


def test_hostile_display_name_cannot_inject_headers() -> None:
    message = build_message(
        to_name="Eve\r\nBcc: victim@example.net\r\n\r\nbody", to="eve@example.org"
    )
    assert message.to_name == "Eve Bcc: victim@example.net body"
    raw = to_bytes(build_mime(message))
    parsed = _parse(raw)
    assert "Bcc" not in parsed
    assert b"\r\nBcc:" not in raw
    assert [a.addr_spec for a in parsed["To"].addresses] == ["eve@example.org"]
    assert parsed["To"].addresses[0].display_name == "Eve Bcc: victim@example.net body"


@pytest.mark.parametrize(
    "name",
    [
        "Zoë Ünïcødé",
        "山田 太郎",
        'Quote " and <angle> , comma',
        "Line\u2028separator\x85next",
    ],
)
def test_display_names_round_trip_encoded(name: str) -> None:
    message = build_message(to_name=name)
    raw = to_bytes(build_mime(message))
    assert raw.isascii()
    to_line = next(line for line in raw.split(b"\r\n") if line.startswith(b"To:"))
    if not sanitize_display_name(name).isascii():
        assert b"=?utf-8?" in to_line
    address = _parse(raw)["To"].addresses
    assert len(address) == 1
    assert address[0].addr_spec == "reader1@example.org"
    assert address[0].display_name == sanitize_display_name(name)


def test_non_ascii_subject_is_rfc2047_encoded() -> None:
    subject = "Ça marche — les verdicts de la semaine " + "é" * 80
    raw = to_bytes(build_mime(build_message(subject=subject)))
    assert raw.isascii()
    assert b"Subject: =?utf-8?" in raw
    assert _parse(raw)["Subject"] == subject


def test_long_lines_are_encoded_under_998() -> None:
    html = "<p>" + "x" * 5000 + "é" * 3000 + "</p>"
    text = "word " * 2000 + "\n" + "y" * 4000
    raw = to_bytes(build_mime(build_message(html=html, text=text)))
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    parsed = _parse(raw)
    assert _body(parsed, "html") == html
    assert _body(parsed, "plain") == text
    for part in parsed.iter_parts():
        assert part["Content-Transfer-Encoding"] in ("quoted-printable", "base64")


def test_long_list_unsubscribe_is_folded_not_encoded() -> None:
    url = "https://verdicts.example.com/unsubscribe/" + "t" * 300
    value = f"<{url}>, <mailto:unsubscribe@verdicts.example.com?subject=abc>"
    raw = to_bytes(build_mime(build_message(headers={"List-Unsubscribe": value})))
    assert b"=?utf-8?" not in raw.split(b"\r\n\r\n")[0].split(b"List-Unsubscribe:")[1][:400]
    assert f"<{url}>,".encode() in raw
    parsed = _parse(raw)
    assert parsed.get_all("List-Unsubscribe") == [value]


def test_fold_round_trips_and_refuses_overlong_words() -> None:
    value = " ".join(f"w{i}" * 5 for i in range(100))
    folded = fold("X-Words", value)
    lines = folded.split("\n")
    assert len(lines) > 1
    assert all(len(line) <= 78 for line in lines[1:])
    assert all(line.startswith(" ") for line in lines[1:])
    assert "".join(lines) == value
    with pytest.raises(ValueError, match="998"):
        fold("X-Long", "x" * 1000)


def test_non_ascii_extra_header_is_encoded() -> None:
    raw = to_bytes(build_mime(build_message(headers={"X-Edition": "Semaine n° 7"})))
    assert raw.isascii()
    assert _parse(raw)["X-Edition"] == "Semaine n° 7"


@pytest.mark.parametrize("value", ["a\r\nBcc: x@y", "a\nb", "a\rb", "a\x00b", "a\u2028b", "a\x85b"])
def test_header_values_with_line_breaks_are_refused(value: str) -> None:
    with pytest.raises(HeaderInjectionError):
        build_message(headers={"X-Test": value})
    with pytest.raises(HeaderInjectionError):
        build_message(subject=value)


@pytest.mark.parametrize("name", ["X Test", "X:Test", "Bcc\r\nX", "", "Ünï"])
def test_invalid_header_names_are_refused(name: str) -> None:
    with pytest.raises(HeaderInjectionError):
        build_message(headers={name: "value"})


@pytest.mark.parametrize("name", ["Subject", "message-id", "Content-Type", "BCC"])
def test_reserved_headers_are_refused(name: str) -> None:
    with pytest.raises(ReservedHeaderError):
        build_message(headers={name: "value"})


def test_message_id_must_be_bracketed() -> None:
    with pytest.raises(ValueError, match="Message-ID"):
        build_mime(build_message(message_id="no-brackets@example.com"))


def test_naive_date_is_utc() -> None:
    parsed = _parse(to_bytes(build_mime(build_message(), date=datetime(2025, 1, 6, 9, 30))))
    assert parsed["Date"].datetime == datetime(2025, 1, 6, 9, 30, tzinfo=UTC)


def test_outgoing_message_is_frozen() -> None:
    message = OutgoingMessage(
        sender="a@example.com",
        to="b@example.com",
        subject="s",
        html="<p>h</p>",
        text="t",
        message_id="<m@example.com>",
    )
    with pytest.raises(AttributeError):
        message.to = "c@example.com"  # type: ignore[misc]


def test_parts_are_quoted_printable_and_mime_version_appears_once() -> None:
    text = "Hi Zoë,\n\nSkip — 0 of 4 reviewers. Ünïcode throughout the text part.\n" * 3
    message = build_message(text=text, html="<p>Zo&#235;</p>")
    raw = to_bytes(build_mime(message))
    assert raw.count(b"MIME-Version:") == 1
    assert b"Content-Transfer-Encoding: base64" not in raw
    parsed = _parse(raw)
    plain = parsed.get_body(("plain",))
    assert plain is not None and plain["Content-Transfer-Encoding"] == "quoted-printable"
    assert _body(parsed, "plain") == text.rstrip("\n")
    assert b"Hi Zo=C3=AB," in raw  # readable on the wire, unlike base64
