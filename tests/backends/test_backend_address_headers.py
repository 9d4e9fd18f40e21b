"""Display names cannot add recipients: every backend's From/To/Reply-To, parsed back by a
mail parser, names exactly one mailbox, the subscriber's, whatever the name holds (specials,
quotes, backslashes, encoded-word look-alikes, names long enough to fold, non-ASCII)."""

from __future__ import annotations

import base64
import email
import email.policy
import email.utils
from collections.abc import Iterator
from email.header import decode_header, make_header
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from backend_fakes import FakeApi, build_message, json_response
from test_backend_smtp import Handler, Server

from digest.backends.mailgun import MailgunBackend
from digest.backends.mime import build_mime, to_bytes
from digest.backends.outbox import OutboxBackend
from digest.backends.postmark import PostmarkBackend
from digest.backends.resend import ResendBackend
from digest.backends.ses import SesBackend
from digest.message import OutgoingMessage, format_address

VICTIM = "victim@example.com"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


HOSTILE_NAMES = [
    "Support <attacker@evil.test>, Team of the Weekly AI Tool Verdicts newsletter",
    "Support <attacker@evil.test>, Team",
    "a@evil.test",
    "x, attacker@evil.test",
    'Ev"il <attacker@evil.test>',
    "Back\\slash\\ <attacker@evil.test>",
    '"',
    "\\",
    '\\"attacker@evil.test\\" <attacker@evil.test>,',
    "Bcc: attacker@evil.test",
    "group: attacker@evil.test;",
    "semi; colon: attacker@evil.test",
    "(comment) attacker@evil.test",
    f"=?utf-8?b?{_b64('Bcc: attacker@evil.test')}?=",
    "=?utf-8?q?Support_<attacker@evil.test>,_Team?=",
    f"=?utf-8?b?{_b64('x <attacker@evil.test>, y')}?= tail",
    f"head =?UTF-8?B?{_b64('attacker@evil.test,')}?=",
    "=?",
    "?=",
    "=?utf-8?b??=",
    "Team of the Weekly AI Tool Verdicts " * 5 + "<attacker@evil.test>",
    "Z" * 150 + ", attacker@evil.test",
    "Zoë <attacker@evil.test>, Ünïcode",
    "σίσυφος, attacker@evil.test",
    "日本語の名前 <attacker@evil.test>" * 6,
    "tab\there, attacker@evil.test",
    "line\r\nBcc: attacker@evil.test",
    "Reader 7",
]


def _one_mailbox(header: str, name: str, where: str) -> None:
    """``header`` parses, two ways, as one mailbox: the victim, with the sanitized name."""
    unfolded = header.replace("\r\n", "").replace("\n", "")
    legacy = email.utils.getaddresses([unfolded])
    assert [addr for _n, addr in legacy] == [VICTIM], (where, header)
    parsed = email.message_from_string(f"To: {header}\n\n", policy=email.policy.default)
    mailboxes = parsed["To"].addresses
    assert [m.addr_spec for m in mailboxes] == [VICTIM], (where, header)
    # RFC 2047 decoding (whitespace between encoded words dropped; Python's header registry
    # keeps it, so its display name is not the reference).
    [(raw_name, _addr)] = legacy
    shown = str(make_header(decode_header(raw_name))) if "=?" in raw_name else raw_name
    assert shown == " ".join(name.split()), (where, header)


def _check_mime(raw: bytes, name: str, where: str) -> None:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    for absent in ("Cc", "Bcc"):
        assert parsed[absent] is None, where
    [to] = parsed.get_all("To")
    assert [m.addr_spec for m in to.addresses] == [VICTIM], (where, str(to))
    raw_to = raw.split(b"\r\nTo: ", 1)[1].split(b"\r\nSubject:", 1)[0].decode("ascii")
    assert all(len(line) <= 78 for line in raw_to.split("\r\n")), raw_to
    _one_mailbox(raw_to, name, where)


def _message(name: str) -> OutgoingMessage:
    return build_message(to=VICTIM, to_name=name)


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_format_address_is_one_mailbox(name: str) -> None:
    _one_mailbox(format_address(VICTIM, name), name.replace("\r\n", " "), "format_address")


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_build_mime(name: str) -> None:
    message = _message(name)
    _check_mime(to_bytes(build_mime(message)), message.to_name, "build_mime")


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_outbox(name: str, tmp_path: Path) -> None:
    message = _message(name)
    backend = OutboxBackend(tmp_path)
    assert backend.send(message).accepted
    [file] = list(tmp_path.glob("*.eml"))
    _check_mime(file.read_bytes(), message.to_name, "outbox")


