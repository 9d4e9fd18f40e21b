"""Mailgun's messages API against a local fake: one templated call per batch.

The fake renders each recipient's message the way Mailgun does (``%recipient.key%`` replaced
from ``recipient-variables``) and the tests compare it with the message we meant to send.
"""

from __future__ import annotations

import base64
import re
from typing import Any
from urllib.parse import parse_qsl

import httpx
import orjson
import pytest
from backend_fakes import FakeApi, build_batch, build_message, json_response

from digest.backends.base import ResultStatus
from digest.backends.errors import PermanentError, RetryableError
from digest.backends.mailgun import MailgunBackend
from digest.message import OutgoingMessage

QUEUED = json_response(200, {"id": "<20250210.1@mg.example.com>", "message": "Queued. Thank you."})
_VARIABLE = re.compile(r"%recipient\.([^%\s]+)%")


def _backend(api: FakeApi, **kwargs: Any) -> MailgunBackend:
    return MailgunBackend("key-abc", domain="mg.example.com", transport=api.transport, **kwargs)


def _form(request: httpx.Request) -> list[tuple[str, str]]:
    return parse_qsl(request.content.decode("ascii"), keep_blank_values=True)


def _rendered(request: httpx.Request) -> dict[str, dict[str, str]]:
    """What each recipient receives: field -> value, after Mailgun's substitution."""
    form = _form(request)
    fields = {k: v for k, v in form if k not in ("to", "recipient-variables")}
    variables = orjson.loads(dict(form).get("recipient-variables", "{}"))
    out = {}
    for to in (v for k, v in form if k == "to"):
        address = re.sub(r".*<(.*)>", r"\1", to)
        own: dict[str, str] = variables.get(address, {})

        def substitute(match: re.Match[str], own: dict[str, str] = own) -> str:
            return own.get(match[1], match[0])

        out[address] = {k: _VARIABLE.sub(substitute, v) for k, v in fields.items()} | {"to": to}
    return out


def _expected(message: OutgoingMessage) -> dict[str, str]:
    fields = {
        "from": message.sender,
        "subject": message.subject,
        "html": message.html,
        "text": message.text,
        "v:message_id": message.message_id,
    }
    fields.update({f"h:{k}": v for k, v in message.headers.items()})
    fields.update({f"v:{k}": v for k, v in message.metadata.items()})
    return fields


