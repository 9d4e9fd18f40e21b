"""The due instant of a subscriber in local-time delivery: zones, DST gaps and folds."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from digest.delivery.local_time import (
    LocalSchedule,
    delivery_day,
    earliest_start,
    follow,
    next_at,
    on_day,
    parse_send_time,
    parse_weekday,
    zone_of,
)

EIGHT = dt.time(8, 0)
UTC = dt.UTC
MONDAY = dt.date(2026, 3, 9)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        ("Pacific/Kiritimati", utc(2026, 3, 8, 18, 0)),  # UTC+14
        ("Pacific/Auckland", utc(2026, 3, 8, 19, 0)),  # NZDT, +13
        ("Asia/Kathmandu", utc(2026, 3, 9, 2, 15)),  # +5:45
        ("Asia/Kolkata", utc(2026, 3, 9, 2, 30)),  # +5:30
        ("Australia/Eucla", utc(2026, 3, 8, 23, 15)),  # +8:45
        ("Europe/London", utc(2026, 3, 9, 8, 0)),  # GMT
        ("America/St_Johns", utc(2026, 3, 9, 10, 30)),  # NDT since 8 March, -2:30
        ("America/Los_Angeles", utc(2026, 3, 9, 15, 0)),  # PDT since 8 March, -7
        ("Pacific/Pago_Pago", utc(2026, 3, 9, 19, 0)),  # -11
    ],
)
def test_eight_on_the_delivery_day_in_every_zone(zone: str, expected: dt.datetime) -> None:
    due = on_day(ZoneInfo(zone), MONDAY, EIGHT)
    assert due == expected
    local = due.astimezone(ZoneInfo(zone))
    assert (local.date(), local.time()) == (MONDAY, EIGHT)


def test_a_time_in_the_spring_gap_moves_forward() -> None:
    # Los Angeles skips 02:00-03:00 on 8 March 2026: 02:30 becomes 03:30 PDT (10:30 UTC).
    due = on_day(ZoneInfo("America/Los_Angeles"), dt.date(2026, 3, 8), dt.time(2, 30))
    assert due == utc(2026, 3, 8, 10, 30)
    assert due.astimezone(ZoneInfo("America/Los_Angeles")).time() == dt.time(3, 30)
    # London skips 01:00-02:00 on 29 March 2026.
    london = on_day(ZoneInfo("Europe/London"), dt.date(2026, 3, 29), dt.time(1, 30))
    assert london == utc(2026, 3, 29, 1, 30)
    assert london.astimezone(ZoneInfo("Europe/London")).time() == dt.time(2, 30)


def test_an_ambiguous_time_takes_the_first_occurrence() -> None:
    # 01:30 happens twice in London on 25 October 2026 (BST, then GMT): the first is 00:30 UTC.
    assert on_day(ZoneInfo("Europe/London"), dt.date(2026, 10, 25), dt.time(1, 30)) == utc(
        2026, 10, 25, 0, 30
    )
    assert on_day(ZoneInfo("America/Los_Angeles"), dt.date(2026, 11, 1), dt.time(1, 30)) == utc(
        2026, 11, 1, 8, 30
    )


def test_eight_on_dst_weekends_is_eight_local() -> None:
    # The Sunday and Monday of London's and Los Angeles's autumn change.
    for zone, day in (
        ("Europe/London", dt.date(2026, 10, 25)),
        ("Europe/London", dt.date(2026, 10, 26)),
        ("America/Los_Angeles", dt.date(2026, 11, 1)),
        ("America/Los_Angeles", dt.date(2026, 11, 2)),
    ):
        local = on_day(ZoneInfo(zone), day, EIGHT).astimezone(ZoneInfo(zone))
        assert (local.date(), local.time()) == (day, EIGHT)
    assert on_day(ZoneInfo("Europe/London"), dt.date(2026, 10, 24), EIGHT) == utc(2026, 10, 24, 7)
    assert on_day(ZoneInfo("Europe/London"), dt.date(2026, 10, 25), EIGHT) == utc(2026, 10, 25, 8)


def test_next_at_is_today_or_tomorrow_from_now() -> None:
    kolkata = ZoneInfo("Asia/Kolkata")
    assert next_at(kolkata, EIGHT, utc(2026, 3, 9, 2, 0)) == utc(2026, 3, 9, 2, 30)
    assert next_at(kolkata, EIGHT, utc(2026, 3, 9, 2, 30)) == utc(2026, 3, 9, 2, 30)
    assert next_at(kolkata, EIGHT, utc(2026, 3, 9, 2, 31)) == utc(2026, 3, 10, 2, 30)
    # Late in the local evening of the day before: still "tomorrow" locally.
    assert next_at(ZoneInfo("Pacific/Pago_Pago"), EIGHT, utc(2026, 3, 9, 10)) == utc(2026, 3, 9, 19)


def test_subscribers_without_a_zone_use_the_default() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    assert zone_of("", berlin) is berlin
    assert zone_of("UTC", berlin) is berlin
    assert zone_of("Mars/Olympus_Mons", berlin) is berlin
    assert zone_of("x" * 10_000, berlin) is berlin
    assert zone_of("Etc/UTC", berlin) == ZoneInfo("Etc/UTC")
    assert zone_of("Asia/Tokyo", berlin) == ZoneInfo("Asia/Tokyo")


def test_schedule_caches_per_zone_and_picks_the_rule() -> None:
    now = utc(2026, 3, 8, 18, 0)
    on_monday = LocalSchedule(EIGHT, ZoneInfo("Europe/Berlin"), now, MONDAY)
    assert on_monday.due("") == utc(2026, 3, 9, 7, 0)  # Berlin, CET
    assert on_monday.due("Pacific/Pago_Pago") == utc(2026, 3, 9, 19, 0)
    manual = LocalSchedule(EIGHT, ZoneInfo("Europe/Berlin"), utc(2026, 3, 9, 12, 0))
    assert manual.due("Asia/Kolkata") == utc(2026, 3, 10, 2, 30)
    assert manual.due("America/Los_Angeles") == utc(2026, 3, 9, 15, 0)


def test_the_weekly_job_starts_when_utc_plus_14_reaches_eight() -> None:
    assert earliest_start(MONDAY, EIGHT) == utc(2026, 3, 8, 18, 0)
    # Every zone's 08:00 on the delivery day is at or after it (UTC-12 the last, 26 h later).
    for zone in ("Pacific/Kiritimati", "Pacific/Auckland", "Etc/GMT+12", "Pacific/Pago_Pago"):
        assert on_day(ZoneInfo(zone), MONDAY, EIGHT) >= earliest_start(MONDAY, EIGHT)


def test_follow_keeps_the_local_date_in_the_new_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    old = on_day(ZoneInfo("Asia/Kolkata"), MONDAY, EIGHT)
    assert follow(old, "Asia/Kolkata", "America/Los_Angeles", at=EIGHT, default=berlin) == utc(
        2026, 3, 9, 15
    )
    assert follow(old, "Asia/Kolkata", "", at=EIGHT, default=berlin) == utc(2026, 3, 9, 7)


def test_settings_words() -> None:
    assert parse_send_time("08:00") == EIGHT
    assert parse_send_time("23:45") == dt.time(23, 45)
    for bad in ("8:00", "24:00", "08:60", "08:00:00", "noon"):
        with pytest.raises(ValueError, match="HH:MM"):
            parse_send_time(bad)
    assert [parse_weekday(day) for day in ("MON", "sun", "0", "7", "1", "Fri")] == [
        0,
        6,
        6,
        6,
        0,
        4,
    ]
    with pytest.raises(ValueError, match="day of week"):
        parse_weekday("funday")
    assert delivery_day(dt.date(2026, 3, 2), 0) == MONDAY


def test_settings_refuse_bad_local_time_words() -> None:
    from digest.config import load_settings
    from digest.errors import ConfigError

    settings = load_settings(delivery_mode="local-time", delivery_day="sun")
    assert (settings.delivery_mode, settings.local_send_time) == ("local-time", "08:00")
    with pytest.raises(ConfigError, match="DIGEST_LOCAL_SEND_TIME: must look like 08:00"):
        load_settings(local_send_time="8am")
    with pytest.raises(ConfigError, match="DIGEST_DELIVERY_DAY: unknown day of week"):
        load_settings(delivery_day="someday")
    with pytest.raises(ConfigError, match="DIGEST_DELIVERY_MODE"):
        load_settings(delivery_mode="whenever")
