"""ISO weeks in the configured timezone, and the week selection over the fixtures."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from digest.content.importer import import_paths
from digest.content.weeks import IsoWeek
from digest.editions.selection import comparisons_for_week
from digest.errors import InputError

UTC = ZoneInfo("UTC")
NEW_YORK = ZoneInfo("America/New_York")


def test_parse_and_format() -> None:
    assert str(IsoWeek.parse("2026-W47")) == "2026-W47"
    assert IsoWeek.parse("2026-W53").week == 53  # 2026 has 53 ISO weeks
    for bad in ("2026-W54", "2025-W53", "2026-W7", "2026W47", "W47", "2026-W00", ""):
        with pytest.raises(InputError):
            IsoWeek.parse(bad)


def test_bounds_follow_the_timezone() -> None:
    week = IsoWeek.parse("2026-W47")
    assert week.bounds(UTC) == (
        dt.datetime(2026, 11, 16, tzinfo=dt.UTC),
        dt.datetime(2026, 11, 23, tzinfo=dt.UTC),
    )
    start, end = week.bounds(NEW_YORK)
    assert start == dt.datetime(2026, 11, 16, 5, tzinfo=dt.UTC)
    assert end == dt.datetime(2026, 11, 23, 5, tzinfo=dt.UTC)


def test_last_complete_week_and_year_boundaries() -> None:
    now = dt.datetime(2026, 11, 27, 12, tzinfo=dt.UTC)
    assert str(IsoWeek.last_complete(now, UTC)) == "2026-W47"
    monday_early = dt.datetime(2026, 11, 23, 3, tzinfo=dt.UTC)  # still Sunday in New York
    assert str(IsoWeek.last_complete(monday_early, NEW_YORK)) == "2026-W46"
    assert str(IsoWeek.parse("2027-W01").previous()) == "2026-W53"
    assert str(IsoWeek.containing(dt.datetime(2027, 1, 1, tzinfo=dt.UTC), UTC)) == "2026-W53"


def test_week_selection_in_utc_and_new_york(engine: Engine, comparisons_dir: Path) -> None:
    import_paths(engine, [str(comparisons_dir)])
    with Session(engine) as session:
        utc = comparisons_for_week(session, IsoWeek.parse("2026-W47"), UTC)
        ny = comparisons_for_week(session, IsoWeek.parse("2026-W47"), NEW_YORK)
        w48_ny = comparisons_for_week(session, IsoWeek.parse("2026-W48"), NEW_YORK)
        w46 = comparisons_for_week(session, IsoWeek.parse("2026-W46"), UTC)
    assert len(utc) == 6
    assert len(ny) == 7 and "hushline-vs-resolvo" in {d.slug for d in ny}
    assert "hushline-vs-resolvo" not in {d.slug for d in utc}
    assert len(w48_ny) == 5
    assert len(w46) == 3
    assert [d.published_at for d in utc] == sorted(d.published_at for d in utc)
