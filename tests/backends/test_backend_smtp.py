"""The SMTP backend against a real local server (aiosmtpd on 127.0.0.1, a free port)."""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from backend_fakes import build_batch, build_message

from digest.backends.base import ResultStatus
from digest.backends.errors import AmbiguousError, PermanentError, RetryableError
from digest.backends.smtp import SmtpBackend


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Handler:
    """Accepts mail, except where a test tells it to refuse or drop the connection."""

    refuse_rcpt: dict[str, str] = field(default_factory=dict)  # address -> reply
    refuse_data: dict[str, str] = field(default_factory=dict)  # recipient -> reply
    drop_at_rcpt: set[str] = field(default_factory=set)
    drop_after_data: set[str] = field(default_factory=set)
    received: list[Envelope] = field(default_factory=list)
    connections: int = 0

    async def handle_EHLO(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        if address in self.drop_at_rcpt:
            assert server.transport is not None
            server.transport.close()
            return "250 OK"
        if address in self.refuse_rcpt:
            return self.refuse_rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        recipient = envelope.rcpt_tos[0]
        if recipient in self.drop_after_data:
            assert server.transport is not None
            server.transport.close()
            return "250 OK"
        if recipient in self.refuse_data:
            return self.refuse_data[recipient]
        self.received.append(envelope)
        return f"250 2.0.0 Ok: queued as Q{len(self.received)}"


class Server:
    def __init__(self, handler: Handler, **smtp_options: Any) -> None:
        self.handler = handler
        self.port = _free_port()
        self.controller = Controller(handler, hostname="127.0.0.1", port=self.port, **smtp_options)

    def backend(self, **kwargs: Any) -> SmtpBackend:
        return SmtpBackend("127.0.0.1", self.port, timeout=5, **kwargs)


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server(Handler())
    running.controller.start()
    yield running
    running.controller.stop()


def test_batch_over_one_connection(server: Server) -> None:
    batch = build_batch(3)
    results = server.backend().send_batch(batch)

    assert [r.status for r in results] == [ResultStatus.ACCEPTED] * 3
    assert [r.provider_message_id for r in results] == ["Q1", "Q2", "Q3"]
    assert server.handler.connections == 1
    received = server.handler.received
    assert [e.rcpt_tos for e in received] == [[m.to] for m in batch]
    assert all(e.mail_from == "digest@verdicts.example.com" for e in received)
    raw = received[0].original_content
    assert raw is not None
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Message-ID"] == batch[0].message_id
    assert parsed.get_all("List-Unsubscribe") == [batch[0].headers["List-Unsubscribe"]]


def test_leading_dots_survive(server: Server) -> None:
    message = build_message(text=".\n..starts with dots\n.\n", html="<p>x</p>")
    assert server.backend().send(message).accepted
    raw = server.handler.received[0].original_content
    assert raw is not None
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    body = parsed.get_body(("plain",))
    assert body is not None
    assert body.get_content().replace("\r\n", "\n") == ".\n..starts with dots\n.\n"


def test_refused_recipients_are_rejected_others_sent(server: Server) -> None:
    server.handler.refuse_rcpt = {
        "reader2@example.org": "550 5.1.1 No such user",
        "reader3@example.org": "554 5.7.1 Relay access denied",
        "reader4@example.org": "553 mailbox name not allowed",
    }
    server.handler.refuse_data = {"reader5@example.org": "554 5.6.0 Message content rejected"}
    results = server.backend().send_batch(build_batch(6))

    assert [r.status for r in results] == [
        ResultStatus.ACCEPTED,
        ResultStatus.REJECTED,
        ResultStatus.REJECTED,
        ResultStatus.REJECTED,
        ResultStatus.REJECTED,
        ResultStatus.ACCEPTED,
    ]
    assert [r.hard_invalid for r in results] == [False, True, False, True, False, False]
    assert results[1].error is not None and "No such user" in results[1].error
    assert [e.rcpt_tos for e in server.handler.received] == [
        ["reader1@example.org"],
        ["reader6@example.org"],
    ]


def test_deferred_recipient_is_retryable_and_keeps_earlier_results(server: Server) -> None:
    server.handler.refuse_rcpt = {"reader2@example.org": "450 4.2.0 Mailbox busy, try later"}
    batch = build_batch(3)
    with pytest.raises(RetryableError) as caught:
        server.backend().send_batch(batch)
    assert "450" in str(caught.value)
    assert [r.status for r in caught.value.partial_results] == [ResultStatus.ACCEPTED]
    assert len(server.handler.received) == 1
    # The third was never handed over: not this failure's message.
    assert caught.value.unsent == (batch[2].message_id,)


def test_connection_lost_before_data_is_retryable(server: Server) -> None:
    server.handler.drop_at_rcpt = {"reader1@example.org"}
    with pytest.raises(RetryableError) as caught:
        server.backend().send(build_message(1))
    assert not isinstance(caught.value, AmbiguousError)
    assert "before the message was sent" in str(caught.value)


def test_connection_lost_after_data_is_ambiguous(server: Server) -> None:
    server.handler.drop_after_data = {"reader2@example.org"}
    with pytest.raises(AmbiguousError) as caught:
        server.backend().send_batch(build_batch(3))
    assert [r.provider_message_id for r in caught.value.partial_results] == ["Q1"]


def test_no_server_is_retryable() -> None:
    backend = SmtpBackend("127.0.0.1", _free_port(), timeout=2)
    with pytest.raises(RetryableError, match="nothing was sent"):
        backend.send(build_message())


def _authenticator(
    server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    good = isinstance(auth_data, LoginPassword) and auth_data.password == b"right"
    return AuthResult(success=good, handled=False)


@pytest.fixture
def auth_server() -> Iterator[Server]:
    running = Server(
        Handler(),
        authenticator=_authenticator,
        auth_require_tls=False,
        auth_exclude_mechanism=["LOGIN"],
    )
    running.controller.start()
    yield running
    running.controller.stop()


def test_login(auth_server: Server) -> None:
    backend = auth_server.backend(username="digest", password="right")
    assert backend.send(build_message()).accepted


def test_wrong_password_is_permanent_and_names_the_settings(auth_server: Server) -> None:
    backend = auth_server.backend(username="digest", password="wrong")
    with pytest.raises(PermanentError) as caught:
        backend.send(build_message())
    assert "invalid credentials" in str(caught.value)
    assert "DIGEST_SMTP_PASSWORD" in str(caught.value)
    assert auth_server.handler.received == []


def test_starttls_refused_by_a_server_without_it(server: Server) -> None:
    with pytest.raises(PermanentError, match="does not support"):
        server.backend(starttls=True).send(build_message())


def test_ssl_and_starttls_are_exclusive() -> None:
    with pytest.raises(ValueError, match="not both"):
        SmtpBackend("127.0.0.1", 25, starttls=True, use_ssl=True)
