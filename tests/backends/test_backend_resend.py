"""Resend's batch API against a local fake: payload, idempotency, per-email results."""

from __future__ import annotations

import httpx
import orjson
import pytest
from backend_fakes import FakeApi, build_batch, build_message, json_response

from digest.backends.base import ResultStatus
from digest.backends.errors import AmbiguousError, PermanentError, RetryableError
from digest.backends.resend import ResendBackend, batch_idempotency_key, resend_sender


def _accept_all(request: httpx.Request) -> httpx.Response:
    emails = orjson.loads(request.content)
    return json_response(200, {"data": [{"id": f"re-{i}"} for i in range(len(emails))]})


def _backend(api: FakeApi) -> ResendBackend:
    return ResendBackend("re_123", transport=api.transport)


def test_batch_payload_and_results() -> None:
    api = FakeApi(_accept_all)
    batch = build_batch(3)
    batch[2] = build_message(3, reply_to="editors@verdicts.example.com")
    results = _backend(api).send_batch(batch)

    assert len(api.requests) == 1
    request = api.last
    assert str(request.url) == "https://api.resend.com/emails/batch"
    assert request.headers["Authorization"] == "Bearer re_123"
    assert request.headers["x-batch-validation"] == "permissive"
    assert request.headers["Idempotency-Key"] == batch_idempotency_key(batch)
    emails = api.body()
    assert len(emails) == 3
    first = emails[0]
    assert first["from"] == "Weekly AI Tool Verdicts <digest@verdicts.example.com>"
    assert first["to"] == ["Reader 1 <reader1@example.org>"]
    assert first["html"] == batch[0].html
    assert first["text"] == batch[0].text
    assert first["headers"] == dict(batch[0].headers)
    assert first["tags"] == [
        {"name": "edition", "value": "weekly-2025-w07"},
        {"name": "subscriber", "value": "1"},
    ]
    assert "reply_to" not in first
    assert emails[2]["reply_to"] == ["editors@verdicts.example.com"]
    assert [r.provider_message_id for r in results] == ["re-0", "re-1", "re-2"]
    assert ResendBackend.supports_idempotency


def test_idempotency_key_is_stable_per_batch() -> None:
    batch = build_batch(3)
    assert batch_idempotency_key(batch) == batch_idempotency_key(build_batch(3))
    assert batch_idempotency_key(batch) != batch_idempotency_key(build_batch(3, start=2))
    assert batch_idempotency_key(batch) != batch_idempotency_key(batch[:2])
    assert len(batch_idempotency_key(batch)) <= 256


def test_tags_are_reduced_to_allowed_characters() -> None:
    api = FakeApi(_accept_all)
    _backend(api).send(build_message(metadata={"edition id": "weekly/2025 w07"}))
    assert api.body()[0]["tags"] == [{"name": "edition_id", "value": "weekly_2025_w07"}]


def test_some_emails_refused_others_accepted() -> None:
    answer = {
        "data": [{"id": "re-a"}, {"id": "re-c"}],
        "errors": [{"index": 1, "message": "Invalid `to` field. Please use our testing address."}],
    }
    api = FakeApi(json_response(200, answer))
    results = _backend(api).send_batch(build_batch(3))
    assert [r.status for r in results] == [
        ResultStatus.ACCEPTED,
        ResultStatus.REJECTED,
        ResultStatus.ACCEPTED,
    ]
    assert [r.provider_message_id for r in results] == ["re-a", None, "re-c"]
    assert results[1].hard_invalid
    assert results[1].error is not None and "Invalid `to` field" in results[1].error


def test_refusal_not_about_the_recipient_is_not_hard() -> None:
    answer = {"data": [], "errors": [{"index": 0, "message": "The `subject` field is missing."}]}
    results = _backend(FakeApi(json_response(200, answer))).send_batch(build_batch(1))
    assert results[0].status is ResultStatus.REJECTED
    assert not results[0].hard_invalid


@pytest.mark.parametrize(
    "answer",
    [
        {"data": [{"id": "re-a"}]},  # too few ids
        {"data": [{"id": "re-a"}, {"id": "re-b"}, {"id": "re-c"}]},  # too many
        {"data": [{"id": "re-a"}, {"nope": 1}]},
        {"data": "yes"},
        [],
    ],
)
def test_malformed_answers_are_ambiguous(answer: object) -> None:
    with pytest.raises(AmbiguousError):
        _backend(FakeApi(json_response(200, answer))).send_batch(build_batch(2))


def test_concurrent_idempotent_request_is_retryable_other_409_permanent() -> None:
    busy = json_response(
        409, {"statusCode": 409, "name": "concurrent_idempotent_requests", "message": "busy"}
    )
    with pytest.raises(RetryableError, match="idempotency key"):
        _backend(FakeApi(busy)).send(build_message())
    mismatch = json_response(
        409, {"statusCode": 409, "name": "invalid_idempotent_request", "message": "payload differs"}
    )
    with pytest.raises(PermanentError, match="payload differs"):
        _backend(FakeApi(mismatch)).send(build_message())


def test_sender_format_resend_accepts() -> None:
    assert resend_sender('"Weekly, AI" <d@example.com>') == "Weekly, AI <d@example.com>"
    assert resend_sender("Zoë <d@example.com>") == "Zoë <d@example.com>"
    assert resend_sender("d@example.com") == "d@example.com"
