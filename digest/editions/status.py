"""The edition's state machine, and the one function that changes an edition's status.

Stored statuses (``Edition.status``)::

                 resend (failed rows back to pending)
              ┌──────────────────────────────────────┐
              v                                      │
    (created) sending ──every row done──> sent ──────┘
              │
              └──cancel──> cancelled          (final)

``held`` and ``paused`` are not stored: they are what the guards
(``digest.delivery.guards``) say of a ``sending`` edition right now — outside the send window,
or the pause switch on — and every claim asks them. ``digest status`` shows them.

``set_status`` is the only writer of ``Edition.status`` after creation: it refuses a change the
diagram does not draw, and it is conditional (``WHERE status = <from>``), so two processes
finishing or cancelling the same edition at once cannot both win.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import cast

import sqlalchemy as sa
from sqlmodel import Session

from digest.db import utcnow
from digest.editions.models import Edition, EditionStatus
from digest.errors import ConflictError

EDITION = cast(sa.Table, sa.inspect(Edition).local_table)

ALLOWED: dict[EditionStatus, frozenset[EditionStatus]] = {
    EditionStatus.SENDING: frozenset({EditionStatus.SENT, EditionStatus.CANCELLED}),
    EditionStatus.SENT: frozenset({EditionStatus.SENDING}),
    EditionStatus.CANCELLED: frozenset(),
}


def set_status(
    session: Session,
    edition_ids: Sequence[int],
    to: EditionStatus,
    *,
    from_: EditionStatus,
    now: dt.datetime | None = None,
) -> list[int]:
    """Move the editions that are ``from_`` to ``to``, in the caller's transaction; the ids
    that changed. ``ConflictError`` for a change the state machine does not allow."""
    if to not in ALLOWED[from_]:
        raise ConflictError(f"an edition cannot go from {from_} to {to}")
    if not edition_ids:
        return []
    now = now or utcnow()
    stamps: dict[str, object] = {"status": str(to)}
    if to is EditionStatus.SENT:
        stamps["completed_at"] = now
    elif to is EditionStatus.CANCELLED:
        stamps["cancelled_at"] = now
    elif to is EditionStatus.SENDING:
        stamps["completed_at"] = None
    result = session.connection().execute(
        sa.update(EDITION)
        .where(EDITION.c.id.in_(list(edition_ids)), EDITION.c.status == str(from_))
        .values(**stamps)
        .returning(EDITION.c.id)
    )
    changed = [int(row[0]) for row in result]
    session.expire_all()
    return changed
