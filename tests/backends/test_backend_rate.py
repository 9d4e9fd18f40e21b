"""Each backend's documented batch limit and default rate, and the rate a send uses:
DIGEST_SEND_RATE when set, else the account's limit (SES GetAccount), else the default."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest
from backend_fakes import FakeApi, json_response

from digest.backends import sigv4
from digest.backends.base import effective_send_rate
from digest.backends.memory import MemoryBackend
from digest.backends.registry import BACKENDS
from digest.backends.ses import SesBackend
from digest.config import Settings

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
ACCOUNT = json_response(
    200,
    {
        "SendQuota": {"Max24HourSend": 50000.0, "MaxSendRate": 42.0, "SentLast24Hours": 3.0},
        "SendingEnabled": True,
    },
)
DOCUMENTED_BATCH = {
    "postmark": 500,
    "sendgrid": 1000,
    "mailgun": 1000,
    "resend": 100,
    "ses": 1,
}


def _settings(**values: object) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        environment="test",
        database_url="sqlite://",
        secret_key="rate-test-secret-0123456789abcdef",
        **values,
    )


def _ses(api: FakeApi) -> SesBackend:
    return SesBackend("AKIDEXAMPLE", SECRET, region="eu-west-1", transport=api.transport)


def test_every_backend_declares_its_batch_limit_and_a_default_rate() -> None:
    for name, backend in BACKENDS.items():
        assert backend.max_batch_size >= 1 and backend.default_rate > 0, name
    for name, size in DOCUMENTED_BATCH.items():
        assert BACKENDS[name].max_batch_size == size, name


def test_a_configured_rate_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SEND_RATE", "7")
    api = FakeApi(ACCOUNT)
    assert effective_send_rate(_settings(), _ses(api)) == 7.0
    assert api.requests == []  # the account is not even asked


def test_without_a_configured_rate_the_backend_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DIGEST_SEND_RATE", raising=False)
    assert effective_send_rate(_settings(), MemoryBackend()) == MemoryBackend.default_rate


def test_ses_uses_the_accounts_max_send_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DIGEST_SEND_RATE", raising=False)
    api = FakeApi(ACCOUNT)
    backend = _ses(api)
    assert effective_send_rate(_settings(), backend) == 42.0
    assert effective_send_rate(_settings(), backend) == 42.0
    assert len(api.requests) == 1  # asked once per backend
    request = api.last
    assert request.method == "GET"
    assert str(request.url) == "https://email.eu-west-1.amazonaws.com/v2/email/account"
    when = datetime.strptime(request.headers["X-Amz-Date"], "%Y%m%dT%H%M%S%z")
    expected = sigv4.sign(
        "GET",
        str(request.url),
        {},
        b"",
        access_key_id="AKIDEXAMPLE",
        secret_access_key=SECRET,
        region="eu-west-1",
        service="ses",
        now=when,
    )
    assert request.headers["Authorization"] == expected["Authorization"]


@pytest.mark.parametrize(
    "answer",
    [
        json_response(403, {"message": "not authorized to GetAccount"}),
        json_response(200, {"SendingEnabled": True}),
        httpx.ConnectError("refused"),
    ],
)
def test_ses_falls_back_to_its_default_when_the_account_cannot_be_read(
    answer: httpx.Response | Exception, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DIGEST_SEND_RATE", raising=False)
    assert effective_send_rate(_settings(), _ses(FakeApi(answer))) == SesBackend.default_rate
