"""The edition table read with SQLAlchemy Core, without the ORM: the statuses an edition can
have, a table clause naming the columns such readers select, and the lookups that name an
edition (the latest of a newsletter, one by id).

``digest status`` reads editions through this module alone, so that it starts without loading
the ORM and the models; ``digest.editions.service`` asks it for the latest edition too, so the
rule lives once. The table itself is the ``Edition`` model (``digest.editions.models``); a test
holds the two together.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from digest.db import UTCDateTime
from digest.errors import NotFoundError


class EditionStatus(enum.StrEnum):
    SENDING = "sending"
    SENT = "sent"
    CANCELLED = "cancelled"


EDITION_COLUMNS = sa.table(
    "edition",
    sa.column("id", sa.Integer),
    sa.column("newsletter", sa.String(64)),
    sa.column("week", sa.String(8)),
    sa.column("status", sa.String(16)),
    sa.column("subject", sa.String(500)),
    sa.column("ledger_complete", sa.Boolean),
    sa.column("created_at", UTCDateTime),
    sa.column("completed_at", UTCDateTime),
)


@dataclass(frozen=True, slots=True)
class EditionRow:
    """What a report says of an edition (the columns of ``EDITION_COLUMNS`` but the
    newsletter)."""

    id: int
    week: str
    status: str
    subject: str
    ledger_complete: bool
    created_at: dt.datetime
    completed_at: dt.datetime | None


def no_such_edition(edition_id: int) -> NotFoundError:
    return NotFoundError(f"no edition with id {edition_id}")


def latest_edition_id(connection: Connection, newsletter: str) -> int | None:
    """The edition of the most recent week (the newest row when weeks tie)."""
    table = EDITION_COLUMNS
    found = connection.execute(
        sa.select(table.c.id)
        .where(table.c.newsletter == newsletter)
        .order_by(table.c.week.desc(), table.c.id.desc())
        .limit(1)
    ).scalar()
    return None if found is None else int(found)


def edition_row(connection: Connection, edition_id: int) -> EditionRow:
    """The edition with this id, or ``NotFoundError``."""
    table = EDITION_COLUMNS
    found = connection.execute(
        sa.select(
            table.c.id,
            table.c.week,
            table.c.status,
            table.c.subject,
            table.c.ledger_complete,
            table.c.created_at,
            table.c.completed_at,
        ).where(table.c.id == edition_id)
    ).one_or_none()
    if found is None:
        raise no_such_edition(edition_id)
    return EditionRow(
        id=int(found.id),
        week=str(found.week),
        status=str(found.status),
        subject=str(found.subject),
        ledger_complete=bool(found.ledger_complete),
        created_at=found.created_at,
        completed_at=found.completed_at,
    )
