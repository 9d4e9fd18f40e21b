"""Opening a week's edition: created at most once, its comparisons frozen as snapshots.

``get_or_create_edition`` is safe to call from any number of processes at the same moment:
``(newsletter, week)`` is unique, so all but one insert fail and re-read the winner's row. The
edition and its ``EditionComparison`` rows are written in one transaction; the delivery ledger
is built afterwards (``digest.delivery.ledger``) and marked complete on the edition when done.

An edition carries the week's *new* comparisons only (those no sending or sent edition carries
yet); with fewer than ``settings.min_new_comparisons`` there is no edition, and
``open_edition`` says why.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from digest.clicks.models import EditionLink
from digest.config import Settings
from digest.content.document import ComparisonDoc
from digest.content.store import published_in
from digest.content.weeks import IsoWeek
from digest.db import core_connection, immediate_session, session_scope
from digest.editions.models import Edition, EditionComparison, EditionStatus
from digest.editions.selection import new_comparisons
from digest.editions.table import latest_edition_id, no_such_edition
from digest.errors import NotFoundError

SubjectFor = Callable[[Sequence[ComparisonDoc]], str]


@dataclass(frozen=True, slots=True)
class EditionOutcome:
    """What ``open_edition`` did: the edition (None when there is none to send), whether this
    call created it, and otherwise why there is none."""

    edition: Edition | None
    created: bool = False
    reason: str = ""


def find_edition(session: Session, newsletter: str, week: IsoWeek | str) -> Edition | None:
    return session.exec(
        select(Edition).where(Edition.newsletter == newsletter, Edition.week == str(week))
    ).first()


def get_edition(session: Session, edition_id: int) -> Edition:
    """The edition with this id, or ``NotFoundError``."""
    edition = session.get(Edition, edition_id)
    if edition is None:
        raise no_such_edition(edition_id)
    return edition


def latest_edition(session: Session, newsletter: str) -> Edition | None:
    """The edition of the most recent week (the newest row when weeks tie)."""
    edition_id = latest_edition_id(core_connection(session), newsletter)
    return None if edition_id is None else session.get(Edition, edition_id)


def edition_documents(session: Session, edition_id: int) -> list[ComparisonDoc]:
    """The comparisons an edition carries, restored from its snapshots, in edition order."""
    snapshots = session.exec(
        select(EditionComparison.snapshot)
        .where(EditionComparison.edition_id == edition_id)
        .order_by(col(EditionComparison.position))
    ).all()
    return [ComparisonDoc.model_validate(snapshot) for snapshot in snapshots]


def too_few_reason(week: IsoWeek, found: int, settings: Settings) -> str:
    return (
        f"no edition for {week}: {found} new comparison{'s' if found != 1 else ''}, "
        f"at least {settings.min_new_comparisons} needed (DIGEST_MIN_NEW_COMPARISONS)"
    )


def get_or_create_edition(
    engine: Engine, settings: Settings, week: IsoWeek, *, subject_for: SubjectFor
) -> Edition | None:
    """The edition of ``week``, created if needed; None when the week has too few new
    comparisons (``open_edition`` gives the reason)."""
    return open_edition(engine, settings, week, subject_for=subject_for).edition


def open_edition(
    engine: Engine, settings: Settings, week: IsoWeek, *, subject_for: SubjectFor
) -> EditionOutcome:
    """The edition of ``week`` (any status), created now if the week has enough new comparisons.

    ``subject_for`` turns the selected comparisons into the stored subject line; the caller
    passes it (``digest.render.edition.subject_for``), so editions need not know how a
    subject is rendered.
    """
    with session_scope(engine) as session:
        existing = find_edition(session, settings.newsletter, week)
        if existing is not None:
            return EditionOutcome(existing)
    try:
        # BEGIN IMMEDIATE on SQLite: concurrent creators queue here instead of failing to
        # upgrade a read transaction; PostgreSQL relies on the unique key alone.
        with immediate_session(engine) as session:
            existing = find_edition(session, settings.newsletter, week)
            if existing is not None:
                return EditionOutcome(existing)
            selected = new_comparisons(session, week, settings)
            if len(selected) < settings.min_new_comparisons:
                # On PostgreSQL another creator may have committed between the two reads,
                # its edition now carrying the comparisons that are no longer "new".
                existing = find_edition(session, settings.newsletter, week)
                if existing is not None:
                    return EditionOutcome(existing)
                return EditionOutcome(None, reason=too_few_reason(week, len(selected), settings))
            edition = Edition(
                newsletter=settings.newsletter,
                week=str(week),
                status=EditionStatus.SENDING,
                subject=subject_for([doc for _id, doc in selected])[:500],
            )
            session.add(edition)
            session.flush()
            assert edition.id is not None
            session.add_all(
                EditionComparison(
                    edition_id=edition.id,
                    comparison_id=comparison_id,
                    position=position,
                    snapshot=doc.model_dump(mode="json"),
                )
                for position, (comparison_id, doc) in enumerate(selected)
            )
            # The tracked links' targets, frozen with the comparisons. Imported here: the
            # render package loads the template engine, which `digest status` must not.
            from digest.render.links import link_table

            session.add_all(
                EditionLink(
                    edition_id=edition.id,
                    link=target.link,
                    kind=str(target.kind),
                    url=target.url,
                    comparison=target.comparison,
                    tool=target.tool,
                )
                for target in link_table([doc for _id, doc in selected], settings.base_url)
            )
        return EditionOutcome(edition, created=True)
    except IntegrityError:
        with session_scope(engine) as session:
            existing = find_edition(session, settings.newsletter, week)
        if existing is None:
            raise
        return EditionOutcome(existing)


def mark_ledger_complete(session: Session, edition_id: int) -> None:
    session.exec(
        sa.update(Edition)
        .where(col(Edition.id) == edition_id)
        .values(ledger_complete=True)
        .execution_options(synchronize_session=False)
    )


def week_comparisons(
    session: Session, settings: Settings, week: IsoWeek
) -> tuple[Edition | None, list[ComparisonDoc]]:
    """What a send of ``week`` carries: the edition and its frozen snapshots once it exists,
    else (None and) the new comparisons that opening it would freeze; ``NotFoundError`` says
    why there are none. The preview and a test copy show exactly this."""
    edition = find_edition(session, settings.newsletter, week)
    if edition is not None and edition.id is not None:
        return edition, edition_documents(session, edition.id)
    selected = [doc for _id, doc in new_comparisons(session, week, settings)]
    if not selected:
        start, end = week.bounds(settings.zone)
        published = len(published_in(session, start, end))
        if not published:
            raise NotFoundError(f"no comparisons published in {week} ({settings.timezone})")
        raise NotFoundError(
            f"no new comparisons in {week}: all {published} are carried by earlier editions"
        )
    return None, selected
