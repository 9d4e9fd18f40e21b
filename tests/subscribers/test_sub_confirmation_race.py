"""Confirmation emails under concurrency, on SQLite and PostgreSQL: every one sent is recorded,
concurrent sign-ups of one address send one email, the ten-minute limit holds, and a crash
between recording and sending never leads to a second email."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import time_machine
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from digest.backends.errors import AmbiguousError, RetryableError
from digest.backends.memory import MemoryBackend
from digest.config import Settings
from digest.db import immediate_session, utcnow
from subscribers import lifecycle
from subscribers.confirmation import send_confirmation
from subscribers.models import Subscriber


def _signup_and_send(
    engine: Engine, settings: Settings, backend: MemoryBackend
) -> Callable[[str], None]:
    """What a sign-up does: record it (its own transaction), then send the confirmation."""

    def run(email: str) -> None:
        with immediate_session(engine) as session:
            outcome = lifecycle.signup(session, email)
            subscriber_id = outcome.subscriber.id if outcome.subscriber else None
            should_send = outcome.should_send_confirmation
        if should_send and subscriber_id is not None:
            send_confirmation(engine, settings, backend, subscriber_id)

    return run


def _sent_at(engine: Engine) -> dict[str, object]:
    with Session(engine) as session:
        rows = session.exec(
            select(Subscriber.email, Subscriber.confirmation_sent_at).order_by(col(Subscriber.id))
        ).all()
    return dict(rows)


def test_fifty_signups_four_at_a_time_are_all_recorded(engine: Engine, settings: Settings) -> None:
    backend = MemoryBackend()
    run = _signup_and_send(engine, settings, backend)
    emails = [f"reader{n}@example.com" for n in range(50)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(run, emails))
    assert sorted(m.to for m in backend.sent) == sorted(emails)
    recorded = _sent_at(engine)
    assert len(recorded) == 50 and all(value is not None for value in recorded.values())
    # A second sign-up of each, at once: no second email.
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(run, emails))
    assert len(backend.sent) == 50


def test_concurrent_signups_of_one_address_send_one_email(
    engine: Engine, settings: Settings
) -> None:
    backend = MemoryBackend()
    run = _signup_and_send(engine, settings, backend)
    barrier = threading.Barrier(8)

    def racer(_index: int) -> None:
        barrier.wait(timeout=30)
        run("same@example.com")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(racer, range(8)))
    assert [m.to for m in backend.sent] == ["same@example.com"]


def test_the_ten_minute_limit_holds_even_when_asked_directly(
    engine: Engine, settings: Settings
) -> None:
    backend = MemoryBackend()
    _signup_and_send(engine, settings, backend)("ada@example.com")
    with Session(engine) as session:
        [subscriber_id] = session.exec(select(Subscriber.id)).all()
    assert subscriber_id is not None
    # A caller that skips the sign-up's own check still cannot send a second one.
    assert send_confirmation(engine, settings, backend, subscriber_id) is None
    with time_machine.travel(utcnow() + lifecycle.RESEND_CONFIRMATION_AFTER * 1.1):
        result = send_confirmation(engine, settings, backend, subscriber_id)
    assert result is not None and result.accepted
    assert len(backend.sent) == 2


def test_a_send_that_may_have_happened_is_not_repeated(engine: Engine, settings: Settings) -> None:
    """The record comes first: after an ambiguous failure (or a crash mid-send) a new sign-up
    within ten minutes sends nothing more."""
    backend = MemoryBackend()
    backend.fail_next(AmbiguousError("connection dropped after the request"))
    run = _signup_and_send(engine, settings, backend)
    with pytest.raises(AmbiguousError):
        run("ada@example.com")
    assert _sent_at(engine)["ada@example.com"] is not None
    run("ada@example.com")
    assert backend.sent == []


def test_a_send_that_surely_failed_is_retried_at_once(engine: Engine, settings: Settings) -> None:
    backend = MemoryBackend()
    backend.fail_next(RetryableError("provider down"))
    run = _signup_and_send(engine, settings, backend)
    with pytest.raises(RetryableError):
        run("ada@example.com")
    assert _sent_at(engine)["ada@example.com"] is None
    run("ada@example.com")
    assert [m.to for m in backend.sent] == ["ada@example.com"]
