"""Any SMTP server: the MIME of ``digest.backends.mime`` over one connection per batch.

Each message is its own transaction (MAIL FROM, RCPT TO, DATA), so a refused recipient
affects only its message. What each failure means:

    connect, TLS, greeting fails (or 4xx)           RetryableError (nothing was sent)
    AUTH refused                                    PermanentError: credentials
    RCPT refused 5xx                                the message is REJECTED; hard_invalid for
                                                    enhanced status 5.1.x, or 550/551/553
                                                    without an enhanced status
    DATA refused 5xx                                the message is REJECTED
    MAIL FROM 5xx                                   PermanentError (the sender is refused)
    any 4xx in a transaction                        RetryableError
    connection lost before the message data         RetryableError
    connection lost after the message data was sent AmbiguousError

An error raised mid-batch carries the results of the messages already handled in
``partial_results``.
"""

from __future__ import annotations

import re
import smtplib
import ssl
from collections.abc import Sequence
from email.utils import parseaddr
from typing import TYPE_CHECKING, ClassVar

from digest.backends.base import EmailBackend, ResultStatus, SendResult
from digest.backends.errors import (
    AmbiguousError,
    BackendError,
    PermanentError,
    RetryableError,
)
from digest.backends.mime import build_mime, to_bytes
from digest.message import OutgoingMessage

if TYPE_CHECKING:
    from digest.config import Settings

_ENHANCED_STATUS = re.compile(rb"^([245])\.(\d{1,3})\.(\d{1,3})\b")
_QUEUE_ID = re.compile(rb"queued as\s+([^\s]+)", re.IGNORECASE)
_LEADING_DOT = re.compile(rb"(?m)^\.")
_HARD_CODES = frozenset({550, 551, 553})
_LOST = (smtplib.SMTPServerDisconnected, OSError)


class SmtpBackend(EmailBackend):
    """Sends through an SMTP server, with implicit TLS or STARTTLS and login when configured."""

    name: ClassVar[str] = "smtp"
    max_batch_size: ClassVar[int] = 100
    # Messages per connection; relays rarely publish a rate, so stay modest by default.
    default_rate: ClassVar[float] = 20.0

    def __init__(
        self,
        host: str,
        port: int = 25,
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        use_ssl: bool = False,
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if starttls and use_ssl:
            raise ValueError("choose implicit TLS (ssl) or STARTTLS, not both")
        self.host = host
        self.port = port
        self.username = username
        self.password = password or ""
        self.starttls = starttls
        self.use_ssl = use_ssl
        self.timeout = timeout
        self.ssl_context = ssl_context

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpBackend:
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        return cls(
            settings.smtp_host,
            settings.smtp_port,
            username=settings.smtp_username,
            password=password,
            starttls=settings.smtp_starttls,
            use_ssl=settings.smtp_ssl,
            timeout=settings.send_timeout,
        )

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        if len(messages) > self.max_batch_size:
            raise ValueError(f"SMTP takes at most {self.max_batch_size} messages per batch")
        if not messages:
            return []
        results: list[SendResult] = []
        try:
            connection = self._connect()
            try:
                for message in messages:
                    results.append(self._send_one(connection, message))
            finally:
                _quit(connection)
        except BackendError as exc:
            exc.partial_results = tuple(results)
            exc.unsent = tuple(message.message_id for message in messages[len(results) + 1 :])
            raise
        return results

    def _connect(self) -> smtplib.SMTP:
        where = f"SMTP server {self.host}:{self.port}"
        context = self.ssl_context or ssl.create_default_context()
        connection: smtplib.SMTP | None = None
        try:
            if self.use_ssl:
                connection = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout, context=context
                )
            else:
                connection = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            connection.ehlo()
            if self.starttls:
                connection.starttls(context=context)
                connection.ehlo()
            if self.username:
                connection.login(self.username, self.password)
        except smtplib.SMTPAuthenticationError as exc:
            _quit(connection)
            raise PermanentError(
                f"{where} refused the login: invalid credentials; check DIGEST_SMTP_USERNAME "
                f"and DIGEST_SMTP_PASSWORD ({exc.smtp_code} {_text(exc.smtp_error)})"
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:
            _quit(connection)
            raise PermanentError(f"{where} does not support what was asked: {exc}") from exc
        except smtplib.SMTPResponseException as exc:
            _quit(connection)
            error = PermanentError if exc.smtp_code >= 500 else RetryableError
            raise error(f"{where} refused us: {exc.smtp_code} {_text(exc.smtp_error)}") from exc
        except (smtplib.SMTPException, OSError) as exc:
            _quit(connection)
            raise RetryableError(f"could not connect to {where}: {exc}; nothing was sent") from exc
        return connection

    def _send_one(self, connection: smtplib.SMTP, message: OutgoingMessage) -> SendResult:
        data = to_bytes(build_mime(message))
        try:
            code, reply = connection.mail(parseaddr(message.sender)[1])
            if code != 250:
                _reset(connection)
                error = PermanentError if code >= 500 else RetryableError
                raise error(f"MAIL FROM {message.sender!r} refused: {code} {_text(reply)}")
            code, reply = connection.rcpt(message.to)
            if code not in (250, 251):
                _reset(connection)
                if code < 500:
                    raise RetryableError(f"RCPT TO {message.to} deferred: {code} {_text(reply)}")
                return _rejected(message, f"RCPT TO refused: {code} {_text(reply)}", code, reply)
            connection.putcmd("data")
            code, reply = connection.getreply()
        except _LOST as exc:
            raise RetryableError(
                f"SMTP connection lost before the message was sent: {exc}"
            ) from exc
        if code != 354:
            _reset(connection)
            if code < 500:
                raise RetryableError(f"DATA deferred: {code} {_text(reply)}")
            return _rejected(
                message, f"DATA refused: {code} {_text(reply)}", code, reply, hard=False
            )
        try:
            connection.send(_dot_stuffed(data))
            code, reply = connection.getreply()
        except _LOST as exc:
            raise AmbiguousError(
                f"SMTP connection lost after the message data was sent: {exc}; "
                "the server may have accepted it"
            ) from exc
        if code == 250:
            queue_id = _QUEUE_ID.search(reply)
            provider_id = queue_id[1].decode("ascii", "replace") if queue_id else None
            return SendResult(message.message_id, ResultStatus.ACCEPTED, provider_id)
        if code < 500:
            raise RetryableError(f"message deferred after DATA: {code} {_text(reply)}")
        return _rejected(
            message, f"message refused: {code} {_text(reply)}", code, reply, hard=False
        )


def _rejected(
    message: OutgoingMessage, error: str, code: int, reply: bytes, *, hard: bool | None = None
) -> SendResult:
    if hard is None:
        enhanced = _ENHANCED_STATUS.match(reply)
        hard = enhanced[2] == b"1" if enhanced else code in _HARD_CODES
    return SendResult(message.message_id, ResultStatus.REJECTED, error=error, hard_invalid=hard)


def _dot_stuffed(data: bytes) -> bytes:
    """The message as DATA carries it: leading dots doubled, ended by ``CRLF.CRLF``."""
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return _LEADING_DOT.sub(b"..", data) + b".\r\n"


def _reset(connection: smtplib.SMTP) -> None:
    try:
        connection.rset()
    except _LOST as exc:
        raise RetryableError(f"SMTP connection lost: {exc}") from exc


def _quit(connection: smtplib.SMTP | None) -> None:
    if connection is None:
        return
    try:
        connection.quit()
    except (smtplib.SMTPException, OSError):
        connection.close()


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
