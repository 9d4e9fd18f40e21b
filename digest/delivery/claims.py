"""Claims: how a worker takes a batch of ledger rows for itself, and every later change of a
claimed row that must be fenced by who holds it.

A claim is one short write transaction. On SQLite it starts with ``BEGIN IMMEDIATE``, so two
claimers serialize on the database lock; on PostgreSQL the pending rows are selected
``FOR UPDATE SKIP LOCKED``, so concurrent workers take disjoint batches without waiting on each
other. In that same transaction the claimer

1. returns expired leases: a row whose attempt never started goes back to ``pending``; a row
   whose attempt had started (``attempt_started_at`` set) may already be at the provider, so it
   becomes ``unknown`` — or ``pending`` when the backend deduplicates on the idempotency key,
   which makes a resend harmless;
2. takes up to ``limit`` pending rows of one sending edition whose ``not_before`` has passed;
3. re-checks each recipient (status, pause, suppression, deleted row) and marks those who may
   no longer be mailed ``skipped`` with the reason in ``last_error``.

Every later write of a claimed row (``mark_started``, ``release``, recording the outcome) names
the worker in its WHERE clause: a worker whose lease expired and whose rows were taken over
changes nothing it no longer owns.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from digest.db import immediate_session, utcnow
from digest.delivery.models import Delivery, DeliveryState
from digest.editions.models import Edition, EditionStatus
from subscribers.lifecycle import mailable_subscribers_query
from subscribers.models import Status, Subscriber, Suppression

DELIVERY = cast(sa.Table, sa.inspect(Delivery).local_table)
EDITION = cast(sa.Table, sa.inspect(Edition).local_table)
SUBSCRIBER = cast(sa.Table, sa.inspect(Subscriber).local_table)
SUPPRESSION = cast(sa.Table, sa.inspect(Suppression).local_table)

CANCELLED = "cancelled"
_CLAIM_NUMBERS = itertools.count(1)
LEASE_LOST_IN_FLIGHT = "lease expired while the provider had the request; it may have been sent"


@dataclass(frozen=True, slots=True)
class ClaimedRow:
    """A ledger row this worker now holds, with what it takes to build the message."""

    id: int
    edition_id: int
    subscriber_id: int
    email: str
    name: str
    variant: str
    message_id: str
    attempts: int


@dataclass(frozen=True, slots=True)
class Claim:
    """The outcome of one claim: the rows to send (all of one edition), how many were skipped
    at the re-check, and ``holder``, the name the rows are held under (the worker's identity
    and a number unique to this claim): later fenced writes of these rows pass it."""

    edition_id: int | None
    rows: list[ClaimedRow]
    skipped: int = 0
    expired: int = 0
    holder: str = ""

    def __bool__(self) -> bool:
        return bool(self.rows) or self.skipped > 0


def worker_identity() -> str:
    """A name unique to this process: host, pid and a random suffix (pids get reused)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(4)}"


def sending_edition_ids(session: Session) -> list[int]:
    """Editions that are sending, oldest first."""
    rows = session.connection().execute(
        sa.select(EDITION.c.id)
        .where(EDITION.c.status == str(EditionStatus.SENDING))
        .order_by(EDITION.c.id)
    )
    return [int(row[0]) for row in rows]


def expire_leases(
    session: Session,
    *,
    now: dt.datetime,
    idempotent: bool,
    edition_ids: Sequence[int] | None = None,
) -> int:
    """Return the rows of expired leases (see the module docstring); how many were changed."""
    expired = sa.and_(
        DELIVERY.c.state == str(DeliveryState.CLAIMED), DELIVERY.c.lease_expires_at < now
    )
    if edition_ids is not None:
        expired = sa.and_(expired, DELIVERY.c.edition_id.in_(list(edition_ids)))
    back_to_pending = {
        "state": str(DeliveryState.PENDING),
        "worker": None,
        "lease_expires_at": None,
        "attempt_started_at": None,
        "updated_at": now,
    }
    changed = (
        session.connection()
        .execute(
            sa.update(DELIVERY)
            .where(expired, DELIVERY.c.attempt_started_at.is_(None))
            .values(**back_to_pending)
        )
        .rowcount
    )
    started = DELIVERY.c.attempt_started_at.is_not(None)
    if idempotent:
        changed += (
            session.connection()
            .execute(sa.update(DELIVERY).where(expired, started).values(**back_to_pending))
            .rowcount
        )
    else:
        changed += (
            session.connection()
            .execute(
                sa.update(DELIVERY)
                .where(expired, started)
                .values(
                    state=str(DeliveryState.UNKNOWN),
                    lease_expires_at=None,
                    attempt_started_at=None,
                    last_error=LEASE_LOST_IN_FLIGHT,
                    updated_at=now,
                )
            )
            .rowcount
        )
    return int(changed)


