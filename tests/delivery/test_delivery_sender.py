"""The delivery engine end to end on the memory backend and on the Postmark backend against a
fake Postmark: every row once, retries with backoff, 429s, permanent and ambiguous failures,
per-recipient rejections, the pause switch, cancel and stop."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa
from delivery_support import (
    POSTMARK_TOKEN,
    W47,
    EngineFactory,
    FakePostmark,
    add_subscribers,
    ledger,
    states,
)
from sqlalchemy.engine import Engine
from sqlmodel import select

from digest.backends.base import SendResult
from digest.backends.errors import (
    AmbiguousError,
    PermanentError,
    RateLimitedError,
    RetryableError,
)
from digest.backends.memory import MemoryBackend
from digest.backends.postmark import PostmarkBackend
from digest.config import Settings
from digest.db import session_scope
from digest.delivery.ledger import cancel
from digest.delivery.prepare import prepare_edition
from digest.delivery.sender import RunOutcome, SendAborted, SendStats
from digest.editions.models import Edition
from digest.message import OutgoingMessage
from digest.state import write_state
from subscribers.models import AuditEntry, Subscriber, Suppression


class TimedBackend(MemoryBackend):
    """The memory backend, remembering when each call started and when a failure came back."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []
        self.failed_at: list[float] = []

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        self.times.append(time.monotonic())
        try:
            return super().send_batch(messages)
        except Exception:
            self.failed_at.append(time.monotonic())
            raise


class IdempotentBackend(MemoryBackend):
    supports_idempotency: ClassVar[bool] = True


def _edition(engine: Engine, settings: Settings, count: int) -> int:
    add_subscribers(engine, count)
    outcome = prepare_edition(engine, settings, W47)
    assert outcome.edition is not None and outcome.edition.id is not None
    return outcome.edition.id


def _serial(settings: Settings, **more: Any) -> Settings:
    """One thread, one call per batch: failures queued on the backend hit a known call."""
    return settings.model_copy(update={"send_concurrency": 1, **more})


def test_every_row_is_sent_once_and_the_edition_completes(
    loaded: Engine, send_settings: Settings, make_sender: EngineFactory, backend: MemoryBackend
) -> None:
    edition_id = _edition(loaded, send_settings, 120)
    report = make_sender().run([edition_id])
    assert report.outcome is RunOutcome.DONE
    assert report.stats["sent"] == 120 and report.stats["batches"] == 3
    rows = ledger(loaded)
    assert states(loaded) == {"sent": 120}
    assert sorted(m.message_id for m in backend.sent) == sorted(r.message_id for r in rows)
    assert all(row.provider_message_id and row.sent_at and row.attempts == 1 for row in rows)
    assert all(row.attempt_started_at is None and row.lease_expires_at is None for row in rows)
    # A call carries about one second of messages at the rate (here: all of a claim).
    assert max(len(call) for call in backend.batches) == 50
    first = backend.sent[0]
    assert first.idempotency_key == first.message_id
    assert first.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    with session_scope(loaded) as session:
        edition = session.get(Edition, edition_id)
        assert edition is not None and edition.status == "sent" and edition.completed_at
    # Sending again finds nothing to do.
    assert make_sender().run([edition_id]).stats["sent"] == 0


def test_retryable_failures_back_off_then_succeed(
    loaded: Engine, send_settings: Settings, make_sender: EngineFactory, backend: MemoryBackend
) -> None:
    settings = _serial(send_settings)
    edition_id = _edition(loaded, settings, 10)
    backend.fail_next(RetryableError("HTTP 503"), RetryableError("HTTP 502"))
    report = make_sender(settings=settings).run([edition_id])
    assert report.outcome is RunOutcome.DONE and report.stats["retries"] == 2
    assert states(loaded) == {"sent": 10}
    assert {row.attempts for row in ledger(loaded)} == {3}
    assert len(backend.batches) == 3


def test_a_row_fails_only_when_its_retry_window_is_over(
    loaded: Engine, send_settings: Settings, make_sender: EngineFactory
) -> None:
    # A window long enough for many attempts even when each one waits on a busy disk or CPU
    # (a parallel test run): the retries of 1-10 ms are what must not end it.
    settings = _serial(send_settings, send_retry_window=1.0)
    edition_id = _edition(loaded, settings, 10)
    down = _Down()
    started = time.monotonic()
    report = make_sender(settings=settings, backend=down).run([edition_id])
    assert report.outcome is RunOutcome.DONE
    assert time.monotonic() - started >= 1.0
    assert states(loaded) == {"failed": 10}
    rows = ledger(loaded)
    assert all("still failing after" in row.last_error for row in rows)
    # Retried many times over the window, not five quick attempts.
    assert min(row.attempts for row in rows) > 5 and down.calls > 5


