"""Postmark's request body, with each body escaped once per template, is byte for byte the
JSON ``orjson.dumps`` writes for the same message (``digest.backends.json_strings``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import orjson
import pytest
from backend_fakes import FakeApi, build_batch, json_response
from test_backend_merge import HOSTILE_NAMES, _edition, _names

from digest.backends.json_strings import escaped_bodies, escaped_body
from digest.backends.postmark import PostmarkBackend
from digest.message import BodyTemplate, OutgoingMessage, format_address, parse_address


def _item(message: OutgoingMessage) -> dict[str, Any]:
    """The Postmark entry of ``message`` as a dict (what ``plan`` wrote before)."""
    headers = [{"Name": k, "Value": v} for k, v in message.headers.items()]
    headers.append({"Name": "Message-ID", "Value": message.message_id})
    item: dict[str, Any] = {
        "From": parse_address(message.sender),
        "To": format_address(message.to, message.to_name),
        "Subject": message.subject,
        "HtmlBody": message.html,
        "TextBody": message.text,
        "Headers": headers,
        "MessageStream": "broadcast",
    }
    if message.reply_to:
        item["ReplyTo"] = parse_address(message.reply_to)
    if message.metadata:
        item["Metadata"] = message.metadata
    return item


def _sent_bodies(messages: list[OutgoingMessage]) -> list[bytes]:
    api = FakeApi(
        lambda request: json_response(
            200,
            [
                {"ErrorCode": 0, "MessageID": f"pm{n}"}
                for n in range(len(orjson.loads(request.content)))
            ],
        )
    )
    PostmarkBackend("token", transport=api.transport).send_batch(messages)
    return [request.content for request in api.requests]


@pytest.mark.parametrize("tracked", [True, False])
def test_rendered_messages_are_sent_as_orjson_writes_them(
    comparisons_dir: Path, tracked: bool
) -> None:
    messages = _edition(comparisons_dir, _names(100, HOSTILE_NAMES), tracked=tracked)
    assert all(message.merge is not None for message in messages)
    (body,) = _sent_bodies(messages)
    assert body == orjson.dumps([_item(message) for message in messages])


def test_escaped_bodies_join_to_the_escaped_body(comparisons_dir: Path) -> None:
    for message in _edition(comparisons_dir, _names(100, HOSTILE_NAMES)):
        assert message.merged is not None  # escaped from the templates, not whole
        for escaped, body in zip(
            escaped_bodies(message), (message.html, message.text), strict=True
        ):
            assert b"".join(escaped.pieces) == orjson.dumps(body)[1:-1]
            assert escaped.size == len(orjson.dumps(body)) - 2


def test_a_body_replaced_after_rendering_is_sent_as_it_is(comparisons_dir: Path) -> None:
    (rendered,) = _edition(comparisons_dir, ["Ada"])
    changed = [
        dataclasses.replace(rendered, html=rendered.html.replace("</body>", "<p>x</p></body>")),
        dataclasses.replace(rendered, text='"quoted"\n\ttab \\ \x01 ✓'),
        # The same length as before: told apart all the same.
        dataclasses.replace(rendered, html=rendered.html.replace("Hi Ada", "Yo Ada", 1)),
    ]
    assert rendered.merged is not None
    assert all(message.merged is None for message in changed)
    assert _sent_bodies(changed)[0] == orjson.dumps([_item(message) for message in changed])


def test_messages_without_merge_parts_are_sent_as_orjson_writes_them() -> None:
    messages = [dataclasses.replace(message, merge=None) for message in build_batch(5)]
    assert _sent_bodies(messages)[0] == orjson.dumps([_item(message) for message in messages])


NASTY = ['",\\"', "\\", '"', "", 'a","b', '"",""', "\n\t\x00\x1f", "\u2028✓ Zoë 🚀", "</p>"]


@pytest.mark.parametrize("shift", range(len(NASTY)))
def test_values_that_look_like_the_array_separator_are_escaped_apart(shift: int) -> None:
    values = NASTY[shift:] + NASTY[:shift]
    chunks: list[str | None] = ["<p>"]
    positions = []
    for index in range(len(values)):
        chunks.append(None)
        positions.append((len(chunks) - 1, index))
        chunks.append(f'" {index} "')
    positions.append((len(chunks), 0))  # a value used twice, slots side by side
    chunks.append(None)
    template = BodyTemplate(tuple(chunks), tuple(positions))
    body = template.fill(values)
    escaped = escaped_body(template, values)
    assert b"".join(escaped.pieces) == orjson.dumps(body)[1:-1]
    assert escaped.size == len(orjson.dumps(body)) - 2