def claim_batch(
    engine: Engine,
    *,
    worker: str,
    limit: int,
    lease_seconds: float,
    edition_ids: Sequence[int] | None = None,
    idempotent: bool = False,
    now: dt.datetime | None = None,
) -> Claim:
    """Claim up to ``limit`` pending rows of the first sending edition (of ``edition_ids``,
    if given) that has any; an empty ``Claim`` when there is nothing to take right now."""
    with immediate_session(engine) as session:
        return claim_in(
            session,
            worker=worker,
            limit=limit,
            lease_seconds=lease_seconds,
            edition_ids=edition_ids,
            idempotent=idempotent,
            now=now,
        )


def claim_in(
    session: Session,
    *,
    worker: str,
    limit: int,
    lease_seconds: float,
    edition_ids: Sequence[int] | None = None,
    idempotent: bool = False,
    now: dt.datetime | None = None,
) -> Claim:
    """``claim_batch`` inside the caller's write transaction (``immediate_session``)."""
    now = now or utcnow()
    holder = f"{worker}#{next(_CLAIM_NUMBERS)}"
    sending = sending_edition_ids(session)
    if edition_ids is not None:
        wanted = set(edition_ids)
        sending = [edition_id for edition_id in sending if edition_id in wanted]
    if not sending:
        return Claim(None, [])
    expired = expire_leases(session, now=now, idempotent=idempotent, edition_ids=sending)
    for edition_id in sending:
        taken = _take(session, edition_id, holder, limit, now=now, lease_seconds=lease_seconds)
        if taken:
            rows = _mailable_rows(session, edition_id, holder)
            skipped = (
                _skip_the_rest(session, edition_id, holder, rows, now) if len(rows) < taken else 0
            )
            return Claim(edition_id, rows, skipped, expired, holder)
    return Claim(None, [], 0, expired, holder)


def _held_by(edition_id: int, worker: str) -> sa.ColumnElement[bool]:
    return sa.and_(
        DELIVERY.c.edition_id == edition_id,
        DELIVERY.c.state == str(DeliveryState.CLAIMED),
        DELIVERY.c.worker == worker,
    )


