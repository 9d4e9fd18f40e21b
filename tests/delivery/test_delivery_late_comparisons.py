"""A comparison published after its week's edition was frozen (local-time delivery freezes it
when UTC+14 reaches the send time; an editor may send early) goes into the next week's
edition instead of into none."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import time_machine
from sqlalchemy.engine import Engine

from digest.config import Settings
from digest.content.importer import import_paths
from digest.content.weeks import IsoWeek
from digest.db import session_scope
from digest.editions.selection import new_comparisons
from digest.editions.service import open_edition
from digest.render.edition import subject_for

W47, W48 = IsoWeek(2026, 47), IsoWeek(2026, 48)
LATE = "2026-11-22-chartwise-vs-querylark.json"  # published Sunday 2026-11-22 18:00 UTC


def _slugs(engine: Engine, week: IsoWeek, settings: Settings) -> list[str]:
    with session_scope(engine) as session:
        return [doc.slug for _id, doc in new_comparisons(session, week, settings)]


def test_a_comparison_published_after_the_freeze_goes_into_the_next_edition(
    engine: Engine, send_settings: Settings, comparisons_dir: Path
) -> None:
    early = [path for path in sorted(comparisons_dir.glob("*.json")) if path.name != LATE]
    assert import_paths(engine, [str(path) for path in early]).ok
    # Frozen on Sunday 12:00 UTC, as local-time delivery would for a Monday send.
    with time_machine.travel(dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC), tick=False):
        outcome = open_edition(
            engine, send_settings, W47, subject_for=subject_for(send_settings, W47)
        )
    assert outcome.created and outcome.edition is not None
    assert import_paths(engine, [str(comparisons_dir / LATE)]).ok

    late_slug = "chartwise-vs-querylark"
    assert late_slug not in _carried(engine, outcome.edition.id)  # the edition is frozen
    w48 = _slugs(engine, W48, send_settings)
    assert late_slug in w48
    assert all(slug not in w48 for slug in _carried(engine, outcome.edition.id))


def test_an_edition_frozen_after_its_week_looks_back_no_further(
    engine: Engine, send_settings: Settings, comparisons_dir: Path
) -> None:
    assert import_paths(engine, [str(comparisons_dir)]).ok
    with time_machine.travel(dt.datetime(2026, 11, 23, 8, tzinfo=dt.UTC), tick=False):
        open_edition(engine, send_settings, W47, subject_for=subject_for(send_settings, W47))
    with session_scope(engine) as session:
        w48 = new_comparisons(session, W48, send_settings)
    start, end = W48.bounds(send_settings.zone)
    assert w48 and all(start <= doc.published_at < end for _id, doc in w48)


def _carried(engine: Engine, edition_id: int | None) -> list[str]:
    from digest.editions.service import edition_documents

    assert edition_id is not None
    with session_scope(engine) as session:
        return [doc.slug for doc in edition_documents(session, edition_id)]
