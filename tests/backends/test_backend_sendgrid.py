"""SendGrid's Mail Send API against a local fake: personalizations, substitutions, errors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from backend_fakes import FakeApi, build_batch, build_message, json_response

from digest.backends.base import ResultStatus
from digest.backends.errors import PermanentError
from digest.backends.sendgrid import SendGridBackend

ACCEPTED = httpx.Response(202, headers={"X-Message-Id": "sg-batch-1"})


def _backend(api: FakeApi) -> SendGridBackend:
    return SendGridBackend("SG.secret", transport=api.transport)


def _render(content: str, personalization: dict[str, Any]) -> str:
    """SendGrid's substitution: each tag replaced by its value."""
    for tag, value in personalization.get("substitutions", {}).items():
        content = content.replace(tag, value)
    return content


def test_one_personalization_per_message() -> None:
    api = FakeApi(ACCEPTED)
    batch = [build_message(n, reply_to="Editors <editors@verdicts.example.com>") for n in (1, 2, 3)]
    results = _backend(api).send_batch(batch)

    assert len(api.requests) == 1
    request = api.last
    assert str(request.url) == "https://api.sendgrid.com/v3/mail/send"
    assert request.headers["Authorization"] == "Bearer SG.secret"
    body = api.body()
    assert body["from"] == {
        "email": "digest@verdicts.example.com",
        "name": "Weekly AI Tool Verdicts",
    }
    assert body["reply_to"] == {"email": "editors@verdicts.example.com", "name": "Editors"}
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    text, html = (c["value"] for c in body["content"])
    personalizations = body["personalizations"]
    assert len(personalizations) == 3
    for message, personalization in zip(batch, personalizations, strict=True):
        assert personalization["to"] == [{"email": message.to, "name": message.to_name}]
        assert personalization["subject"] == message.subject
        assert personalization["headers"] == dict(message.headers)
        assert personalization["custom_args"] == {
            **message.metadata,
            "message_id": message.message_id,
        }
        assert _render(html, personalization) == message.html
        assert _render(text, personalization) == message.text
    assert "tok00002" not in html

    assert [r.status for r in results] == [ResultStatus.ACCEPTED] * 3
    assert {r.provider_message_id for r in results} == {"sg-batch-1"}


def test_full_batch_is_one_call() -> None:
    api = FakeApi(ACCEPTED)
    _backend(api).send_batch(build_batch(1000))
    assert len(api.requests) == 1
    assert len(api.body()["personalizations"]) == 1000


def test_locally_invalid_address_is_rejected_and_left_out() -> None:
    api = FakeApi(ACCEPTED)
    batch = [build_message(1), build_message(2, to="reader2@@example.org"), build_message(3)]
    results = _backend(api).send_batch(batch)
    assert [r.status for r in results] == [
        ResultStatus.ACCEPTED,
        ResultStatus.REJECTED,
        ResultStatus.ACCEPTED,
    ]
    assert results[1].hard_invalid
    sent_to = [p["to"][0]["email"] for p in api.body()["personalizations"]]
    assert sent_to == ["reader1@example.org", "reader3@example.org"]


def test_addresses_sendgrid_refuses_are_rejected_and_the_rest_resent() -> None:
    refused = json_response(
        400,
        {
            "errors": [
                {
                    "message": "Does not contain a valid address.",
                    "field": "personalizations.1.to.0.email",
                    "help": "http://sendgrid.com/docs",
                }
            ]
        },
    )
    api = FakeApi(refused, ACCEPTED)
    batch = build_batch(3)
    results = _backend(api).send_batch(batch)
    assert len(api.requests) == 2
    resent = [p["to"][0]["email"] for p in api.body(1)["personalizations"]]
    assert resent == ["reader1@example.org", "reader3@example.org"]
    assert [r.status for r in results] == [
        ResultStatus.ACCEPTED,
        ResultStatus.REJECTED,
        ResultStatus.ACCEPTED,
    ]
    assert results[1].hard_invalid
    assert results[1].error is not None and "valid address" in results[1].error


def test_a_request_level_400_is_permanent_with_sendgrids_messages() -> None:
    api = FakeApi(
        json_response(
            400,
            {
                "errors": [
                    {
                        "message": "The from address does not match a verified Sender Identity.",
                        "field": "from",
                    },
                    {
                        "message": "Does not contain a valid address.",
                        "field": "personalizations.0.to.0.email",
                    },
                ]
            },
        )
    )
    with pytest.raises(PermanentError, match="verified Sender Identity") as caught:
        _backend(api).send_batch(build_batch(2))
    assert len(api.requests) == 1
    assert caught.value.partial_results == ()


def test_a_request_level_refusal_after_a_resend_keeps_the_rejections() -> None:
    blame = json_response(
        400, {"errors": [{"message": "Invalid", "field": "personalizations.0.to.0.email"}]}
    )
    whole = json_response(400, {"errors": [{"message": "Bad content", "field": "content"}]})
    api = FakeApi(blame, whole)
    with pytest.raises(PermanentError, match="Bad content") as caught:
        _backend(api).send_batch(build_batch(3))
    assert len(api.requests) == 2
    assert [r.message_id for r in caught.value.partial_results] == [build_message(1).message_id]
    assert caught.value.partial_results[0].status is ResultStatus.REJECTED


def test_different_bodies_go_in_separate_calls() -> None:
    api = FakeApi(ACCEPTED)
    batch = [build_message(1), build_message(2, html="<p>Another edition</p>"), build_message(3)]
    results = _backend(api).send_batch(batch)
    assert len(api.requests) == 2
    sizes = sorted(len(api.body(n)["personalizations"]) for n in range(2))
    assert sizes == [1, 2]
    assert all(r.accepted for r in results)


def test_unauthorized() -> None:
    api = FakeApi(
        json_response(401, {"errors": [{"message": "The provided authorization grant is invalid"}]})
    )
    with pytest.raises(PermanentError) as caught:
        _backend(api).send(build_message())
    assert "SendGrid" in str(caught.value)
    assert "invalid credentials" in str(caught.value)
    assert "authorization grant is invalid" in str(caught.value)
