"""SES API v2 against a local fake: signed raw MIME sends and SES's named errors."""

from __future__ import annotations

import base64
import email
import email.policy
from datetime import datetime

import httpx
import orjson
import pytest
from backend_fakes import FakeApi, build_message, json_response

from digest.backends import sigv4
from digest.backends.base import ResultStatus
from digest.backends.errors import AmbiguousError, PermanentError, RateLimitedError
from digest.backends.ses import SesBackend

SENT = json_response(200, {"MessageId": "0102018d-ses-id"})


def _backend(api: FakeApi, **kwargs: object) -> SesBackend:
    return SesBackend(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        region="eu-west-1",
        transport=api.transport,
        **kwargs,  # type: ignore[arg-type]
    )


def _error(status: int, code: str, message: str, **headers: str) -> httpx.Response:
    return json_response(status, {"message": message}, **{"X-Amzn-ErrorType": code}, **headers)


def test_signed_raw_send() -> None:
    api = FakeApi(SENT)
    message = build_message(4)
    result = _backend(api, configuration_set="digest-events").send(message)

    request = api.last
    assert str(request.url) == "https://email.eu-west-1.amazonaws.com/v2/email/outbound-emails"
    # The signature is over this exact request: recompute it from what was sent.
    when = datetime.strptime(request.headers["X-Amz-Date"], "%Y%m%dT%H%M%S%z")
    expected = sigv4.sign(
        "POST",
        str(request.url),
        {"Content-Type": request.headers["Content-Type"]},
        request.content,
        access_key_id="AKIDEXAMPLE",
        secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        region="eu-west-1",
        service="ses",
        now=when,
    )
    assert request.headers["Authorization"] == expected["Authorization"]
    assert "/eu-west-1/ses/aws4_request" in request.headers["Authorization"]

    body = orjson.loads(request.content)
    assert body["Destination"] == {"ToAddresses": ["reader4@example.org"]}
    assert body["ConfigurationSetName"] == "digest-events"
    assert body["EmailTags"] == [
        {"Name": "edition", "Value": "weekly-2025-w07"},
        {"Name": "subscriber", "Value": "4"},
    ]
    raw = base64.b64decode(body["Content"]["Raw"]["Data"])
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Message-ID"] == message.message_id
    assert parsed.get_all("List-Unsubscribe") == [message.headers["List-Unsubscribe"]]
    assert parsed["To"].addresses[0].addr_spec == "reader4@example.org"

    assert result.status is ResultStatus.ACCEPTED
    assert result.provider_message_id == "0102018d-ses-id"


def test_one_message_per_call() -> None:
    assert SesBackend.max_batch_size == 1
    with pytest.raises(ValueError, match="at most 1"):
        _backend(FakeApi(SENT)).send_batch([build_message(1), build_message(2)])


def test_message_rejected_is_a_rejected_result() -> None:
    api = FakeApi(_error(400, "MessageRejected", "Email address is not verified."))
    result = _backend(api).send(build_message())
    assert result.status is ResultStatus.REJECTED
    assert not result.hard_invalid
    assert result.error is not None and "not verified" in result.error


def test_bad_address_is_a_hard_rejection() -> None:
    api = FakeApi(
        json_response(400, {"__type": "BadRequestException", "message": "Illegal address"})
    )
    result = _backend(api).send(build_message())
    assert result.status is ResultStatus.REJECTED
    assert result.hard_invalid


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "ThrottlingException"),
        (429, "TooManyRequestsException:http://internal.amazon.com/coral/com.amazonaws.sesv2/"),
        (400, "LimitExceededException"),
    ],
)
def test_throttling_is_rate_limited(status: int, code: str) -> None:
    api = FakeApi(_error(status, code, "Maximum sending rate exceeded.", **{"Retry-After": "2"}))
    with pytest.raises(RateLimitedError) as caught:
        _backend(api).send(build_message())
    assert caught.value.retry_after == 2


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("SendingPausedException", "paused"),
        ("AccountSendingPaused", "paused"),
        ("AccountSuspendedException", "suspended"),
        ("MailFromDomainNotVerifiedException", "MAIL FROM domain"),
    ],
)
def test_account_problems_are_permanent(code: str, words: str) -> None:
    with pytest.raises(PermanentError, match=words):
        _backend(FakeApi(_error(400, code, "Sending paused"))).send(build_message())


def test_invalid_credentials_name_the_settings() -> None:
    api = FakeApi(
        _error(403, "UnrecognizedClientException", "The security token included is invalid.")
    )
    with pytest.raises(PermanentError) as caught:
        _backend(api).send(build_message())
    assert "invalid credentials" in str(caught.value)
    assert "DIGEST_SES_ACCESS_KEY_ID" in str(caught.value)


def test_answer_without_message_id_is_ambiguous() -> None:
    with pytest.raises(AmbiguousError):
        _backend(FakeApi(json_response(200, {"Id": "x"}))).send(build_message())