def _take(
    session: Session,
    edition_id: int,
    worker: str,
    limit: int,
    *,
    now: dt.datetime,
    lease_seconds: float,
) -> int:
    """One UPDATE of the first ``limit`` due pending rows; how many were taken."""
    candidates = (
        sa.select(DELIVERY.c.id)
        .where(
            DELIVERY.c.edition_id == edition_id,
            DELIVERY.c.state == str(DeliveryState.PENDING),
            sa.or_(DELIVERY.c.not_before.is_(None), DELIVERY.c.not_before <= now),
        )
        .order_by(DELIVERY.c.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    result = session.connection().execute(
        sa.update(DELIVERY)
        .where(DELIVERY.c.id.in_(candidates.scalar_subquery()))
        .values(
            state=str(DeliveryState.CLAIMED),
            worker=worker,
            lease_expires_at=now + dt.timedelta(seconds=lease_seconds),
            updated_at=now,
        )
    )
    return int(result.rowcount)


def _mailable_rows(session: Session, edition_id: int, worker: str) -> list[ClaimedRow]:
    """The rows just taken whose subscriber may still be mailed, by the subscribers package's
    own rule (``mailable_subscribers_query``), with the subscriber's current address and name."""
    mailable = mailable_subscribers_query().order_by(None).subquery()
    rows = (
        session.connection()
        .execute(
            sa.select(
                DELIVERY.c.id,
                DELIVERY.c.subscriber_id,
                DELIVERY.c.email,
                DELIVERY.c.variant,
                DELIVERY.c.message_id,
                DELIVERY.c.attempts,
                mailable.c.email,
                mailable.c.name,
            )
            .join(mailable, mailable.c.id == DELIVERY.c.subscriber_id)
            .where(_held_by(edition_id, worker))
            .order_by(DELIVERY.c.id)
        )
        .all()
    )
    claimed = [
        ClaimedRow(row_id, edition_id, subscriber_id, email, name, variant, message_id, attempts)
        for row_id, subscriber_id, _ledger, variant, message_id, attempts, email, name in rows
    ]
    moved = [{"b_id": row[0], "b_email": row[6]} for row in rows if row[6] != row[2]]
    if moved:
        # The subscriber changed address since the ledger was built: mail the current one.
        session.connection().execute(
            sa.update(DELIVERY)
            .where(DELIVERY.c.id == sa.bindparam("b_id"))
            .values(email=sa.bindparam("b_email")),
            moved,
        )
    return claimed


def _skip_the_rest(
    session: Session, edition_id: int, worker: str, keep: list[ClaimedRow], now: dt.datetime
) -> int:
    """Mark skipped, with the reason, the rows just taken that may no longer be mailed."""
    kept = {row.id for row in keep}
    rows = (
        session.connection()
        .execute(
            sa.select(
                DELIVERY.c.id,
                SUBSCRIBER.c.id.label("subscriber"),
                SUBSCRIBER.c.status,
                SUBSCRIBER.c.paused,
                SUPPRESSION.c.email_key.label("suppressed"),
            )
            .select_from(
                DELIVERY.outerjoin(
                    SUBSCRIBER, SUBSCRIBER.c.id == DELIVERY.c.subscriber_id
                ).outerjoin(SUPPRESSION, SUPPRESSION.c.email_key == SUBSCRIBER.c.email_key)
            )
            .where(_held_by(edition_id, worker))
        )
        .all()
    )
    skipped = [
        {"b_id": row.id, "b_reason": _skip_reason(row)} for row in rows if row.id not in kept
    ]
    if skipped:
        session.connection().execute(
            sa.update(DELIVERY)
            .where(DELIVERY.c.id == sa.bindparam("b_id"))
            .values(
                state=str(DeliveryState.SKIPPED),
                last_error=sa.bindparam("b_reason"),
                worker=None,
                lease_expires_at=None,
                updated_at=now,
            ),
            skipped,
        )
    return len(skipped)


def _skip_reason(row: Any) -> str:
    if row.subscriber is None:
        return "subscriber removed"
    if row.status != str(Status.ACTIVE):
        return str(row.status)
    if row.suppressed is not None:
        return "suppressed"
    if row.paused:
        return "paused"
    return "not mailable"


def mark_started(
    session: Session,
    ids: Sequence[int],
    *,
    worker: str,
    lease_seconds: float,
    now: dt.datetime | None = None,
) -> dict[int, int]:
    """Record that an attempt of these rows starts now (commit before the provider call).

    Only rows still claimed by ``worker`` in a sending edition are marked; returns their new
    attempt counts by id. A row left out was taken over (lease expired) or its edition was
    cancelled: it must not be sent.
    """
    now = now or utcnow()
    result = session.connection().execute(
        sa.update(DELIVERY)
        .where(
            DELIVERY.c.id.in_(list(ids)),
            DELIVERY.c.state == str(DeliveryState.CLAIMED),
            DELIVERY.c.worker == worker,
            sa.exists().where(
                EDITION.c.id == DELIVERY.c.edition_id,
                EDITION.c.status == str(EditionStatus.SENDING),
            ),
        )
        .values(
            attempts=DELIVERY.c.attempts + 1,
            attempt_started_at=now,
            lease_expires_at=now + dt.timedelta(seconds=lease_seconds),
            updated_at=now,
        )
        .returning(DELIVERY.c.id, DELIVERY.c.attempts)
    )
    return {int(row[0]): int(row[1]) for row in result}


def release(
    session: Session, ids: Sequence[int], *, worker: str, now: dt.datetime | None = None
) -> int:
    """Give claimed rows back (``pending``) without sending them: a stop, or a provider that
    refused the whole request. An attempt that was marked but refused is not counted."""
    if not ids:
        return 0
    now = now or utcnow()
    result = session.connection().execute(
        sa.update(DELIVERY)
        .where(
            DELIVERY.c.id.in_(list(ids)),
            DELIVERY.c.state == str(DeliveryState.CLAIMED),
            DELIVERY.c.worker == worker,
        )
        .values(
            state=str(DeliveryState.PENDING),
            worker=None,
            lease_expires_at=None,
            attempts=sa.case(
                (DELIVERY.c.attempt_started_at.is_not(None), DELIVERY.c.attempts - 1),
                else_=DELIVERY.c.attempts,
            ),
            attempt_started_at=None,
            updated_at=now,
        )
    )
    # Rows given back to an edition cancelled meanwhile are skipped, as cancel did to the rest.
    session.connection().execute(
        sa.update(DELIVERY)
        .where(
            DELIVERY.c.id.in_(list(ids)),
            DELIVERY.c.state == str(DeliveryState.PENDING),
            sa.exists().where(
                EDITION.c.id == DELIVERY.c.edition_id,
                EDITION.c.status == str(EditionStatus.CANCELLED),
            ),
        )
        .values(state=str(DeliveryState.SKIPPED), last_error=CANCELLED, updated_at=now)
    )
    return int(result.rowcount)
