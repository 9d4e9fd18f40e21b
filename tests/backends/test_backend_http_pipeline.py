"""The shared HTTP pipeline, checked against every API provider with a local fake.

Each provider gets the same transport failures and status codes; the mapping to the error tree
must be the same for all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from backend_fakes import FakeApi, build_batch, build_message, json_response

from digest.backends.errors import (
    AmbiguousError,
    PermanentError,
    RateLimitedError,
    RetryableError,
)
from digest.backends.http import CHUNK_BYTES, HttpBackend, JsonArray, parse_retry_after
from digest.backends.mailgun import MailgunBackend
from digest.backends.postmark import PostmarkBackend
from digest.backends.registry import get_backend
from digest.backends.resend import ResendBackend
from digest.backends.sendgrid import SendGridBackend
from digest.backends.ses import SesBackend
from digest.config import Settings
from digest.message import format_address

Factory = Callable[[httpx.BaseTransport], HttpBackend]

FACTORIES: dict[str, Factory] = {
    "postmark": lambda t: PostmarkBackend("pm-token", transport=t),
    "sendgrid": lambda t: SendGridBackend("SG.key", transport=t),
    "mailgun": lambda t: MailgunBackend("mg-key", domain="mg.example.com", transport=t),
    "resend": lambda t: ResendBackend("re_key", transport=t),
    "ses": lambda t: SesBackend("AKIDEXAMPLE", "secret", region="eu-west-1", transport=t),
}


PROVIDER_NAMES = {
    "postmark": "Postmark",
    "sendgrid": "SendGrid",
    "mailgun": "Mailgun",
    "resend": "Resend",
    "ses": "SES",
}


@pytest.fixture(params=sorted(FACTORIES))
def provider(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _send(provider: str, *answers: httpx.Response | Exception) -> FakeApi:
    api = FakeApi(*answers)
    backend = FACTORIES[provider](api.transport)
    batch = build_batch(backend.max_batch_size if backend.max_batch_size < 3 else 3)
    try:
        backend.send_batch(batch)
    finally:
        backend.close()
    return api


def test_429_with_retry_after_seconds(provider: str) -> None:
    with pytest.raises(RateLimitedError) as caught:
        _send(provider, json_response(429, {"message": "slow down"}, **{"Retry-After": "17"}))
    assert caught.value.retry_after == 17
    assert isinstance(caught.value, RetryableError)


def test_429_with_retry_after_http_date(provider: str) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    with pytest.raises(RateLimitedError) as caught:
        _send(provider, json_response(429, {"message": "slow down"}, **{"Retry-After": when}))
    assert caught.value.retry_after is not None
    assert 100 < caught.value.retry_after <= 120


def test_429_without_retry_after(provider: str) -> None:
    with pytest.raises(RateLimitedError) as caught:
        _send(provider, json_response(429, {"message": "slow down"}))
    assert caught.value.retry_after is None


@pytest.mark.parametrize("status", [500, 502, 503, 408])
def test_server_errors_are_retryable(provider: str, status: int) -> None:
    with pytest.raises(RetryableError) as caught:
        _send(provider, json_response(status, {"message": "oops"}))
    assert not isinstance(caught.value, RateLimitedError)
    assert str(status) in str(caught.value)


@pytest.mark.parametrize("status", [401, 403])
def test_bad_credentials_are_permanent_and_say_so(provider: str, status: int) -> None:
    with pytest.raises(PermanentError) as caught:
        _send(provider, json_response(status, {"message": "Bad or missing API token"}))
    text = str(caught.value)
    assert "invalid credentials" in text
    assert PROVIDER_NAMES[provider] in text
    assert "DIGEST_" in text


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("connection refused"),
        httpx.ConnectTimeout("connect timed out"),
        httpx.PoolTimeout("no free connection"),
    ],
)
def test_request_never_sent_is_retryable(provider: str, failure: Exception) -> None:
    with pytest.raises(RetryableError) as caught:
        _send(provider, failure)
    assert "nothing was sent" in str(caught.value)
    assert caught.value.__cause__ is failure


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.WriteTimeout("write timed out"),
        httpx.RemoteProtocolError("server disconnected without sending a response"),
        httpx.ReadError("connection reset by peer"),
    ],
)
def test_failure_after_sending_is_ambiguous(provider: str, failure: Exception) -> None:
    with pytest.raises(AmbiguousError) as caught:
        _send(provider, failure)
    assert "may have accepted" in str(caught.value)


def test_success_status_with_garbage_body_is_ambiguous(provider: str) -> None:
    # (SendGrid's success is a bodiless 202: a 200 with a body is just as unexpected.)
    with pytest.raises(AmbiguousError) as caught:
        _send(provider, httpx.Response(200, content=b"<html>gateway</html>"))
    assert "may have been accepted" in str(caught.value)


def test_other_client_errors_are_permanent_with_the_providers_message(provider: str) -> None:
    with pytest.raises(PermanentError) as caught:
        _send(provider, json_response(422, {"message": "The From address is not allowed"}))
    assert "The From address is not allowed" in str(caught.value)


def test_empty_batch_sends_nothing(provider: str) -> None:
    api = FakeApi(json_response(500, {}))
    assert FACTORIES[provider](api.transport).send_batch([]) == []
    assert api.requests == []


def test_oversized_batch_is_refused_before_sending(provider: str) -> None:
    api = FakeApi(json_response(500, {}))
    backend = FACTORIES[provider](api.transport)
    with pytest.raises(ValueError, match="at most"):
        backend.send_batch(build_batch(backend.max_batch_size + 1))
    assert api.requests == []


def test_one_client_is_reused_and_closed(provider: str) -> None:
    api = FakeApi(json_response(500, {}))
    backend = FACTORIES[provider](api.transport)
    client = backend.client
    for _ in range(2):
        with pytest.raises(RetryableError):
            backend.send(build_message())
    assert backend.client is client
    assert len(api.requests) == 2
    backend.close()
    assert client.is_closed


def test_given_client_is_not_closed() -> None:
    client = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    PostmarkBackend("token", client=client).close()
    assert not client.is_closed


@pytest.mark.parametrize(
    ("name", "extra", "default_url"),
    [
        ("postmark", {}, "https://api.postmarkapp.com/email/batch"),
        ("sendgrid", {}, "https://api.sendgrid.com/v3/mail/send"),
        ("mailgun", {"mailgun_domain": "mg.example.com"}, "https://api.mailgun.net/v3/"),
        ("resend", {}, "https://api.resend.com/emails/batch"),
        (
            "ses",
            {"ses_access_key_id": "AKID", "ses_secret_access_key": "s3cret"},
            "https://email.us-east-1.amazonaws.com/v2/email/outbound-emails",
        ),
    ],
)
def test_settings_give_default_url_timeout_and_key(
    name: str, extra: dict[str, Any], default_url: str, tmp_path: Path
) -> None:
    values: dict[str, Any] = {
        "email_backend": name,
        "email_api_key": "k-123",
        "send_timeout": 7.5,
        "outbox_dir": tmp_path,
        **extra,
    }
    settings = Settings(_env_file=None, **values)
    backend = get_backend(settings)
    assert isinstance(backend, HttpBackend)
    assert backend.client.timeout.read == 7.5
    assert backend.client.timeout.connect == 7.5
    api = FakeApi(json_response(500, {}))
    backend = type(backend).from_settings(settings, transport=api.transport)
    with pytest.raises(RetryableError):
        backend.send(build_message())
    assert str(api.last.url).startswith(default_url)
    custom = settings.model_copy(update={"email_api_url": "https://proxy.example.net/mail/"})
    backend = type(backend).from_settings(custom, transport=api.transport)
    with pytest.raises(RetryableError):
        backend.send(build_message())
    assert str(api.last.url).startswith("https://proxy.example.net/mail/")
    assert "//" not in str(api.last.url).removeprefix("https://")


def test_parse_retry_after_forms() -> None:
    now = datetime(2025, 2, 10, 8, 0, tzinfo=UTC)
    assert parse_retry_after("30", now=now) == 30
    assert parse_retry_after(" 2.5 ", now=now) == 2.5
    assert parse_retry_after("Mon, 10 Feb 2025 08:01:00 GMT", now=now) == 60
    assert parse_retry_after("Mon, 10 Feb 2025 07:59:00 GMT", now=now) == 0
    assert parse_retry_after("-5", now=now) == 0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after("", now=now) is None
    assert parse_retry_after(None, now=now) is None


def test_format_address() -> None:
    assert format_address("a@example.com") == "a@example.com"
    assert format_address("a@example.com", "Reader 1") == "Reader 1 <a@example.com>"
    assert format_address("a@example.com", "Doe, Jane") == '"Doe, Jane" <a@example.com>'
    assert format_address("a@example.com", "J. Doe") == '"J. Doe" <a@example.com>'
    assert format_address("a@example.com", 'Say "hi"') == '"Say \\"hi\\"" <a@example.com>'
    assert format_address("a@example.com", "Zoë").startswith("=?utf-8?")


def test_a_json_array_is_written_in_chunks_of_whole_elements() -> None:
    sizes = [70_000, 5, 120_000, 300_000, 1, 64_000, 64_000, 64_000, 0]
    items = [f"{n:03d}" + "x" * size for n, size in enumerate(sizes)]
    array = JsonArray()
    for item in items:
        encoded = orjson.dumps(item)
        # An element may come in several pieces; they are joined only as the body is written.
        array.append([encoded[:3], encoded[3:]], len(encoded))

    chunks = list(array)

    assert b"".join(chunks) == orjson.dumps(items)
    assert array.length == len(orjson.dumps(items))
    assert list(array) == chunks  # a body can be written again (a retried call)
    assert 1 < len(chunks) < len(items)
    for chunk in chunks:
        # A chunk stays under CHUNK_BYTES unless one element alone is larger.
        assert len(chunk) <= CHUNK_BYTES or chunk.count(b'"') <= 2 + 2
    assert orjson.loads(b"".join(list(JsonArray()))) == []
