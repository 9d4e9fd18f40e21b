"""The crontab schedule: parsing, crontab's weekday numbering, and local time across DST."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import time_machine

from digest.errors import ConfigError
from digest.scheduler.cron import build_trigger, crontab_weekdays, fire_times

UTC = dt.UTC
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def test_mondays_at_eight_in_berlin_across_spring_forward() -> None:
    # Clocks go forward on Sunday 2026-03-29: 08:00 is 07:00 UTC before, 06:00 UTC after.
    trigger = build_trigger("0 8 * * MON", BERLIN)
    with time_machine.travel(dt.datetime(2026, 3, 20, 12, tzinfo=UTC), tick=False):
        times = fire_times(trigger, dt.datetime.now(UTC), 3)
    assert times == [
        dt.datetime(2026, 3, 23, 7, 0, tzinfo=UTC),
        dt.datetime(2026, 3, 30, 6, 0, tzinfo=UTC),
        dt.datetime(2026, 4, 6, 6, 0, tzinfo=UTC),
    ]
    assert {moment.astimezone(BERLIN).hour for moment in times} == {8}


def test_mondays_at_eight_in_berlin_across_fall_back() -> None:
    trigger = build_trigger("0 8 * * MON", BERLIN)
    times = fire_times(trigger, dt.datetime(2026, 10, 18, tzinfo=UTC), 2)
    assert times == [
        dt.datetime(2026, 10, 19, 6, 0, tzinfo=UTC),
        dt.datetime(2026, 10, 26, 7, 0, tzinfo=UTC),
    ]


def test_mondays_at_eight_in_new_york_the_week_clocks_change() -> None:
    # US clocks go forward on Sunday 2026-03-08.
    trigger = build_trigger("0 8 * * MON", NEW_YORK)
    with time_machine.travel(dt.datetime(2026, 3, 7, 23, 30, tzinfo=UTC), tick=False):
        times = fire_times(trigger, dt.datetime.now(UTC), 2)
    assert times == [
        dt.datetime(2026, 3, 9, 12, 0, tzinfo=UTC),
        dt.datetime(2026, 3, 16, 12, 0, tzinfo=UTC),
    ]
    before = fire_times(trigger, dt.datetime(2026, 2, 28, tzinfo=UTC), 1)
    assert before == [dt.datetime(2026, 3, 2, 13, 0, tzinfo=UTC)]


def test_a_time_inside_the_spring_gap_fires_once_after_it() -> None:
    # 02:30 does not exist in Berlin on 2026-03-29.
    trigger = build_trigger("30 2 * * SUN", BERLIN)
    times = fire_times(trigger, dt.datetime(2026, 3, 28, tzinfo=UTC), 2)
    assert len(times) == 2 and times[1] - times[0] >= dt.timedelta(days=6)


@pytest.mark.parametrize(
    ("field", "days"),
    [
        ("MON", "mon"),
        ("1", "mon"),
        ("0", "sun"),
        ("7", "sun"),
        ("1-5", "mon,tue,wed,thu,fri"),
        ("mon-fri", "mon,tue,wed,thu,fri"),
        ("5-7", "fri,sat,sun"),
        ("*/2", "tue,thu,sat,sun"),
        ("1,3", "mon,wed"),
        ("*", "*"),
    ],
)
def test_weekdays_have_crontab_numbering(field: str, days: str) -> None:
    assert crontab_weekdays(field) == days


def test_numeric_monday_fires_on_monday() -> None:
    # APScheduler 3's own from_crontab would read "1" as Tuesday.
    trigger = build_trigger("0 8 * * 1", ZoneInfo("UTC"))
    (first,) = fire_times(trigger, dt.datetime(2026, 11, 25, tzinfo=UTC), 1)
    assert first == dt.datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    assert first.weekday() == 0


@pytest.mark.parametrize(
    ("schedule", "problem"),
    [
        ("0 8 * *", "expected 5 fields"),
        ("0 25 * * MON", "25"),
        ("0 8 1 * MON", "both day of month and day of week"),
        ("0 8 * * FUNDAY", "unknown day of week"),
        ("0 8 * * 5-1", "backwards"),
    ],
)
def test_invalid_schedule_is_refused_with_the_setting_named(schedule: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_trigger(schedule, BERLIN)
    message = str(caught.value)
    assert "DIGEST_SCHEDULE" in message and problem in message and "crontab syntax" in message


def test_local_time_delivery_fires_when_utc_plus_14_reaches_the_send_time() -> None:
    from digest.config import load_settings
    from digest.content.weeks import IsoWeek
    from digest.scheduler.cron import job_zone, weekly_trigger

    at_once = load_settings(schedule="0 8 * * MON", timezone="Europe/Berlin")
    assert fire_times(weekly_trigger(at_once), dt.datetime(2026, 11, 20, tzinfo=dt.UTC), 1) == [
        dt.datetime(2026, 11, 23, 7, 0, tzinfo=dt.UTC)
    ]
    local = at_once.model_copy(update={"delivery_mode": "local-time"})
    fires = fire_times(weekly_trigger(local), dt.datetime(2026, 11, 20, tzinfo=dt.UTC), 2)
    # Monday 08:00 in UTC+14 is Sunday 18:00 UTC: before any zone's Monday 08:00.
    assert fires == [
        dt.datetime(2026, 11, 22, 18, 0, tzinfo=dt.UTC),
        dt.datetime(2026, 11, 29, 18, 0, tzinfo=dt.UTC),
    ]
    # At that moment the last complete week is W47 in UTC+14 (in Berlin it is still Sunday).
    assert str(IsoWeek.last_complete(fires[0], job_zone(local))) == "2026-W47"
    assert str(IsoWeek.last_complete(fires[0], job_zone(at_once))) == "2026-W46"
    thursday = local.model_copy(update={"delivery_day": "THU", "local_send_time": "07:30"})
    assert fire_times(weekly_trigger(thursday), dt.datetime(2026, 11, 20, tzinfo=dt.UTC), 1) == [
        dt.datetime(2026, 11, 25, 17, 30, tzinfo=dt.UTC)
    ]
