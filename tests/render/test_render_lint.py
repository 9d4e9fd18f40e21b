"""Lint warnings of a finished message."""

from __future__ import annotations

from digest.message import OutgoingMessage
from digest.render.lint import GMAIL_CLIP_BYTES, lint_message


def _message(**overrides: object) -> OutgoingMessage:
    fields: dict[str, object] = {
        "sender": "Digest <digest@verdicts.example.com>",
        "to": "ada@example.com",
        "subject": "Deskpilot vs Ticketsmith",
        "html": '<a href="https://verdicts.example.com/x">x</a> <img src="https://i" alt="">',
        "text": "x",
        "message_id": "<m@verdicts.example.com>",
        "headers": {"List-Unsubscribe": "<https://verdicts.example.com/unsubscribe/1.x>"},
    }
    fields.update(overrides)
    return OutgoingMessage(**fields)  # type: ignore[arg-type]


def test_a_clean_message_has_no_warning() -> None:
    assert lint_message(_message()) == []


def test_each_problem_is_reported() -> None:
    message = _message(
        subject="S" * 79,
        html=(
            '<a href="http://localhost:8000/x">a</a><a href="/relative">b</a>'
            '<a href="mailto:x@example.com">c</a><img src="https://i/logo.png">'
            + "x"
            * GMAIL_CLIP_BYTES
        ),
        text=" \n",
        headers={"List-Unsubscribe": "<http://localhost:8000/unsubscribe/1.x>"},
    )
    codes = [warning.code for warning in lint_message(message)]
    assert codes == [
        "html-size",
        "no-text-part",
        "subject-length",
        "img-alt",
        "link",
        "link",
        "list-unsubscribe",
    ]
    text = "\n".join(str(warning) for warning in lint_message(message))
    assert "http://localhost:8000/x" in text and "/relative" in text
    assert "mailto:" not in text.split("list-unsubscribe")[0]


def test_size_counts_utf8_bytes() -> None:
    just_under = "é" * ((GMAIL_CLIP_BYTES // 2) - 10)
    assert [w.code for w in lint_message(_message(html=just_under))] == []
    assert [w.code for w in lint_message(_message(html=just_under + "éééééééééééé"))] == [
        "html-size"
    ]
