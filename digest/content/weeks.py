"""ISO 8601 weeks in the configured timezone: parsing ``2026-W47`` and turning it into instants.

A week runs from Monday 00:00 to the next Monday 00:00 *local time*; the bounds are converted to
UTC for queries, so a comparison published late on a Sunday in New York belongs to that week
even though it is already Monday in UTC.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from digest.errors import InputError

WEEK_RE = re.compile(r"^(\d{4})-W(\d{2})$")


@dataclass(frozen=True, slots=True, order=True)
class IsoWeek:
    year: int
    week: int

    @classmethod
    def parse(cls, text: str) -> IsoWeek:
        match = WEEK_RE.match(text.strip())
        if not match:
            raise InputError(f"invalid week {text!r}: use the ISO form YYYY-Www, e.g. 2026-W47")
        year, week = int(match[1]), int(match[2])
        weeks_in_year = dt.date(year, 12, 28).isocalendar().week
        if not 1 <= week <= weeks_in_year:
            raise InputError(f"invalid week {text!r}: {year} has weeks 01 to {weeks_in_year}")
        return cls(year, week)

    @classmethod
    def containing(cls, moment: dt.datetime, zone: ZoneInfo) -> IsoWeek:
        calendar = moment.astimezone(zone).isocalendar()
        return cls(calendar.year, calendar.week)

    @classmethod
    def last_complete(cls, now: dt.datetime, zone: ZoneInfo) -> IsoWeek:
        """The most recent week that has ended, in ``zone``."""
        return cls.containing(now, zone).previous()

    def previous(self) -> IsoWeek:
        monday = dt.date.fromisocalendar(self.year, self.week, 1) - dt.timedelta(days=7)
        calendar = monday.isocalendar()
        return IsoWeek(calendar.year, calendar.week)

    @property
    def monday(self) -> dt.date:
        return dt.date.fromisocalendar(self.year, self.week, 1)

    def bounds(self, zone: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
        """``[start, end)`` of the week as aware UTC datetimes."""
        start = dt.datetime.combine(self.monday, dt.time(), tzinfo=zone)
        end = dt.datetime.combine(self.monday + dt.timedelta(days=7), dt.time(), tzinfo=zone)
        return start.astimezone(dt.UTC), end.astimezone(dt.UTC)

    def __str__(self) -> str:
        return f"{self.year}-W{self.week:02d}"
