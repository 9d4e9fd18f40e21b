"""Helpers for the backend tests: realistic messages and a scripted fake HTTP API."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import httpx
import orjson

from digest.message import BodyTemplate, MergeParts, OutgoingMessage

Answer = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


# One content variant's templates: slot 0 is the greeting name, slot 1 the unsubscribe URL.
HTML_TEMPLATE = BodyTemplate(
    (
        "<html><body><p>Hello ",
        None,
        ",</p><p>The verdicts.</p>",
        '<a href="',
        None,
        '">Unsubscribe</a></body></html>',
    ),
    ((1, 0), (4, 1)),
)
TEXT_TEMPLATE = BodyTemplate(
    ("Hello ", None, ",\n\nThe verdicts.\n\nUnsubscribe: ", None, "\n"), ((1, 0), (3, 1))
)


def build_message(n: int = 1, **overrides: Any) -> OutgoingMessage:
    """Message number ``n`` of an edition: its own recipient, Message-ID and unsubscribe URL.

    Its bodies are the shared templates filled with its values (``merge``), as rendering
    makes them; overriding a body drops ``merge``, so the message is sent as it is.
    """
    token = f"tok{n:05d}"
    url = f"https://verdicts.example.com/u/{token}?list=weekly&s={n}"
    html_values = (f"Reader {n}", url.replace("&", "&amp;"))
    text_values = (f"Reader {n}", url)
    html, text = HTML_TEMPLATE.fill(html_values), TEXT_TEMPLATE.fill(text_values)
    merge = MergeParts(HTML_TEMPLATE, TEXT_TEMPLATE, html_values, text_values, html, text)
    fields: dict[str, Any] = {
        "sender": "Weekly AI Tool Verdicts <digest@verdicts.example.com>",
        "to": f"reader{n}@example.org",
        "to_name": f"Reader {n}",
        "subject": "This week: Cursor vs Copilot",
        "html": html,
        "text": text,
        "message_id": f"<2025-w07.{n}@verdicts.example.com>",
        "headers": {
            "List-Id": "weekly.verdicts.example.com",
            "List-Unsubscribe": (
                f"<{url}>, <mailto:unsubscribe@verdicts.example.com?subject={token}>"
            ),
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        "idempotency_key": f"weekly-2025-w07-{n}",
        "metadata": {"edition": "weekly-2025-w07", "subscriber": str(n)},
        "merge": merge,
    }
    if ("html" in overrides or "text" in overrides) and "merge" not in overrides:
        fields["merge"] = None
    fields.update(overrides)
    return OutgoingMessage(**fields)


def build_batch(count: int, start: int = 1) -> list[OutgoingMessage]:
    return [build_message(n) for n in range(start, start + count)]


class FakeApi:
    """An ``httpx.MockTransport`` handler: records every request, replays scripted answers.

    Each answer is a response, an exception to raise (as a transport failure would) or a
    function of the request. The last answer repeats.
    """

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self._position = itertools.count()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        answer = self.answers[min(next(self._position), len(self.answers) - 1)]
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):
            return answer
        return answer(request)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def body(self, number: int = 0) -> Any:
        return orjson.loads(self.requests[number].content)

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]


def json_response(status: int, body: Any, **headers: str) -> httpx.Response:
    return httpx.Response(status, content=orjson.dumps(body), headers=headers)
