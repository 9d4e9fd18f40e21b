"""The scheduler service under a controlled clock: firing at local time across DST, missed
runs within and past the grace time, coalescing, restarts, heartbeat and status."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext

import pytest
import time_machine
from sqlalchemy.engine import Engine

from digest.config import Settings
from digest.db import utcnow
from digest.errors import ConfigError
from digest.scheduler.heartbeat import scheduler_status
from digest.scheduler.leader import job_lock_for
from digest.scheduler.service import SchedulerService

UTC = dt.UTC


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@contextmanager
def running(
    settings: Settings,
    engine: Engine,
    calls: list[dt.datetime],
    *,
    at: dt.datetime | None = None,
    tick: bool = False,
    **options: object,
) -> Iterator[SchedulerService]:
    """A scheduler service in a thread whose job records the (travelled) time it ran at;
    with ``at``, the clock is moved there first (frozen unless ``tick``)."""

    def job(_stop: threading.Event) -> None:
        calls.append(utcnow())

    travel = time_machine.travel(at, tick=tick) if at is not None else nullcontext()
    with travel:
        service = SchedulerService(settings, engine, job=job, **options)  # type: ignore[arg-type]
        thread = threading.Thread(target=service.run, daemon=True)
        thread.start()
        try:
            assert service.started.wait(15), "the scheduler did not start"
            yield service
        finally:
            service.request_stop("test over")
            thread.join(15)
            assert not thread.is_alive()


def weekly(settings: Settings, **changes: object) -> Settings:
    return settings.model_copy(
        update={"schedule": "0 8 * * MON", "timezone": "Europe/Berlin", **changes}
    )


def test_next_run_is_eight_local_across_spring_forward(settings: Settings, engine: Engine) -> None:
    settings = weekly(settings)
    calls: list[dt.datetime] = []
    # Sunday 2026-03-29, after the clocks went forward at 01:00 UTC.
    with running(settings, engine, calls, at=dt.datetime(2026, 3, 29, 12, tzinfo=UTC)) as service:
        assert service.next_run_time() == dt.datetime(2026, 3, 30, 6, 0, tzinfo=UTC)
        assert wait_until(lambda: scheduler_status(engine)["heartbeat"] is not None)
        status = scheduler_status(engine)
    assert status["next_run"] == "2026-03-30T06:00:00+00:00"
    assert status["alive"] is True
    assert calls == []


def test_fires_at_eight_local_time_on_the_monday_after_the_change(
    settings: Settings, engine: Engine
) -> None:
    settings = weekly(settings, timezone="America/New_York")
    calls: list[dt.datetime] = []
    # 08:00 EDT on Monday 2026-03-09 is 12:00 UTC (it was 13:00 UTC a week earlier).
    with running(
        settings,
        engine,
        calls,
        at=dt.datetime(2026, 3, 9, 11, 59, 59, 500_000, tzinfo=UTC),
        tick=True,
    ):
        assert wait_until(lambda: len(calls) == 1, timeout=10)
    assert dt.datetime(2026, 3, 9, 12, 0, tzinfo=UTC) <= calls[0]
    assert calls[0] < dt.datetime(2026, 3, 9, 12, 0, 30, tzinfo=UTC)


def test_a_run_missed_within_the_grace_runs_once_at_start_up(
    settings: Settings, engine: Engine
) -> None:
    settings = weekly(settings, misfire_grace_hours=6)
    calls: list[dt.datetime] = []
    with running(settings, engine, calls, at=dt.datetime(2026, 3, 1, 12, tzinfo=UTC)) as service:
        assert service.next_run_time() == dt.datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
    # Down over Monday morning; back three hours after 08:00 Berlin (07:00 UTC).
    with running(settings, engine, calls, at=dt.datetime(2026, 3, 2, 10, tzinfo=UTC)) as service:
        assert wait_until(lambda: len(calls) == 1)
        time.sleep(0.3)  # room for a second run, which must not come
        assert service.next_run_time() == dt.datetime(2026, 3, 9, 7, 0, tzinfo=UTC)
    assert len(calls) == 1


def test_a_run_missed_past_the_grace_is_skipped_and_logged(
    settings: Settings, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    settings = weekly(settings, misfire_grace_hours=6)
    calls: list[dt.datetime] = []
    with running(settings, engine, calls, at=dt.datetime(2026, 3, 1, 12, tzinfo=UTC)):
        pass
    caplog.set_level(logging.INFO, logger="digest")
    # Back on Monday evening: 13 hours late, never sent days (or hours) late.
    with running(settings, engine, calls, at=dt.datetime(2026, 3, 2, 20, tzinfo=UTC)) as service:
        assert wait_until(
            lambda: (scheduler_status(engine)["last_run"] or {}).get("status") == "missed"
        )
        assert service.next_run_time() == dt.datetime(2026, 3, 9, 7, 0, tzinfo=UTC)
    assert calls == []
    last_run = scheduler_status(engine)["last_run"]
    assert last_run["scheduled_for"] == "2026-03-02T07:00:00+00:00"
    assert "grace" in last_run["reason"]
    assert any("event=job_missed" in record.getMessage() for record in caplog.records)


def test_several_missed_runs_coalesce_into_one(settings: Settings, engine: Engine) -> None:
    settings = settings.model_copy(update={"schedule": "0 * * * *", "misfire_grace_hours": 6})
    calls: list[dt.datetime] = []
    with running(settings, engine, calls, at=dt.datetime(2026, 3, 2, 0, 30, tzinfo=UTC)) as service:
        assert service.next_run_time() == dt.datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    # Five hourly runs (01:00 .. 05:00) missed while down: one run on start-up.
    with running(settings, engine, calls, at=dt.datetime(2026, 3, 2, 5, 10, tzinfo=UTC)) as service:
        assert wait_until(lambda: len(calls) == 1)
        time.sleep(0.3)
        assert service.next_run_time() == dt.datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
    assert len(calls) == 1


def test_a_changed_schedule_replaces_the_stored_job(settings: Settings, engine: Engine) -> None:
    calls: list[dt.datetime] = []
    with time_machine.travel(dt.datetime(2026, 3, 1, 12, tzinfo=UTC), tick=False):
        with running(weekly(settings), engine, calls):
            pass
        with running(weekly(settings, schedule="0 9 * * TUE"), engine, calls) as service:
            assert service.next_run_time() == dt.datetime(2026, 3, 3, 8, 0, tzinfo=UTC)
    assert calls == []


def test_an_invalid_schedule_refuses_to_start(settings: Settings, engine: Engine) -> None:
    with pytest.raises(ConfigError, match="DIGEST_SCHEDULE"):
        SchedulerService(settings.model_copy(update={"schedule": "every monday"}), engine)


def test_stop_waits_for_the_running_job_and_hands_it_the_stop_event(
    settings: Settings, engine: Engine
) -> None:
    settings = settings.model_copy(update={"schedule": "0 * * * *"})
    started, seen_stop = threading.Event(), threading.Event()

    def job(stop: threading.Event) -> None:
        started.set()
        if stop.wait(10):
            seen_stop.set()

    with time_machine.travel(dt.datetime(2026, 3, 2, 0, 30, tzinfo=UTC), tick=False):
        service = SchedulerService(settings, engine, job=job)
        thread = threading.Thread(target=service.run, daemon=True)
        thread.start()
        assert service.started.wait(10)
        service.request_stop()
        thread.join(10)
    assert not thread.is_alive() and service.exit_code == 0
    assert not started.is_set()  # nothing was due

    with time_machine.travel(dt.datetime(2026, 3, 2, 1, 0, 1, tzinfo=UTC), tick=False):
        service = SchedulerService(settings, engine, job=job)
        thread = threading.Thread(target=service.run, daemon=True)
        thread.start()
        assert started.wait(10)
        service.request_stop("SIGTERM")
        thread.join(10)
    assert seen_stop.is_set() and not thread.is_alive()


def test_a_scheduled_run_waits_for_a_manual_run_in_progress(
    settings: Settings, engine: Engine
) -> None:
    settings = settings.model_copy(update={"schedule": "0 * * * *"})
    calls: list[dt.datetime] = []
    with running(settings, engine, calls, at=dt.datetime(2026, 3, 2, 0, 30, tzinfo=UTC)):
        pass
    manual = job_lock_for(engine, settings.newsletter)  # what `--once` holds while it runs
    assert manual.try_acquire()
    try:
        with running(settings, engine, calls, at=dt.datetime(2026, 3, 2, 1, 0, 1, tzinfo=UTC)):
            time.sleep(0.5)
            assert calls == []  # due, but the manual run holds the job lock
            manual.release()
            assert wait_until(lambda: len(calls) == 1, timeout=15)
    finally:
        manual.close()


def test_heartbeat_is_written_every_interval(settings: Settings, engine: Engine) -> None:
    calls: list[dt.datetime] = []
    with running(settings, engine, calls, heartbeat_seconds=0.1):
        assert wait_until(lambda: scheduler_status(engine)["heartbeat"] is not None)
        first = scheduler_status(engine)["heartbeat"]["at"]
        assert wait_until(lambda: scheduler_status(engine)["heartbeat"]["at"] != first)
    status = scheduler_status(engine)
    assert status["heartbeat"]["interval_seconds"] == 0.1
    later = utcnow() + dt.timedelta(seconds=60)
    assert scheduler_status(engine, now=later)["alive"] is False
