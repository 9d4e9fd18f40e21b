"""The guards: the send window (local time, over midnight, across DST) and the pause switch,
held by the weekly job with an injected sleep that moves the travelled clock."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy.engine import Engine

from digest.config import Settings
from digest.db import utcnow
from digest.delivery.guards import (
    Guards,
    HoldOutcome,
    SendWindow,
    current_hold,
    hold,
    is_paused,
    pause,
    pause_state,
    resume,
)
from digest.scheduler.job import JobStatus, run_weekly_job

UTC = dt.UTC
BERLIN = ZoneInfo("Europe/Berlin")


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# -- the window itself ---------------------------------------------------------------------------


def test_window_parse() -> None:
    window = SendWindow.parse("07:00-20:00")
    assert window == SendWindow(dt.time(7), dt.time(20))
    assert str(window) == "07:00-20:00"
    assert SendWindow.parse(None) is None and SendWindow.parse("") is None
    with pytest.raises(ValueError, match="07:00-20:00"):
        SendWindow.parse("7am-8pm")


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        (at(2026, 11, 23, 5, 59), False),  # 06:59 Berlin (CET, UTC+1)
        (at(2026, 11, 23, 6, 0), True),  # 07:00
        (at(2026, 11, 23, 18, 59), True),  # 19:59
        (at(2026, 11, 23, 19, 0), False),  # 20:00: the end is excluded
        (at(2026, 7, 6, 5, 0), True),  # 07:00 CEST in summer is 05:00 UTC
    ],
)
def test_window_is_local_time(moment: dt.datetime, inside: bool) -> None:
    window = SendWindow.parse("07:00-20:00")
    assert window is not None and window.contains(moment, BERLIN) is inside


def test_window_over_midnight() -> None:
    window = SendWindow.parse("22:00-06:00")
    assert window is not None
    utc = ZoneInfo("UTC")
    assert window.contains(at(2026, 1, 1, 23, 0), utc)
    assert window.contains(at(2026, 1, 1, 5, 59), utc)
    assert not window.contains(at(2026, 1, 1, 12, 0), utc)
    assert window.next_opening(at(2026, 1, 1, 12, 0), utc) == at(2026, 1, 1, 22, 0)


def test_next_opening_across_spring_forward() -> None:
    window = SendWindow.parse("07:00-20:00")
    assert window is not None
    # Saturday 21:00 CET -> Sunday 07:00 CEST (the clocks changed overnight) = 05:00 UTC.
    assert window.next_opening(at(2026, 3, 28, 20, 0), BERLIN) == at(2026, 3, 29, 5, 0)
    inside = at(2026, 3, 30, 10, 0)
    assert window.next_opening(inside, BERLIN) == inside


# -- the pause switch ----------------------------------------------------------------------------


def test_pause_and_resume_record_who_and_when(engine: Engine) -> None:
    assert pause_state(engine) is None and not is_paused(engine)
    with time_machine.travel(at(2026, 11, 23, 8, 0), tick=False):
        state = pause(engine, by="ops@host", reason="wrong subject")
    assert state == {
        "paused": True,
        "by": "ops@host",
        "at": "2026-11-23T08:00:00+00:00",
        "reason": "wrong subject",
    }
    assert is_paused(engine) and pause_state(engine) == state
    resumed = resume(engine, by="lead@host")
    assert resumed["paused"] is False and resumed["by"] == "lead@host"
    assert not is_paused(engine)


def test_every_claim_reads_the_same_switch(settings: Settings, engine: Engine) -> None:
    guards = Guards(None, BERLIN)
    assert current_hold(engine, guards) is None
    pause(engine, by="ops")
    held = current_hold(engine, guards)
    assert held is not None and held.reason == "paused" and held.by == "ops"
    assert held.describe().startswith("paused by ops at ")
    resume(engine, by="ops")
    assert current_hold(engine, guards) is None


# -- hold ---------------------------------------------------------------------------------------


def shifting_sleep(traveller: Any, log: list[float]) -> Callable[[float], None]:
    def sleep(seconds: float) -> None:
        log.append(seconds)
        traveller.shift(dt.timedelta(seconds=seconds))

    return sleep


def test_hold_waits_for_the_window_in_bounded_steps(engine: Engine) -> None:
    window = SendWindow.parse("07:00-20:00")
    sleeps: list[float] = []
    with time_machine.travel(at(2026, 11, 23, 5, 0), tick=False) as traveller:
        result = hold(
            engine,
            Guards(window, BERLIN),
            stop=threading.Event(),
            sleep=shifting_sleep(traveller, sleeps),
            step=60,
        )
        assert utcnow() == at(2026, 11, 23, 6, 0)  # 07:00 in Berlin
    assert result.outcome is HoldOutcome.CLEAR and result.reason == "window"
    assert result.waited_seconds == 3600
    assert len(sleeps) == 60 and max(sleeps) <= 60


def test_hold_gives_up_at_the_deadline_and_on_stop(engine: Engine) -> None:
    pause(engine, by="ops")
    sleeps: list[float] = []
    with time_machine.travel(at(2026, 11, 23, 9, 0), tick=False) as traveller:
        result = hold(
            engine,
            Guards(None, BERLIN),
            stop=threading.Event(),
            sleep=shifting_sleep(traveller, sleeps),
            step=600,
            max_hold=dt.timedelta(hours=1),
        )
    assert result.outcome is HoldOutcome.EXPIRED and result.reason == "paused"
    assert result.waited_seconds == 3600

    stop = threading.Event()
    stop.set()
    assert hold(engine, Guards(None, BERLIN), stop=stop).outcome is HoldOutcome.STOPPED


# -- the job honours both -----------------------------------------------------------------------


def test_job_outside_the_window_sends_when_it_opens(
    job_settings: Settings, engine: Engine, fake_sender: Any
) -> None:
    settings = job_settings.model_copy(
        update={"timezone": "Europe/Berlin", "send_window": "07:00-20:00"}
    )
    sender = fake_sender()
    sleeps: list[float] = []
    # Monday 2026-11-23 05:30 Berlin: the job fires (the week is 2026-W47), the window is shut.
    with time_machine.travel(at(2026, 11, 23, 4, 30), tick=False) as traveller:
        report = run_weekly_job(
            settings, engine, send_edition=sender, sleep=shifting_sleep(traveller, sleeps)
        )
    assert report.status is JobStatus.SENT, report.as_dict()
    assert report.week == "2026-W47"
    assert [moment for _edition, moment in sender.calls] == [at(2026, 11, 23, 6, 0)]
    hold_step = report.step("hold")
    assert hold_step is not None and hold_step.detail["held_by"] == "window"
    assert hold_step.detail["waited_seconds"] == 5400
    assert max(sleeps) <= 60


def test_job_holds_while_paused_and_sends_after_resume(
    job_settings: Settings, engine: Engine, fake_sender: Any
) -> None:
    pause(engine, by="ops", reason="checking the subject")
    sender = fake_sender()
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        traveller.shift(dt.timedelta(seconds=seconds))
        if len(sleeps) == 5:
            resume(engine, by="ops")

    with time_machine.travel(at(2026, 11, 23, 9, 0), tick=False) as traveller:
        report = run_weekly_job(job_settings, engine, send_edition=sender, sleep=sleep)
    assert report.status is JobStatus.SENT
    assert len(sender.calls) == 1 and sender.calls[0][1] == at(2026, 11, 23, 9, 5)
    hold_step = report.step("hold")
    assert hold_step is not None and hold_step.detail["held_by"] == "paused"


def test_job_paused_while_sending_goes_back_to_the_hold(
    job_settings: Settings, engine: Engine, fake_sender: Any
) -> None:
    # The delivery engine answers "paused" (it saw the switch between batches); the job
    # holds until resume, then sends the rest.
    sender = fake_sender(outcomes=["paused", "done"])
    sender.before = lambda: pause(engine, by="ops") if not sender.calls else None

    def sleep(seconds: float) -> None:
        traveller.shift(dt.timedelta(seconds=seconds))
        resume(engine, by="ops")

    with time_machine.travel(at(2026, 11, 23, 9, 0), tick=False) as traveller:
        report = run_weekly_job(job_settings, engine, send_edition=sender, sleep=sleep)
    assert report.status is JobStatus.SENT
    assert len(sender.calls) == 2
    assert [step.name for step in report.steps] == [
        "import",
        "week",
        "edition",
        "hold",
        "send",
        "hold",
        "send",
    ]


def test_job_still_paused_at_the_deadline_leaves_the_edition_waiting(
    job_settings: Settings, engine: Engine, fake_sender: Any
) -> None:
    pause(engine, by="ops")
    sender = fake_sender()
    with time_machine.travel(at(2026, 11, 23, 9, 0), tick=False) as traveller:
        report = run_weekly_job(
            job_settings,
            engine,
            send_edition=sender,
            sleep=lambda seconds: traveller.shift(dt.timedelta(seconds=seconds)),
            max_hold=dt.timedelta(hours=2),
        )
    assert report.status is JobStatus.HELD and "paused" in report.reason
    assert sender.calls == [] and report.edition_id is not None
