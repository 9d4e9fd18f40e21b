"""Local-time delivery: when each subscriber is due an edition, in their own timezone.

In ``local-time`` mode (``settings.delivery_mode``) every ledger row gets a ``not_before``: the
local send time (``settings.local_send_time``, 08:00) in the subscriber's zone, either on the
edition's delivery day (the weekly job: the same local date everywhere) or at the next such
time from now (a manual ``digest send``). This module is pure: it turns a zone name and a rule
into an instant; the ledger stores and claims it (``digest.delivery.build``,
``digest.delivery.ledger``).

- A subscriber without a timezone (empty, the ``UTC`` a form stores when none was given, or a
  name tzdata no longer knows) uses ``settings.timezone``.
- ``zoneinfo`` settles daylight saving: a local time that falls in a gap moves forward by the
  gap (02:30 on a spring-forward night is 03:30); one that happens twice takes the first
  occurrence (``fold=0``).
- Half-hour and 45-minute offsets (Asia/Kolkata, America/St_Johns, Asia/Kathmandu) are just
  offsets.
- The earliest zone is UTC+14 (Pacific/Kiritimati): ``earliest_start`` is when its delivery
  day reaches the send time, the moment the weekly job must have built the ledger by.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from digest.timezones import MAX_ZONE_LENGTH, known_zones, parse_send_time, parse_weekday

__all__ = ["parse_send_time", "parse_weekday"]

EARLIEST_ZONE = ZoneInfo("Etc/GMT-14")  # UTC+14 (the POSIX sign is inverted)
NO_ZONE = frozenset({"", "UTC"})


@functools.lru_cache(maxsize=4096)
def _zone(name: str) -> ZoneInfo | None:
    if name in NO_ZONE or len(name) > MAX_ZONE_LENGTH or name not in known_zones():
        return None
    return ZoneInfo(name)


def own_zone(name: str | None) -> ZoneInfo | None:
    """The subscriber's own zone; None when they gave none (they get ``DIGEST_TIMEZONE``)."""
    return _zone(name or "")


def zone_of(name: str | None, default: ZoneInfo) -> ZoneInfo:
    """The zone a subscriber's ``timezone`` stands for; ``default`` when they gave none."""
    return _zone(name or "") or default


def on_day(zone: ZoneInfo, day: dt.date, at: dt.time) -> dt.datetime:
    """``at`` local time on ``day`` in ``zone``, in UTC (gap: forward; ambiguous: first)."""
    local = dt.datetime.combine(day, at, tzinfo=zone)  # fold=0
    return local.astimezone(dt.UTC)


def next_at(zone: ZoneInfo, at: dt.time, now: dt.datetime) -> dt.datetime:
    """The first ``at`` local time in ``zone`` at or after ``now``, in UTC."""
    today = now.astimezone(zone).date()
    for day in (today - dt.timedelta(days=1), today, today + dt.timedelta(days=1)):
        due = on_day(zone, day, at)
        if due >= now:
            return due
    return on_day(zone, today + dt.timedelta(days=2), at)  # pragma: no cover - 24 h apart


def earliest_start(day: dt.date, at: dt.time) -> dt.datetime:
    """When ``day`` reaches ``at`` in UTC+14, the first zone to: the latest moment the weekly
    job may build a ledger whose rows all fall on ``day``."""
    return on_day(EARLIEST_ZONE, day, at)


@dataclass(frozen=True)
class LocalSchedule:
    """The rule of one ledger: ``at`` local time on ``day`` (the weekly job), or, without a
    ``day``, at the next ``at`` from ``now`` (a manual send). ``due`` is cached per zone
    name: a ledger of 100,000 rows has a few hundred distinct zones."""

    at: dt.time
    default_zone: ZoneInfo
    now: dt.datetime
    day: dt.date | None = None
    _cache: dict[str, dt.datetime] = field(default_factory=dict, compare=False, repr=False)

    def due(self, zone_name: str | None) -> dt.datetime:
        """When a subscriber whose ``timezone`` is ``zone_name`` is due the edition (UTC)."""
        key = zone_name or ""
        found = self._cache.get(key)
        if found is None:
            zone = zone_of(key, self.default_zone)
            if self.day is not None:
                found = on_day(zone, self.day, self.at)
            else:
                found = next_at(zone, self.at, self.now)
            self._cache[key] = found
        return found

    def as_dict(self) -> dict[str, str | None]:
        """As stored with the edition (``state_key``): a resumed build and every claim use
        the rule the ledger was started with, whatever the settings say by then."""
        return {
            "at": self.at.strftime("%H:%M"),
            "default_zone": self.default_zone.key,
            "now": self.now.isoformat(),
            "day": None if self.day is None else self.day.isoformat(),
        }

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> LocalSchedule:
        day = value.get("day")
        return cls(
            parse_send_time(str(value["at"])),
            ZoneInfo(str(value["default_zone"])),
            dt.datetime.fromisoformat(str(value["now"])),
            None if day is None else dt.date.fromisoformat(str(day)),
        )


def state_key(edition_id: int) -> str:
    """The ``ServiceState`` key holding the schedule of a local-time edition."""
    return f"local_time:{edition_id}"


def follow(
    old_due: dt.datetime,
    old_zone: str | None,
    new_zone: str | None,
    *,
    at: dt.time,
    default: ZoneInfo,
) -> dt.datetime:
    """A row due at ``old_due`` for a subscriber in ``old_zone`` who has moved to
    ``new_zone``: ``at`` on the same local date in the new zone (the delivery day, or the
    day a manual send picked)."""
    day = old_due.astimezone(zone_of(old_zone, default)).date()
    return on_day(zone_of(new_zone, default), day, at)


def delivery_weekday(delivery_day: str | None, schedule: str) -> int:
    """The weekday (Monday = 0) editions are delivered on: ``DIGEST_DELIVERY_DAY``, else the
    day of ``DIGEST_SCHEDULE`` when it names exactly one, else Monday."""
    if delivery_day:
        return parse_weekday(delivery_day)
    fields = schedule.split()
    try:
        return parse_weekday(fields[4]) if len(fields) == 5 else 0
    except ValueError:
        return 0  # a range or list of days: Monday


def delivery_day(week_monday: dt.date, weekday: int) -> dt.date:
    """The delivery day of the edition of the ISO week starting ``week_monday``: ``weekday``
    (Monday = 0) of the following week, when that week is complete everywhere."""
    return week_monday + dt.timedelta(days=7 + weekday)