class _Down(MemoryBackend):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        self.calls += 1
        raise RetryableError("HTTP 503")


def test_a_failed_call_defers_only_its_own_rows_and_everyone_ends_sent(
    loaded: Engine, send_settings: Settings, make_sender: EngineFactory
) -> None:
    """One call in eleven fails: its rows are deferred and retried, an attempt is charged to
    them alone, and every recipient ends sent, once."""
    settings = send_settings.model_copy(update={"send_batch_size": 40})
    edition_id = _edition(loaded, settings, 300)
    flaky = _EveryEleventhFails()
    report = make_sender(settings=settings, backend=flaky).run([edition_id])
    assert report.outcome is RunOutcome.DONE
    assert states(loaded) == {"sent": 300}
    assert Counter(m.message_id for m in flaky.sent).most_common(1)[0][1] == 1
    rows = ledger(loaded)
    failed_ids = {m.message_id for call in flaky.failed_calls for m in call}
    charged = {row.message_id for row in rows if row.attempts > 1}
    assert failed_ids and charged <= failed_ids
    assert {row.attempts for row in rows if row.message_id not in failed_ids} == {1}


class _EveryEleventhFails(MemoryBackend):
    max_batch_size: ClassVar[int] = 10

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.failed_calls: list[list[OutgoingMessage]] = []

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        with self._lock:
            self.calls += 1
            fail = self.calls % 11 == 0
            if fail:
                self.failed_calls.append(list(messages))
        if fail:
            raise RetryableError("HTTP 500")
        return super().send_batch(messages)


def test_a_429_holds_every_sender_for_retry_after_and_slows_down(
    loaded: Engine, send_settings: Settings, make_sender: EngineFactory
) -> None:
    settings = send_settings.model_copy(update={"send_batch_size": 10})
    edition_id = _edition(loaded, settings, 40)
    timed = TimedBackend()
    timed.fail_next(RateLimitedError("HTTP 429", retry_after=0.4))
    sender = make_sender(settings=settings, backend=timed)
    report = sender.run([edition_id])
    assert report.outcome is RunOutcome.DONE and states(loaded) == {"sent": 40}
    # No call started in the 0.4 s after the 429 came back, whichever thread made it (but for
    # one already past its last check, a few milliseconds, when the answer arrived).
    (throttled,) = timed.failed_at
    assert not [moment for moment in timed.times if throttled + 0.15 < moment < throttled + 0.39]
    assert max(timed.times) >= throttled + 0.39
    assert sender.limiter.rate < settings.send_rate
    # The throttled call is not counted as an attempt.
    assert {row.attempts for row in ledger(loaded)} == {1}


def test_a_permanent_error_stops_the_send_with_nothing_marked_sent(
    loaded: Engine, send_settings: Settings, make_sender: EngineFactory
) -> None:
    edition_id = _edition(loaded, send_settings, 60)
    refusing = _Refusing()
    with pytest.raises(SendAborted, match="invalid credentials"):
        make_sender(backend=refusing).run([edition_id])
    # Both threads stopped at their first call; every row is pending again, uncounted.
    assert states(loaded) == {"pending": 60}
    assert all(row.attempts == 0 and row.worker is None for row in ledger(loaded))
    assert 1 <= refusing.calls <= 2
    assert SendAborted.exit_code != 0


class _Refusing(MemoryBackend):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        self.calls += 1
        raise PermanentError("invalid credentials")


def test_a_rejected_recipient_fails_alone_and_is_suppressed(
    loaded: Engine, send_settings: Settings, make_sender: EngineFactory, backend: MemoryBackend
) -> None:
    edition_id = _edition(loaded, send_settings, 12)
    backend.reject(["reader3@example.com"])
    report = make_sender().run([edition_id])
    assert report.stats == report.stats | {"sent": 11, "failed": 1}
    failed = [row for row in ledger(loaded) if row.state == "failed"]
    assert [row.email for row in failed] == ["reader3@example.com"]
    assert failed[0].provider_status == "rejected" and "rejected" in failed[0].last_error
    with session_scope(loaded) as session:
        assert session.exec(select(Suppression.email_key)).all() == ["reader3@example.com"]
        subscriber = session.exec(
            select(Subscriber).where(Subscriber.email_key == "reader3@example.com")
        ).one()
        assert subscriber.status == "bounced"
        audit = session.exec(select(AuditEntry)).all()
        assert [(entry.action, entry.actor) for entry in audit] == [("bounce", "delivery")]


