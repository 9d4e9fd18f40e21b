"""Postmark's batch API against a local fake: payload, per-message results, errors."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
import orjson
import pytest
from backend_fakes import FakeApi, build_batch, build_message, json_response

from digest.backends.base import ResultStatus
from digest.backends.errors import AmbiguousError, PermanentError
from digest.backends.postmark import PostmarkBackend


def _accept_all(request: httpx.Request) -> httpx.Response:
    sent = orjson.loads(request.content)
    return json_response(
        200,
        [
            {"ErrorCode": 0, "Message": "OK", "MessageID": f"pm-{i}", "To": item["To"]}
            for i, item in enumerate(sent)
        ],
    )


def _backend(api: FakeApi, **kwargs: Any) -> PostmarkBackend:
    return PostmarkBackend("server-token-1", transport=api.transport, **kwargs)


def test_batch_payload_and_results() -> None:
    api = FakeApi(_accept_all)
    batch = build_batch(3)
    batch[1] = build_message(2, reply_to="Editors <editors@verdicts.example.com>")
    results = _backend(api, message_stream="weekly-digest").send_batch(batch)

    assert len(api.requests) == 1
    request = api.last
    assert request.method == "POST"
    assert str(request.url) == "https://api.postmarkapp.com/email/batch"
    assert request.headers["X-Postmark-Server-Token"] == "server-token-1"
    assert request.headers["Content-Type"] == "application/json"
    sent = api.body()
    assert len(sent) == 3
    first = sent[0]
    assert first["From"] == "Weekly AI Tool Verdicts <digest@verdicts.example.com>"
    assert first["To"] == "Reader 1 <reader1@example.org>"
    assert first["Subject"] == batch[0].subject
    assert first["HtmlBody"] == batch[0].html
    assert first["TextBody"] == batch[0].text
    assert first["MessageStream"] == "weekly-digest"
    assert first["Metadata"] == {"edition": "weekly-2025-w07", "subscriber": "1"}
    headers = {h["Name"]: h["Value"] for h in first["Headers"]}
    assert headers["List-Unsubscribe"] == batch[0].headers["List-Unsubscribe"]
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert headers["Message-ID"] == batch[0].message_id
    assert [h["Name"] for h in first["Headers"]].count("List-Unsubscribe") == 1
    assert "ReplyTo" not in first
    assert sent[1]["ReplyTo"] == "Editors <editors@verdicts.example.com>"

    assert [r.status for r in results] == [ResultStatus.ACCEPTED] * 3
    assert [r.provider_message_id for r in results] == ["pm-0", "pm-1", "pm-2"]
    assert [r.message_id for r in results] == [m.message_id for m in batch]


def test_display_names_are_quoted_or_encoded() -> None:
    api = FakeApi(_accept_all)
    _backend(api).send_batch(
        [
            build_message(1, to_name="Doe, Jane"),
            build_message(2, to_name="Zoë"),
            build_message(3, to_name=""),
        ]
    )
    sent = api.body()
    assert sent[0]["To"] == '"Doe, Jane" <reader1@example.org>'
    assert sent[1]["To"].startswith("=?utf-8?") and sent[1]["To"].endswith("<reader2@example.org>")
    assert sent[2]["To"] == "reader3@example.org"


def test_full_batch_is_one_call() -> None:
    api = FakeApi(_accept_all)
    results = _backend(api).send_batch(build_batch(500))
    assert len(api.requests) == 1
    assert len(api.body()) == 500
    assert len(results) == 500


def test_large_messages_are_split_under_the_50_mb_call_limit() -> None:
    api = FakeApi(_accept_all)
    big = "<p>" + "x" * 200_000 + "é</p>"  # ~200 KB each: 500 of them would be ~100 MB
    messages = [dataclasses.replace(m, html=big) for m in build_batch(500)]
    results = _backend(api).send_batch(messages)
    # Split on the exact encoded size: two calls, the first as full as the limit allows.
    assert len(api.requests) == 2
    first, second = (request.content for request in api.requests)
    assert len(first) <= 50 * 1024 * 1024 and len(second) <= 50 * 1024 * 1024
    assert len(first) + len(orjson.dumps(orjson.loads(second)[0])) + 1 > 50 * 1024 * 1024
    assert sum(len(orjson.loads(request.content)) for request in api.requests) == 500
    assert [r.message_id for r in results] == [m.message_id for m in messages]
    assert all(r.status == ResultStatus.ACCEPTED for r in results)


def test_some_recipients_rejected_others_accepted() -> None:
    answer = [
        {"ErrorCode": 0, "Message": "OK", "MessageID": "pm-a"},
        {
            "ErrorCode": 406,
            "Message": "You tried to send to a recipient that has been marked as inactive.",
        },
        {"ErrorCode": 300, "Message": "Invalid 'To' address: 'reader3@example'."},
        {"ErrorCode": 300, "Message": "Invalid 'From' address: 'digest@'."},
        {"ErrorCode": 0, "Message": "OK", "MessageID": "pm-e"},
        {"ErrorCode": 701, "Message": "Something else"},
    ]
    api = FakeApi(json_response(200, answer))
    results = _backend(api).send_batch(build_batch(6))

    assert [r.status for r in results] == [
        ResultStatus.ACCEPTED,
        ResultStatus.REJECTED,
        ResultStatus.REJECTED,
        ResultStatus.REJECTED,
        ResultStatus.ACCEPTED,
        ResultStatus.REJECTED,
    ]
    assert [r.hard_invalid for r in results] == [False, True, True, False, False, False]
    assert results[1].error is not None and "406" in results[1].error
    assert results[4].provider_message_id == "pm-e"
    assert results[2].provider_message_id is None


def test_whole_request_refused_is_permanent_with_postmarks_message() -> None:
    api = FakeApi(json_response(422, {"ErrorCode": 410, "Message": "Too many batch messages."}))
    with pytest.raises(PermanentError, match="Too many batch messages"):
        _backend(api).send_batch(build_batch(2))


def test_unauthorized_names_postmark_and_the_setting() -> None:
    api = FakeApi(json_response(401, {"ErrorCode": 10, "Message": "Bad or missing API token"}))
    with pytest.raises(PermanentError) as caught:
        _backend(api).send(build_message())
    assert "Postmark" in str(caught.value)
    assert "invalid credentials" in str(caught.value)
    assert "DIGEST_EMAIL_API_KEY" in str(caught.value)
    assert "Bad or missing API token" in str(caught.value)


@pytest.mark.parametrize(
    "answer",
    [
        [{"ErrorCode": 0, "Message": "OK", "MessageID": "pm-a"}],  # one entry for two messages
        {"ErrorCode": 0, "Message": "OK"},  # not a list
        [{"ErrorCode": 0, "Message": "OK"}, {"ErrorCode": 0, "Message": "OK"}],  # no MessageID
        ["OK", "OK"],
    ],
)
def test_malformed_answers_are_ambiguous(answer: object) -> None:
    api = FakeApi(json_response(200, answer))
    with pytest.raises(AmbiguousError):
        _backend(api).send_batch(build_batch(2))
