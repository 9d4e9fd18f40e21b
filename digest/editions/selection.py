"""Which comparisons a week's edition carries: the editions' decision, made in one place.

A week's comparisons are those published in it (``digest.content.store.published_in``, in the
newsletter's time zone). An edition carries the *new* ones only: a comparison that a sending or
sent edition already carries is not sent twice. ``new_comparisons`` is that rule;
``comparisons_for_week`` shows the week with or without it.

An edition can be frozen before its week has ended: local-time delivery freezes it when the
earliest zone (UTC+14) reaches the send time, and an editor may send early. What is published
after that freeze, still in the frozen edition's week, goes into the next week's edition, which
therefore also looks back to when the previous week's edition was created.
"""

from __future__ import annotations

from collections.abc import Sequence
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from digest.config import Settings
from digest.content.document import ComparisonDoc
from digest.content.store import published_in, to_document
from digest.content.weeks import IsoWeek
from digest.editions.models import Edition, EditionComparison, EditionStatus


def carried_by_sent_editions(session: Session, comparison_ids: Sequence[int]) -> set[int]:
    """Which of these comparisons a sent (or sending) edition already carries."""
    if not comparison_ids:
        return set()
    statement = (
        select(EditionComparison.comparison_id)
        .join(Edition, col(Edition.id) == col(EditionComparison.edition_id))
        .where(
            col(EditionComparison.comparison_id).in_(comparison_ids),
            col(Edition.status).in_([EditionStatus.SENDING, EditionStatus.SENT]),
        )
    )
    return set(session.exec(statement).all())


def new_comparisons(
    session: Session, week: IsoWeek, settings: Settings
) -> list[tuple[int, ComparisonDoc]]:
    """The week's comparisons that no sending or sent edition carries, with their ids, and
    those published after the previous week's edition was frozen (see the module docstring)."""
    start, end = week.bounds(settings.zone)
    frozen = session.exec(
        select(Edition.created_at).where(
            Edition.newsletter == settings.newsletter, Edition.week == str(week.previous())
        )
    ).first()
    if frozen is not None and frozen < start:
        start = frozen
    rows = published_in(session, start, end)
    carried = carried_by_sent_editions(session, [row.id for row in rows if row.id is not None])
    return [
        (row.id, to_document(row)) for row in rows if row.id is not None and row.id not in carried
    ]


def comparisons_for_week(
    session: Session, week: IsoWeek, zone: ZoneInfo, *, only_new: bool = False
) -> list[ComparisonDoc]:
    """The comparisons of ``week`` in ``zone``; with ``only_new``, minus those already carried."""
    start, end = week.bounds(zone)
    rows = published_in(session, start, end)
    if only_new:
        carried = carried_by_sent_editions(session, [row.id for row in rows if row.id is not None])
        rows = [row for row in rows if row.id not in carried]
    return [to_document(row) for row in rows]