def test_an_ambiguous_failure_is_unknown_and_not_resent(
    loaded: Engine, send_settings: Settings, make_sender: EngineFactory, backend: MemoryBackend
) -> None:
    settings = _serial(send_settings, send_batch_size=5)
    edition_id = _edition(loaded, settings, 12)
    backend.fail_next(AmbiguousError("read timeout after the request was sent"))
    report = make_sender(settings=settings).run([edition_id])
    assert report.outcome is RunOutcome.DONE
    assert states(loaded) == {"unknown": 5, "sent": 7}
    assert make_sender(settings=settings).run([edition_id]).stats["sent"] == 0
    assert len(backend.sent) == 7


def test_an_ambiguous_failure_is_retried_when_the_backend_deduplicates(
    loaded: Engine, send_settings: Settings, make_sender: EngineFactory
) -> None:
    settings = _serial(send_settings)
    edition_id = _edition(loaded, settings, 8)
    idempotent = IdempotentBackend()
    idempotent.fail_next(AmbiguousError("connection dropped"))
    report = make_sender(settings=settings, backend=idempotent).run([edition_id])
    assert report.outcome is RunOutcome.DONE and states(loaded) == {"sent": 8}
    first, second = idempotent.batches
    assert [m.idempotency_key for m in first] == [m.idempotency_key for m in second]


def test_the_pause_switch_is_honoured_between_batches(
    loaded: Engine, send_settings: Settings, make_sender: EngineFactory, backend: MemoryBackend
) -> None:
    settings = _serial(send_settings, send_batch_size=10)
    edition_id = _edition(loaded, settings, 40)

    def pause_after_first(stats: SendStats) -> None:
        with session_scope(loaded) as session:
            write_state(session, "paused", {"paused": True, "by": "test"})

    report = make_sender(settings=settings, on_progress=pause_after_first).run([edition_id])
    assert report.outcome is RunOutcome.PAUSED
    assert states(loaded) == {"sent": 10, "pending": 30}
    with session_scope(loaded) as session:
        write_state(session, "paused", {"paused": False})
    assert make_sender(settings=settings).run([edition_id]).outcome is RunOutcome.DONE
    assert states(loaded) == {"sent": 40} and len(backend.sent) == 40


def test_a_pause_stops_a_slow_batch_between_two_calls(
    loaded: Engine, send_settings: Settings, make_sender: EngineFactory, backend: MemoryBackend
) -> None:
    """At 5 msg/s a batch of 40 takes 8 s: a pause after the first call stops it within about
    a second, not at the end of the batch."""
    settings = _serial(send_settings, send_batch_size=40, send_rate=5.0)
    edition_id = _edition(loaded, settings, 40)
    paused: list[bool] = []

    def pause_after_first(stats: SendStats) -> None:
        if not paused:
            paused.append(True)
            with session_scope(loaded) as session:
                write_state(session, "paused", {"paused": True, "by": "ops", "at": "now"})

    started = time.monotonic()
    report = make_sender(settings=settings, on_progress=pause_after_first).run([edition_id])
    assert report.outcome is RunOutcome.PAUSED
    assert report.hold is not None and report.hold.by == "ops"
    assert time.monotonic() - started < 4.0
    sent = states(loaded)["sent"]
    assert 5 <= sent <= 15 and states(loaded)["pending"] == 40 - sent


def test_cancel_stops_workers_at_their_next_batch(
    loaded: Engine, send_settings: Settings, make_sender: EngineFactory, backend: MemoryBackend
) -> None:
    settings = _serial(send_settings, send_batch_size=10)
    edition_id = _edition(loaded, settings, 40)
    report = make_sender(
        settings=settings, on_progress=lambda stats: cancel(loaded, edition_id)
    ).run([edition_id])
    assert report.outcome is RunOutcome.CANCELLED
    assert states(loaded) == {"sent": 10, "skipped": 30}
    assert {row.last_error for row in ledger(loaded) if row.state == "skipped"} == {"cancelled"}


def test_stop_gives_the_rest_of_the_batch_back(
    loaded: Engine, send_settings: Settings, make_sender: EngineFactory, backend: MemoryBackend
) -> None:
    settings = _serial(send_settings, send_batch_size=40, send_concurrency=1)
    edition_id = _edition(loaded, settings, 40)
    stop = threading.Event()
    sender = make_sender(
        settings=settings,
        backend=_SmallCalls(),
        stop=stop,
        on_progress=lambda stats: stop.set(),
    )
    report = sender.run([edition_id])
    assert report.outcome is RunOutcome.STOPPED
    assert states(loaded) == {"sent": 10, "pending": 30}
    assert report.stats["released"] == 30


