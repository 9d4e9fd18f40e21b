"""``settings.schedule`` (crontab syntax) parsed into an APScheduler ``CronTrigger``.

APScheduler 3's own ``CronTrigger.from_crontab`` numbers weekdays from Monday = 0, so the
crontab line ``0 8 * * 1`` would fire on Tuesdays. ``build_trigger`` reads the day-of-week
field with crontab's meaning instead (0 and 7 = Sunday, 1 = Monday, names ``MON``..``SUN``,
ranges, lists and steps) and hands APScheduler day names, which mean the same to everybody.

In local-time delivery (``weekly_trigger``) the job fires once a week when the first zone,
UTC+14, reaches ``DIGEST_LOCAL_SEND_TIME`` on the delivery day: its ledger is then built before
anybody's send time, and every row falls on the delivery day in its own zone.

Crontab fires when *either* day field matches if both are restricted; APScheduler requires
both. Rather than silently pick one meaning, such a schedule is refused.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from digest.config import Settings
from digest.delivery.local_time import EARLIEST_ZONE, delivery_weekday, parse_send_time
from digest.errors import ConfigError

CRONTAB_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # crontab numbering, 0..6
APSCHEDULER_ORDER = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HELP = "crontab syntax: minute hour day-of-month month day-of-week, e.g. '0 8 * * MON'"


def _day(text: str) -> int:
    if text in CRONTAB_DAYS:
        return CRONTAB_DAYS.index(text)
    if text.isdigit() and 0 <= int(text) <= 7:
        return int(text)
    raise ValueError(f"unknown day of week {text!r} (use 0-7 or MON..SUN)")


def crontab_weekdays(field: str) -> str:
    """A crontab day-of-week field as APScheduler day names: ``1-5`` -> ``mon,tue,wed,thu,fri``."""
    if field == "*":
        return "*"
    days: set[int] = set()
    for part in field.lower().split(","):
        body, slash, step_text = part.partition("/")
        if slash and not (step_text.isdigit() and int(step_text) > 0):
            raise ValueError(f"invalid step in day of week {part!r}")
        step = int(step_text) if slash else 1
        if body == "*":
            low, high = 0, 6
        elif "-" in body:
            first, _, last = body.partition("-")
            low, high = _day(first), _day(last)
            if low > high:
                raise ValueError(f"day-of-week range {part!r} runs backwards")
        else:
            low = _day(body)
            high = 7 if slash else low
        days.update(day % 7 for day in range(low, high + 1, step))
    return ",".join(name for name in APSCHEDULER_ORDER if CRONTAB_DAYS.index(name) in days)


def build_trigger(schedule: str, zone: ZoneInfo) -> CronTrigger:
    """The trigger of ``schedule`` in ``zone``; a ``ConfigError`` naming DIGEST_SCHEDULE
    if it is invalid."""
    fields = schedule.split()
    try:
        if len(fields) != 5:
            raise ValueError(f"expected 5 fields, got {len(fields)}")
        minute, hour, day, month, weekday = fields
        if day != "*" and weekday != "*":
            raise ValueError(
                "both day of month and day of week are restricted (crontab fires on either, "
                "which is rarely meant); restrict only one"
            )
        return CronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=crontab_weekdays(weekday),
            timezone=zone,
        )
    except ValueError as exc:
        raise ConfigError(f"invalid DIGEST_SCHEDULE {schedule!r}: {exc} ({HELP})") from None


def weekly_trigger(settings: Settings) -> CronTrigger:
    """The weekly job's trigger: ``DIGEST_SCHEDULE`` in ``DIGEST_TIMEZONE``, or in local-time
    delivery the send time of the delivery day in UTC+14 (``DIGEST_SCHEDULE`` is still
    checked: its weekday is the default delivery day)."""
    trigger = build_trigger(settings.schedule, settings.zone)
    if settings.delivery_mode != "local-time":
        return trigger
    at = parse_send_time(settings.local_send_time)
    weekday = delivery_weekday(settings.delivery_day, settings.schedule)
    return CronTrigger(
        minute=at.minute,
        hour=at.hour,
        day_of_week=APSCHEDULER_ORDER[weekday],
        timezone=EARLIEST_ZONE,
    )


def job_zone(settings: Settings) -> ZoneInfo:
    """The zone whose calendar the weekly job reads "the last complete week" in: UTC+14 in
    local-time delivery (the job fires on the delivery day there), else ``DIGEST_TIMEZONE``."""
    return EARLIEST_ZONE if settings.delivery_mode == "local-time" else settings.zone


def fire_times(trigger: CronTrigger, after: dt.datetime, count: int) -> list[dt.datetime]:
    """The next ``count`` fire times strictly after ``after``, in UTC."""
    times: list[dt.datetime] = []
    previous: dt.datetime | None = None
    now = after + dt.timedelta(microseconds=1)
    while len(times) < count:
        fire = trigger.get_next_fire_time(previous, now)
        if fire is None:
            break
        times.append(fire.astimezone(dt.UTC))
        previous = fire
        now = fire + dt.timedelta(microseconds=1)
    return times


def next_fire_time(trigger: CronTrigger, after: dt.datetime) -> dt.datetime | None:
    """The first fire time strictly after ``after``, in UTC (None if the trigger never fires)."""
    times = fire_times(trigger, after, 1)
    return times[0] if times else None
