"""Races between processes: many sessions acting on one subscriber at the same moment."""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from digest.db import immediate_session
from subscribers import lifecycle
from subscribers.models import AuditEntry, Cause, Status, Subscriber, Suppression

THREADS = 8


def _race(count: int, work: Callable[[int], None]) -> list[BaseException]:
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            work(index)
        except BaseException as exc:  # collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors


def _audit(engine: Engine, action: str) -> list[AuditEntry]:
    with Session(engine) as session:
        return list(session.exec(select(AuditEntry).where(AuditEntry.action == action)).all())


def _active_subscriber(engine: Engine) -> int:
    with Session(engine) as session:
        outcome = lifecycle.signup(session, "ada@example.com", confirmed=True, actor="test")
        session.commit()
        assert outcome.subscriber is not None and outcome.subscriber.id is not None
        return outcome.subscriber.id


def test_concurrent_unsubscribe_writes_one_status_change(engine: Engine) -> None:
    subscriber_id = _active_subscriber(engine)

    def unsubscribe(_index: int) -> None:
        with Session(engine) as session:
            result = lifecycle.unsubscribe(
                session, subscriber_id, cause=Cause.ONE_CLICK, actor="web"
            )
            session.commit()
            assert result is not None and result.status == Status.UNSUBSCRIBED

    assert _race(THREADS, unsubscribe) == []
    entries = _audit(engine, "unsubscribe")
    assert len(entries) == 1
    assert (entries[0].old_status, entries[0].new_status) == ("active", "unsubscribed")
    with Session(engine) as session:
        assert len(session.exec(select(Suppression)).all()) == 1
        subscriber = session.get(Subscriber, subscriber_id)
        assert subscriber is not None and subscriber.status == Status.UNSUBSCRIBED


def test_concurrent_confirm_writes_one_entry(engine: Engine) -> None:
    with Session(engine) as session:
        outcome = lifecycle.signup(session, "ada@example.com", actor="web")
        session.commit()
        assert outcome.subscriber is not None and outcome.subscriber.id is not None
        subscriber_id = outcome.subscriber.id

    def confirm(_index: int) -> None:
        with Session(engine) as session:
            lifecycle.confirm(session, subscriber_id, actor="web")
            session.commit()

    assert _race(THREADS, confirm) == []
    assert len(_audit(engine, "confirm")) == 1


def test_concurrent_hard_bounces_write_one_entry(engine: Engine) -> None:
    _active_subscriber(engine)

    def bounce(_index: int) -> None:
        with Session(engine) as session:
            lifecycle.record_bounce(session, "ada@example.com", hard=True, actor="webhook:x")
            session.commit()

    assert _race(THREADS, bounce) == []
    entries = _audit(engine, "bounce")
    assert len(entries) == 1
    assert entries[0].new_status == "bounced"


def test_concurrent_signups_of_one_address_make_one_row(engine: Engine) -> None:
    def signup(index: int) -> None:
        with immediate_session(engine) as session:
            lifecycle.signup(
                session, "ADA@example.com" if index % 2 else "ada@Example.com", actor="web"
            )

    assert _race(THREADS, signup) == []
    with Session(engine) as session:
        rows = session.exec(select(Subscriber).order_by(col(Subscriber.id))).all()
    assert [row.email_key for row in rows] == ["ada@example.com"]
    assert len(_audit(engine, "signup")) == 1