@pytest.fixture(scope="module")
def smtp_server() -> Iterator[Server]:
    running = Server(Handler())
    running.controller.start()
    yield running
    running.controller.stop()


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_smtp(name: str, smtp_server: Server) -> None:
    message = _message(name)
    smtp_server.handler.received.clear()
    assert smtp_server.backend().send(message).accepted
    [envelope] = smtp_server.handler.received
    assert envelope.rcpt_tos == [VICTIM]
    assert envelope.original_content is not None
    _check_mime(envelope.original_content, message.to_name, "smtp")


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_ses_raw(name: str) -> None:
    message = _message(name)
    api = FakeApi(json_response(200, {"MessageId": "ses-1"}))
    backend = SesBackend("AKID", "secret", region="eu-west-1", transport=api.transport)
    assert backend.send(message).accepted
    body = api.body()
    assert body["Destination"] == {"ToAddresses": [VICTIM]}
    _check_mime(base64.b64decode(body["Content"]["Raw"]["Data"]), message.to_name, "ses")


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_postmark_to(name: str) -> None:
    message = _message(name)
    answer = [{"ErrorCode": 0, "Message": "OK", "MessageID": "pm-1", "To": VICTIM}]
    api = FakeApi(json_response(200, answer))
    assert PostmarkBackend("token", transport=api.transport).send(message).accepted
    [item] = api.body()
    _one_mailbox(item["To"], message.to_name, "postmark")


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_resend_to(name: str) -> None:
    message = _message(name)
    api = FakeApi(json_response(200, {"data": [{"id": "re-1"}]}))
    assert ResendBackend("re_123", transport=api.transport).send(message).accepted
    [item] = api.body()
    [to] = item["to"]
    _one_mailbox(to, message.to_name, "resend")


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_mailgun_to(name: str) -> None:
    message = _message(name)
    api = FakeApi(json_response(200, {"id": "<mg-1@mg.example.com>", "message": "Queued"}))
    backend = MailgunBackend("key", domain="mg.example.com", transport=api.transport)
    assert backend.send(message).accepted
    form = parse_qsl(api.last.content.decode("ascii"), keep_blank_values=True)
    [to] = [value for key, value in form if key == "to"]
    _one_mailbox(to, message.to_name, "mailgun")


SENDERS = [
    '"Weekly, Verdicts" <digest@verdicts.example.com>',
    '"Verdicts <x@evil.test>" <digest@verdicts.example.com>',
    "=?utf-8?b?QmNjOiB4QGV2aWwudGVzdA==?= <digest@verdicts.example.com>",
    "Wöchentliche Urteile <digest@verdicts.example.com>",
    "digest@verdicts.example.com",
]


@pytest.mark.parametrize("sender", SENDERS)
def test_from_and_reply_to_are_one_mailbox_in_every_payload(sender: str, tmp_path: Path) -> None:
    message = build_message(sender=sender, reply_to=sender)
    expected = "digest@verdicts.example.com"
    headers: list[tuple[str, str]] = []
    raw = to_bytes(build_mime(message))
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    for name in ("From", "Reply-To"):
        [value] = parsed.get_all(name)
        assert [m.addr_spec for m in value.addresses] == [expected], (name, str(value))
    answer = [{"ErrorCode": 0, "Message": "OK", "MessageID": "pm-1", "To": message.to}]
    api = FakeApi(json_response(200, answer))
    assert PostmarkBackend("token", transport=api.transport).send(message).accepted
    [item] = api.body()
    headers += [("postmark From", item["From"]), ("postmark ReplyTo", item["ReplyTo"])]
    api = FakeApi(json_response(200, {"id": "<mg-1@mg.example.com>", "message": "Queued"}))
    backend = MailgunBackend("key", domain="mg.example.com", transport=api.transport)
    assert backend.send(message).accepted
    form = dict(parse_qsl(api.last.content.decode("ascii"), keep_blank_values=True))
    headers += [("mailgun from", form["from"]), ("mailgun reply", form["h:Reply-To"])]
    for where, value in headers:
        assert [a for _n, a in email.utils.getaddresses([value])] == [expected], (where, value)