class _SmallCalls(MemoryBackend):
    max_batch_size: ClassVar[int] = 10


def test_postmark_5xx_bursts_then_success(
    loaded: Engine, send_settings: Settings, make_sender: EngineFactory, postmark: FakePostmark
) -> None:
    settings = _serial(send_settings)
    edition_id = _edition(loaded, settings, 30)
    for status in (503, 500, 502):
        postmark.fail_next(status, b'{"ErrorCode":0,"Message":"try later"}')
    with PostmarkBackend(POSTMARK_TOKEN, base_url=postmark.url) as backend:
        report = make_sender(settings=settings, backend=backend).run([edition_id])
    assert report.outcome is RunOutcome.DONE and report.stats["retries"] == 3
    assert states(loaded) == {"sent": 30}
    assert sum(postmark.message_ids().values()) == 30
    rows = ledger(loaded)
    assert set(postmark.message_ids()) == {row.message_id for row in rows}
    assert all(row.provider_message_id.startswith("pm-") for row in rows)


def test_postmark_429_with_retry_after(
    loaded: Engine, send_settings: Settings, make_sender: EngineFactory, postmark: FakePostmark
) -> None:
    settings = _serial(send_settings)
    edition_id = _edition(loaded, settings, 10)
    postmark.fail_next(429, b'{"Message":"slow down"}', **{"Retry-After": "1"})
    started = time.monotonic()
    with PostmarkBackend(POSTMARK_TOKEN, base_url=postmark.url) as backend:
        report = make_sender(settings=settings, backend=backend).run([edition_id])
    assert report.outcome is RunOutcome.DONE and time.monotonic() - started >= 1.0
    assert states(loaded) == {"sent": 10} and postmark.calls == 2


def test_postmark_bad_credentials_abort_with_nothing_sent(
    loaded: Engine, send_settings: Settings, make_sender: EngineFactory, postmark: FakePostmark
) -> None:
    edition_id = _edition(loaded, send_settings, 30)
    with (
        PostmarkBackend("wrong-token", base_url=postmark.url) as backend,
        pytest.raises(SendAborted, match="credentials"),
    ):
        make_sender(backend=backend).run([edition_id])
    assert states(loaded) == {"pending": 30}
    assert postmark.accepted == []


def test_postmark_inactive_recipient_is_suppressed(
    loaded: Engine, send_settings: Settings, make_sender: EngineFactory, postmark: FakePostmark
) -> None:
    edition_id = _edition(loaded, send_settings, 8)
    postmark.rejected = {"reader5@example.com"}
    with PostmarkBackend(POSTMARK_TOKEN, base_url=postmark.url) as backend:
        make_sender(backend=backend).run([edition_id])
    assert states(loaded) == {"sent": 7, "failed": 1}
    with loaded.connect() as connection:
        keys = connection.execute(sa.text("SELECT email_key FROM suppression")).scalars().all()
    assert keys == ["reader5@example.com"]


def test_messages_a_failed_call_never_reached_are_not_charged(
    loaded: Engine, send_settings: Settings, make_sender: EngineFactory
) -> None:
    """SMTP sends message by message: when the fourth fails, the first three are recorded, the
    fourth is charged and deferred, and the rest (never handed over) wait uncharged."""
    settings = _serial(send_settings, send_batch_size=10)
    edition_id = _edition(loaded, settings, 10)
    backend = _FailsFourthOnce()
    report = make_sender(settings=settings, backend=backend).run([edition_id])
    assert report.outcome is RunOutcome.DONE and states(loaded) == {"sent": 10}
    attempts = {row.message_id: row.attempts for row in ledger(loaded)}
    first = backend.batches[0]
    assert [attempts[m.message_id] for m in first[:3]] == [1, 1, 1]
    assert attempts[first[3].message_id] == 2
    assert {attempts[m.message_id] for m in first[4:]} == {1}
    assert Counter(m.message_id for m in backend.sent).most_common(1)[0][1] == 1


class _FailsFourthOnce(MemoryBackend):
    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        if self.failed or len(messages) < 5:
            return super().send_batch(messages)
        self.failed = True
        done = super().send_batch(messages[:3])
        self.batches[-1] = list(messages)
        error = RetryableError("SMTP connection lost before DATA")
        error.partial_results = tuple(done)
        error.unsent = tuple(m.message_id for m in messages[4:])
        raise error
