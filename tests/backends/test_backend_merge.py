"""Merge providers (SendGrid, Mailgun) send one call per content variant, and every recipient
gets exactly the body Postmark would have sent.

The fakes rebuild each recipient's message from the request as the provider does: SendGrid
replaces each substitution tag of the personalization, Mailgun each ``%recipient.key%`` from
``recipient-variables``. Both replace key after key, so a value that smuggled in another key's
tag would be caught here as a body that differs from Postmark's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import parse_qsl

import httpx
import orjson
import pytest
from backend_fakes import FakeApi, build_batch, build_message, json_response

from digest.backends.mailgun import MailgunBackend
from digest.backends.merge import group_for_merge
from digest.backends.postmark import PostmarkBackend
from digest.backends.sendgrid import SendGridBackend
from digest.config import Settings
from digest.content.validate import validate_comparison
from digest.content.weeks import IsoWeek
from digest.message import OutgoingMessage
from digest.render.compose import Recipient
from digest.render.edition import EditionRenderer

HOSTILE_NAMES = [
    '<script>alert("x")</script>',
    'Ann & Bob\'s "quotes" <b>bold</b>',
    "{{ 7 * 7 }} {% if 1 %}jinja{% endif %}",
    "-name- [%dg_to%] %name% *|FNAME|*",
    "Zoë \u202e Ünïcode ✓",
    "x" * 300,
]
Bodies = dict[str, tuple[str, str]]  # address -> (html, text)


def _renderer(comparisons_dir: Path, *, tracked: bool = True) -> EditionRenderer:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        database_url="sqlite://",
        secret_key="merge-test-secret-0123456789abcdef",
        base_url="https://verdicts.example.com",
        track_clicks=tracked,
    )
    paths = sorted(comparisons_dir.glob("*.json"))[:3]
    docs = [validate_comparison(json.loads(p.read_text(encoding="utf-8")), p.name) for p in paths]
    week = IsoWeek.containing(docs[0].published_at, dt.UTC)
    return EditionRenderer(
        settings, docs, week=week, archive_url="https://verdicts.example.com/e/1"
    )


def _edition(
    comparisons_dir: Path, names: list[str], *, tracked: bool = True
) -> list[OutgoingMessage]:
    variant = _renderer(comparisons_dir, tracked=tracked).variant_for(())
    assert variant is not None
    return [
        variant.message_for(
            # As an explicit first name the whole value reaches the greeting slot.
            Recipient(n + 1, f"reader{n}@example.org", name, first_name=name, track_clicks=tracked),
            message_id=f"<m{n}@verdicts.example.com>",
            metadata={"edition": "1", "subscriber": str(n + 1)},
        )
        for n, name in enumerate(names)
    ]


def _names(count: int, extra: list[str]) -> list[str]:
    names = [f"Reader {n}" if n % 3 else "" for n in range(count)]
    for position, name in enumerate(extra):
        names[7 + position * 11] = name
    return names


def _postmark_bodies(messages: list[OutgoingMessage]) -> Bodies:
    def answer(request: httpx.Request) -> httpx.Response:
        count = len(orjson.loads(request.content))
        return json_response(200, [{"ErrorCode": 0, "MessageID": f"pm{n}"} for n in range(count)])

    api = FakeApi(answer)
    backend = PostmarkBackend("token", transport=api.transport)
    for start in range(0, len(messages), backend.max_batch_size):
        backend.send_batch(messages[start : start + backend.max_batch_size])
    bodies: Bodies = {}
    for request in api.requests:
        for item in orjson.loads(request.content):
            bodies[parseaddr(item["To"])[1]] = (item["HtmlBody"], item["TextBody"])
    return bodies


def _sendgrid_bodies(api: FakeApi) -> Bodies:
    bodies: Bodies = {}
    for request in api.requests:
        body = orjson.loads(request.content)
        text, html = (part["value"] for part in body["content"])
        for personalization in body["personalizations"]:
            own_html, own_text = html, text
            for tag, value in personalization.get("substitutions", {}).items():
                own_html, own_text = own_html.replace(tag, value), own_text.replace(tag, value)
            bodies[personalization["to"][0]["email"]] = (own_html, own_text)
    return bodies


def _mailgun_bodies(api: FakeApi) -> Bodies:
    bodies: Bodies = {}
    for request in api.requests:
        form = parse_qsl(request.content.decode("ascii"), keep_blank_values=True)
        fields = dict(form)
        variables: dict[str, dict[str, str]] = orjson.loads(fields.get("recipient-variables", "{}"))
        for to in (value for key, value in form if key == "to"):
            address = parseaddr(to)[1]
            html, text = fields["html"], fields["text"]
            for key, value in variables.get(address, {}).items():
                tag = f"%recipient.{key}%"
                html, text = html.replace(tag, value), text.replace(tag, value)
            bodies[address] = (html, text)
    return bodies


SENDGRID_OK = httpx.Response(202, headers={"X-Message-Id": "sg"})
MAILGUN_OK = json_response(200, {"id": "<mg@example.com>", "message": "Queued."})


@pytest.mark.parametrize("provider", ["sendgrid", "mailgun"])
def test_a_thousand_recipients_of_one_variant_in_one_call_as_postmark_sends_them(
    provider: str, comparisons_dir: Path
) -> None:
    # Click tracking off: each recipient's values are then the greeting and their own links
    # only, so the size bound below measures the template going once (link slots add about
    # 2 KB of values per recipient; the other tests here send them).
    messages = _edition(comparisons_dir, _names(1000, HOSTILE_NAMES), tracked=False)
    expected = _postmark_bodies(messages)
    assert len(expected) == 1000 and len(set(expected.values())) == 1000  # all personal
    if provider == "sendgrid":
        api = FakeApi(SENDGRID_OK)
        results = SendGridBackend("SG.key", transport=api.transport).send_batch(messages)
        got = _sendgrid_bodies(api)
        assert len(api.body()["personalizations"]) == 1000
    else:
        api = FakeApi(MAILGUN_OK)
        backend = MailgunBackend("key", domain="mg.example.com", transport=api.transport)
        results = backend.send_batch(messages)
        got = _mailgun_bodies(api)
    assert len(api.requests) == 1
    assert all(result.accepted for result in results)
    assert got == expected
    # The template went once: the request is far smaller than the bodies it carries.
    assert len(api.last.content) < sum(len(html) for html, _ in expected.values()) / 20
    hostile = got[f"reader{7}@example.org"][0]
    assert "script&gt;alert(&#34;x&#34;)&lt;/script" in hostile or (
        "script&gt;alert(&quot;x&quot;)&lt;/script" in hostile
    )


def test_a_value_carrying_a_providers_tag_is_sent_alone_and_unchanged(
    comparisons_dir: Path,
) -> None:
    sendgrid_api, mailgun_api = FakeApi(SENDGRID_OK), FakeApi(MAILGUN_OK)
    sendgrid = SendGridBackend("SG.key", transport=sendgrid_api.transport)
    mailgun = MailgunBackend("key", domain="mg.example.com", transport=mailgun_api.transport)
    forged = [
        f"Eve {sendgrid.tag('h2')} {sendgrid.tag('t1')} {sendgrid.tag('b3')}",
        "Mallory %recipient.h1% %recipient.t2% %recipient.b3% %recipient.h:List-Unsubscribe%",
    ]
    messages = _edition(comparisons_dir, _names(100, forged))
    expected = _postmark_bodies(messages)

    sendgrid.send_batch(messages)
    assert _sendgrid_bodies(sendgrid_api) == expected
    assert len(sendgrid_api.requests) == 2  # Eve alone
    mailgun.send_batch(messages)
    assert _mailgun_bodies(mailgun_api) == expected
    assert len(mailgun_api.requests) == 2  # Mallory alone
    alone = dict(parse_qsl(mailgun_api.requests[0].content.decode("ascii")))
    if "recipient-variables" in alone:
        alone = dict(parse_qsl(mailgun_api.requests[1].content.decode("ascii")))
    assert parseaddr(alone["to"])[1] == "reader18@example.org"  # Mallory
    assert "recipient-variables" not in alone


def test_messages_without_merge_parts_go_alone_and_variants_apart() -> None:
    batch = [*build_batch(3), build_message(4, html="<p>other</p>"), *build_batch(2, start=5)]
    groups = group_for_merge(batch, range(6), is_safe=lambda _text: True, max_call_bytes=10**9)
    assert [group.indexes for group in groups] == [[0, 1, 2, 4, 5], [3]]
    assert groups[1].parts is None


def test_a_call_never_holds_one_address_twice_nor_more_than_its_size() -> None:
    batch = [build_message(1), build_message(2, to="READER1@example.org"), build_message(3)]
    groups = group_for_merge(batch, range(3), is_safe=lambda _text: True, max_call_bytes=10**9)
    assert [group.indexes for group in groups] == [[0, 2], [1]]
    small = group_for_merge(
        build_batch(10), range(10), is_safe=lambda _text: True, max_call_bytes=2_500
    )
    assert len(small) > 1 and sorted(i for g in small for i in g.indexes) == list(range(10))
    assert all(group.size <= 2_500 or len(group.indexes) == 1 for group in small)


def test_values_over_the_per_recipient_cap_go_alone() -> None:
    batch = [build_message(1), build_message(2, to_name="n")]
    long_name = build_message(3)
    assert long_name.merge is not None
    html_values = ("y" * 20_000, long_name.merge.html_values[1])
    text_values = ("y" * 20_000, long_name.merge.text_values[1])
    html = long_name.merge.html_template.fill(html_values)
    text = long_name.merge.text_template.fill(text_values)
    merge = long_name.merge.__class__(
        long_name.merge.html_template,
        long_name.merge.text_template,
        html_values,
        text_values,
        html,
        text,
    )
    batch.append(dataclasses.replace(long_name, html=html, text=text, merge=merge))
    assert batch[-1].merged is merge
    groups = group_for_merge(
        batch, range(3), is_safe=lambda _text: True, max_call_bytes=10**9, max_values_bytes=10_000
    )
    assert [group.indexes for group in groups] == [[0, 1], [2]]


def test_a_body_replaced_after_rendering_goes_alone_as_it_is() -> None:
    batch = build_batch(3)
    # Same length, other content: the message's parts no longer describe its body.
    replaced = dataclasses.replace(batch[1], html=batch[1].html.replace("Hello", "HELLO"))
    batch[1] = replaced
    assert len(replaced.html) == len(build_message(2).html) and replaced.merged is None

    groups = group_for_merge(batch, range(3), is_safe=lambda _text: True, max_call_bytes=10**9)

    assert [group.indexes for group in groups] == [[0, 2], [1]]
    assert groups[1].parts is None