def test_batch_is_one_call_and_every_recipient_gets_their_own_message() -> None:
    api = FakeApi(QUEUED)
    batch = build_batch(3)
    results = _backend(api).send_batch(batch)

    assert len(api.requests) == 1
    request = api.last
    assert str(request.url) == "https://api.mailgun.net/v3/mg.example.com/messages"
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"api:key-abc").decode()
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = _form(request)
    assert [v for k, v in form if k == "to"] == [
        "Reader 1 <reader1@example.org>",
        "Reader 2 <reader2@example.org>",
        "Reader 3 <reader3@example.org>",
    ]
    fields = dict(form)
    # The body is sent once, as a template; what differs travels as recipient variables.
    assert "%recipient." in fields["html"]
    assert "tok00001" not in fields["html"]
    assert fields["h:List-Unsubscribe"] == "%recipient.h:List-Unsubscribe%"
    assert fields["h:List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert fields["v:edition"] == "weekly-2025-w07"
    assert [k for k, _ in form].count("h:List-Unsubscribe") == 1
    rendered = _rendered(request)
    for message in batch:
        got = rendered[message.to]
        for key, value in _expected(message).items():
            assert got[key] == value, key

    assert [r.status for r in results] == [ResultStatus.ACCEPTED] * 3
    assert {r.provider_message_id for r in results} == {"<20250210.1@mg.example.com>"}


def test_single_message_goes_without_recipient_variables() -> None:
    api = FakeApi(QUEUED)
    message = build_message(7, reply_to="editors@verdicts.example.com")
    _backend(api).send(message)
    fields = dict(_form(api.last))
    assert "recipient-variables" not in fields
    assert fields["html"] == message.html
    assert fields["text"] == message.text
    assert fields["h:List-Unsubscribe"] == message.headers["List-Unsubscribe"]
    assert fields["h:Reply-To"] == "editors@verdicts.example.com"
    assert fields["v:message_id"] == message.message_id


def test_messages_that_cannot_share_a_template_are_sent_apart() -> None:
    api = FakeApi(QUEUED)
    batch = [
        build_message(1),
        build_message(2, html="<p>A completely different edition</p>"),
        build_message(3),
        build_message(4, sender="Other <other@verdicts.example.com>"),
    ]
    results = _backend(api).send_batch(batch)
    assert len(api.requests) == 3
    recipients = [[v for k, v in _form(r) if k == "to"] for r in api.requests]
    assert sorted(len(r) for r in recipients) == [1, 1, 2]
    everyone: dict[str, dict[str, str]] = {}
    for request in api.requests:
        everyone.update(_rendered(request))
    for message in batch:
        assert everyone[message.to]["html"] == message.html
        assert everyone[message.to]["from"] == message.sender
    assert all(r.accepted for r in results)


def test_body_that_already_contains_placeholder_syntax_is_sent_unchanged() -> None:
    api = FakeApi(QUEUED)
    odd = build_message(2, html="<p>Use %recipient.name% in Mailgun templates</p>")
    _backend(api).send_batch([build_message(1), odd, build_message(3)])
    assert len(api.requests) == 2
    alone = next(r for r in api.requests if "Mailgun templates" in dict(_form(r))["html"])
    assert dict(_form(alone))["html"] == odd.html
    assert "recipient-variables" not in dict(_form(alone))


def test_invalid_address_is_rejected_the_others_sent() -> None:
    api = FakeApi(QUEUED)
    batch = [build_message(1), build_message(2, to="not-an-address"), build_message(3)]
    results = _backend(api).send_batch(batch)
    assert [r.status for r in results] == [
        ResultStatus.ACCEPTED,
        ResultStatus.REJECTED,
        ResultStatus.ACCEPTED,
    ]
    assert results[1].hard_invalid
    assert "not-an-address" not in api.last.content.decode()


def test_eu_region_and_unknown_domain() -> None:
    api = FakeApi(json_response(404, {"message": "Domain not found: mg.example.com"}))
    backend = _backend(api, base_url="https://api.eu.mailgun.net/")
    with pytest.raises(PermanentError) as caught:
        backend.send(build_message())
    assert str(api.last.url) == "https://api.eu.mailgun.net/v3/mg.example.com/messages"
    assert "DIGEST_MAILGUN_DOMAIN" in str(caught.value)
    assert "Domain not found" in str(caught.value)


def test_failure_of_a_later_call_keeps_the_earlier_results() -> None:
    api = FakeApi(QUEUED, json_response(503, {"message": "busy"}))
    batch = [build_message(1), build_message(2, html="<p>other</p>")]
    with pytest.raises(RetryableError) as caught:
        _backend(api).send_batch(batch)
    assert [r.message_id for r in caught.value.partial_results] == [batch[0].message_id]
    assert caught.value.partial_results[0].accepted
    assert caught.value.unsent == ()  # the failed call carried the last message


def test_a_failed_call_names_the_messages_of_the_calls_after_it() -> None:
    api = FakeApi(json_response(503, {"message": "busy"}))
    batch = [build_message(1), build_message(2, html="<p>other</p>")]
    with pytest.raises(RetryableError) as caught:
        _backend(api).send_batch(batch)
    assert caught.value.partial_results == ()
    assert caught.value.unsent == (batch[1].message_id,)


def test_bad_domain_setting_is_refused() -> None:
    with pytest.raises(Exception, match="DIGEST_MAILGUN_DOMAIN"):
        MailgunBackend("key", domain="mg.example.com/../x")
