"""Every change of a ledger row, in one module: claim, in flight, sent, failed, unknown, skipped,
deferred, release, resend, cancel, and what provider webhooks record. Nothing else in the code
writes ``delivery`` rows after they are built (``digest.delivery.build`` inserts them; a test
greps for UPDATEs elsewhere).

States of a row (``DeliveryState``) and the allowed transitions::

                 ┌──────────── release (stop; lease of a dead or silent holder, not started) ─┐
                 v                                                                            │
    pending ──claim──> claimed ──mark_started──> in flight ──record──> sent | failed          │
       ^  │   (guards: window,      (lease)      (claimed with         (failed: the provider  │
       │  │    pause; edition                     attempt_started_at)   refused the recipient,│
       │  │    sending; mailable)   │                  │                or the retry window   │
       │  │                         │                  │                ran out)              │
       │  └─skip (not mailable,     │                  ├─retryable error──> deferred ──due──> claim
       │          cancel)──> skipped│                  │   (not_before, backoff + jitter,     │
       │                            │                  │    retry_until = first + window)     │
       │                            │                  └─ambiguous / lost lease──> unknown    │
       │                            └────────────── release ─────────────────────────────────┘
       └── resend (failed, and unknown when asked) ── cancel: pending | deferred | claimed
                                                       not started ──> skipped

``in flight`` is a claimed row with ``attempt_started_at`` set, committed before the provider
call: if its holder dies, the row becomes ``unknown`` (the provider may have it), or ``pending``
again on a backend that deduplicates on the idempotency key. A lease ends when it expires, or
at once when its holder is known dead: a holder on this host whose process is gone (its PID no
longer exists, or belongs to a process started at another time). Holders on other hosts are
trusted until their lease expires.

Claims are one short write transaction: ``BEGIN IMMEDIATE`` on SQLite (claimers serialize on
the database lock), ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (concurrent workers take disjoint
batches). The claim asks the guards (``digest.delivery.guards``) first: while paused or outside
the send window it takes nothing and says why. Every later write of a claimed row names its
holder in the WHERE clause: a worker whose rows were taken over changes nothing it no longer
owns. ``last_error`` says why a row failed, was skipped (``unsubscribed``, ``suppressed``,
``cancelled``, ...), is deferred or unknown.

A row is claimed only once its ``not_before`` has passed: a deferred row's retry time, or in
local-time delivery its subscriber's send time (``digest.delivery.local_time``; the row's
``zone`` says which timezone it was computed from). A subscriber who moves is followed: see
"local-time delivery" below. Provider events (``record_provider_status``) only
ever change ``provider_status``, never the state.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import logging
import os
import secrets
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, cast

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from digest.db import aware, immediate_session, session_scope, utcnow
from digest.delivery.bulk import db_timestamp, driver_sql, executemany
from digest.delivery.guards import Guards, Hold
from digest.delivery.local_time import LocalSchedule, state_key
from digest.delivery.models import Delivery, DeliveryState
from digest.delivery.status import state_counts
from digest.editions.models import Edition, EditionStatus
from digest.editions.status import set_status
from digest.errors import ConflictError
from digest.state import read_state
from subscribers.lifecycle import mailable_subscribers_query
from subscribers.models import Status, Subscriber, Suppression

log = logging.getLogger(__name__)

DELIVERY = cast(sa.Table, sa.inspect(Delivery).local_table)
EDITION = cast(sa.Table, sa.inspect(Edition).local_table)
SUBSCRIBER = cast(sa.Table, sa.inspect(Subscriber).local_table)
SUPPRESSION = cast(sa.Table, sa.inspect(Suppression).local_table)

CANCELLED = "cancelled"
_CLAIM_NUMBERS = itertools.count(1)
LEASE_LOST_IN_FLIGHT = "lease expired while the provider had the request; it may have been sent"
OPEN_STATES = (
    str(DeliveryState.PENDING),
    str(DeliveryState.CLAIMED),
    str(DeliveryState.DEFERRED),
)
CLAIMABLE = (str(DeliveryState.PENDING), str(DeliveryState.DEFERRED))


class ClaimedRow(NamedTuple):
    """A ledger row this worker now holds, with what it takes to build the message (a named
    tuple: a claim makes hundreds of them at a time)."""

    id: int
    edition_id: int
    subscriber_id: int
    email: str
    name: str
    variant: str
    message_id: str
    attempts: int
    first_name: str = ""  # the greeting's name when the subscriber gave one
    vote_links: bool = True  # the subscriber's choice of "Would you ship it?" links
    track_clicks: bool = True  # the subscriber's choice of tracked links


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
    held: Hold | None = None

    def __bool__(self) -> bool:
        return bool(self.rows) or self.skipped > 0


def worker_identity() -> str:
    """A name unique to this process: ``host:pid:start:random`` — the host, the PID and the
    process's start time (so a reused PID is told apart), and a random suffix."""
    start = process_start(os.getpid()) or "-"
    return f"{_HOST}:{os.getpid()}:{start}:{secrets.token_hex(4)}"


_HOST = socket.gethostname()[:60].replace(":", "_")


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from ``/proc``); None when there
    is no such process or no ``/proc`` to ask."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # Field 22 (starttime); the command name in parentheses may itself hold spaces.
    fields = data[data.rindex(b")") + 2 :].split()
    return fields[19].decode() if len(fields) > 19 else None


@functools.cache
def _proc_available() -> bool:
    return process_start(os.getpid()) is not None


def holder_is_dead(holder: str) -> bool:
    """True only when ``holder`` (a ``worker_identity``, with or without ``#n``) ran on this
    host and its process is gone: its PID is free or belongs to a process started at another
    time. Holders of other hosts, or of an unknown form, are never declared dead."""
    host, _, rest = holder.partition("#")[0].partition(":")
    pid_text, _, rest = rest.partition(":")
    start, _, _suffix = rest.partition(":")
    if host != _HOST or not pid_text.isdigit() or not start or not _proc_available():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return start != process_start(pid)
    return process_start(pid) != start


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
    """Return the rows of expired leases, and of holders known dead (see the module
    docstring); how many were changed."""
    claimed = DELIVERY.c.state == str(DeliveryState.CLAIMED)
    if edition_ids is not None:
        claimed = sa.and_(claimed, DELIVERY.c.edition_id.in_(list(edition_ids)))
    # One look at the holders first: most claims find every lease alive and change nothing.
    holders = session.connection().execute(
        sa.select(DELIVERY.c.worker, sa.func.min(DELIVERY.c.lease_expires_at))
        .where(claimed)
        .group_by(DELIVERY.c.worker)
    )
    dead: list[str] = []
    any_ended = False
    for holder, earliest in holders:
        if holder and holder_is_dead(str(holder)):
            dead.append(str(holder))
        any_ended = any_ended or (earliest is not None and aware(earliest) < now)
    if not dead and not any_ended:
        return 0
    ended: sa.ColumnElement[bool] = DELIVERY.c.lease_expires_at < now
    if dead:
        dead.sort()
        log.warning("reclaiming the rows of dead holders on this host: %s", ", ".join(dead))
        ended = sa.or_(ended, DELIVERY.c.worker.in_(dead))
    expired = sa.and_(claimed, ended)
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
    guards: Guards | None = None,
) -> Claim:
    """Claim up to ``limit`` due rows of the first sending edition (of ``edition_ids``, if
    given) that has any; an empty ``Claim`` when there is nothing to take right now, with
    ``held`` set when the guards forbid sending."""
    with immediate_session(engine) as session:
        return claim_in(
            session,
            worker=worker,
            limit=limit,
            lease_seconds=lease_seconds,
            edition_ids=edition_ids,
            idempotent=idempotent,
            now=now,
            guards=guards,
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
    guards: Guards | None = None,
) -> Claim:
    """``claim_batch`` inside the caller's write transaction (``immediate_session``)."""
    now = now or utcnow()
    if guards is not None:
        held = guards.check(session, now)
        if held is not None:
            return Claim(None, [], held=held)
    holder = f"{worker}#{next(_CLAIM_NUMBERS)}"
    sending = sending_edition_ids(session)
    if edition_ids is not None:
        wanted = set(edition_ids)
        sending = [edition_id for edition_id in sending if edition_id in wanted]
    if not sending:
        return Claim(None, [])
    expired = expire_leases(session, now=now, idempotent=idempotent, edition_ids=sending)
    for edition_id in sending:
        schedule = edition_schedule(session, edition_id)
        if schedule is not None and _follow_now(session, edition_id, now):
            follow_zones(session, edition_id, schedule, now=now)
        while taken := _take(
            session, edition_id, holder, limit, now=now, lease_seconds=lease_seconds
        ):
            later = (
                0 if schedule is None else _not_due_yet(session, edition_id, holder, schedule, now)
            )
            rows = _mailable_rows(session, edition_id, holder)
            if len(rows) + later < taken:
                skipped = _skip_the_rest(session, edition_id, holder, rows, now)
            else:
                skipped = 0
            if rows or skipped:
                return Claim(edition_id, rows, skipped, expired, holder)
    return Claim(None, [], 0, expired, holder)


# -- local-time delivery: rows follow their subscriber's timezone ------------------------------
#
# A row is due at its subscriber's send time in the zone it was computed from (``zone``). When
# the subscriber moves, two things keep "nobody early, nobody twice, nobody skipped":
# - every claim checks the rows it just took (``_not_due_yet``): a row whose subscriber's
#   current zone makes it due later goes back to pending with the new time, untouched
#   otherwise (exact, and free: a join over the batch only);
# - at most every ``FOLLOW_EVERY`` per edition and process, a claim reschedules every pending
#   row whose subscriber moved (``follow_zones``), so one who moved east is sent at the new,
#   earlier time (at most that much late) rather than at the old one. A time already past is
#   due at once.

FOLLOW_EVERY = dt.timedelta(seconds=30)
_LAST_FOLLOW: dict[tuple[str, int], dt.datetime] = {}  # (database, edition) -> last pass


def edition_schedule(session: Session, edition_id: int) -> LocalSchedule | None:
    """The local-time rule kept with the edition; None when its rows are due at once."""
    stored = read_state(session, state_key(edition_id))
    return None if stored is None else LocalSchedule.from_dict(stored)


def _follow_now(session: Session, edition_id: int, now: dt.datetime) -> bool:
    key = (str(session.get_bind().engine.url), edition_id)
    last = _LAST_FOLLOW.get(key)
    if last is not None and last <= now < last + FOLLOW_EVERY:
        return False
    _LAST_FOLLOW[key] = now
    return True


def _not_due_yet(
    session: Session, edition_id: int, worker: str, schedule: LocalSchedule, now: dt.datetime
) -> int:
    """Give back, rescheduled, the rows just taken whose subscriber moved to a zone where
    their send time is still to come; how many."""
    moved = (
        session.connection()
        .execute(
            sa.select(DELIVERY.c.id, SUBSCRIBER.c.timezone)
            .join(SUBSCRIBER, SUBSCRIBER.c.id == DELIVERY.c.subscriber_id)
            .where(
                _held_by(edition_id, worker),
                DELIVERY.c.zone.is_not(None),
                DELIVERY.c.zone != SUBSCRIBER.c.timezone,
            )
        )
        .all()
    )
    later = [
        {"b_id": row_id, "b_due": schedule.due(zone), "b_zone": zone}
        for row_id, zone in moved
        if schedule.due(zone) > now
    ]
    if later:
        session.connection().execute(
            sa.update(DELIVERY)
            .where(DELIVERY.c.id == sa.bindparam("b_id"))
            .values(
                state=str(DeliveryState.PENDING),
                worker=None,
                lease_expires_at=None,
                not_before=sa.bindparam("b_due"),
                zone=sa.bindparam("b_zone"),
                updated_at=now,
            ),
            later,
        )
    return len(later)


def follow_zones(
    session: Session, edition_id: int, schedule: LocalSchedule, *, now: dt.datetime
) -> int:
    """Reschedule the pending rows of ``edition_id`` whose subscriber's timezone changed since
    their ``not_before`` was computed, by the edition's own rule; how many rows moved."""
    pending = DELIVERY.c.state == str(DeliveryState.PENDING)
    candidates = (
        sa.select(DELIVERY.c.id, SUBSCRIBER.c.timezone)
        .join(SUBSCRIBER, SUBSCRIBER.c.id == DELIVERY.c.subscriber_id)
        .where(
            DELIVERY.c.edition_id == edition_id,
            pending,
            DELIVERY.c.zone.is_not(None),
            DELIVERY.c.zone != SUBSCRIBER.c.timezone,
        )
    )
    if session.get_bind().dialect.name == "postgresql":
        # Rows another claim holds are left to the next pass: two passes never wait on
        # each other's rows (no deadlock), and a row being claimed is that claim's to check.
        candidates = candidates.with_for_update(skip_locked=True, of=DELIVERY)
    moved = session.connection().execute(candidates).all()
    if moved:
        session.connection().execute(
            sa.update(DELIVERY)
            .where(DELIVERY.c.id == sa.bindparam("b_id"), pending)
            .values(
                not_before=sa.bindparam("b_due"),
                zone=sa.bindparam("b_zone"),
                updated_at=now,
            ),
            [
                {"b_id": row_id, "b_due": schedule.due(zone), "b_zone": zone}
                for row_id, zone in moved
            ],
        )
        log.info("rescheduled rows of subscribers whose timezone changed: %d", len(moved))
    return len(moved)


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
    result = session.connection().execute(
        _take_statement(session.get_bind().dialect.name),
        {
            "b_edition": edition_id,
            "b_worker": worker,
            "b_limit": limit,
            "b_now": now,
            "b_lease": now + dt.timedelta(seconds=lease_seconds),
        },
    )
    return int(result.rowcount)


# The statements of every claim are built once per dialect (building one costs more than the
# database's own work for a batch), with bound parameters for what changes.


@functools.cache
def _take_statement(dialect: str) -> sa.Update:
    now = sa.bindparam("b_now", type_=DELIVERY.c.updated_at.type)
    candidates = (
        sa.select(DELIVERY.c.id)
        .where(
            DELIVERY.c.edition_id == sa.bindparam("b_edition"),
            DELIVERY.c.state.in_(CLAIMABLE),
            sa.or_(DELIVERY.c.not_before.is_(None), DELIVERY.c.not_before <= now),
        )
        .order_by(DELIVERY.c.id)
        .limit(sa.bindparam("b_limit"))
    )
    if dialect == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    return (
        sa.update(DELIVERY)
        .where(DELIVERY.c.id.in_(candidates.scalar_subquery()))
        .values(
            state=str(DeliveryState.CLAIMED),
            worker=sa.bindparam("b_worker"),
            lease_expires_at=sa.bindparam("b_lease", type_=DELIVERY.c.lease_expires_at.type),
            updated_at=now,
        )
    )


@functools.cache
def _mailable_statement() -> sa.Select[Any]:
    """The rows a holder took whose subscriber may still be mailed, by the subscribers
    package's own rule (``mailable_subscribers_query``), with the current address and name."""
    mailable = mailable_subscribers_query().order_by(None).subquery()
    return (
        sa.select(
            DELIVERY.c.id,
            DELIVERY.c.subscriber_id,
            DELIVERY.c.email,
            DELIVERY.c.variant,
            DELIVERY.c.message_id,
            DELIVERY.c.attempts,
            mailable.c.email,
            mailable.c.name,
            mailable.c.first_name,
            mailable.c.vote_links,
            mailable.c.track_clicks,
        )
        .join(mailable, mailable.c.id == DELIVERY.c.subscriber_id)
        .where(
            DELIVERY.c.edition_id == sa.bindparam("b_edition"),
            DELIVERY.c.state == str(DeliveryState.CLAIMED),
            DELIVERY.c.worker == sa.bindparam("b_worker"),
        )
        .order_by(DELIVERY.c.id)
    )


def _mailable_rows(session: Session, edition_id: int, worker: str) -> list[ClaimedRow]:
    """The rows just taken whose subscriber may still be mailed (``_mailable_statement``)."""
    rows = (
        session.connection()
        .execute(_mailable_statement(), {"b_edition": edition_id, "b_worker": worker})
        .all()
    )
    claimed = [
        ClaimedRow(
            row_id,
            edition_id,
            subscriber_id,
            email,
            name,
            variant,
            message_id,
            attempts,
            first,
            votes,
            track,
        )
        for (
            row_id,
            subscriber_id,
            _ledger,
            variant,
            message_id,
            attempts,
            email,
            name,
            first,
            votes,
            track,
        ) in rows
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
    if not ids:
        return {}
    now = now or utcnow()
    connection = session.connection()
    stamp = db_timestamp(connection, DELIVERY.c.updated_at, now)
    lease = db_timestamp(
        connection, DELIVERY.c.lease_expires_at, now + dt.timedelta(seconds=lease_seconds)
    )
    result = connection.exec_driver_sql(
        driver_sql(connection, MARK_STARTED.format(ids=",".join(str(int(i)) for i in ids))),
        (stamp, lease, stamp, worker),
    )
    return {int(row[0]): int(row[1]) for row in result}


# The ids are integers written into the statement: one statement for a whole call, without
# binding each id as a parameter of its own.
MARK_STARTED = (
    "UPDATE delivery SET attempts = attempts + 1, attempt_started_at = ?,"
    " lease_expires_at = ?, updated_at = ?"
    " WHERE id IN ({ids}) AND state = 'claimed' AND worker = ? AND EXISTS"
    " (SELECT 1 FROM edition WHERE edition.id = delivery.edition_id"
    " AND edition.status = 'sending') RETURNING id, attempts"
)


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
    _skip_if_cancelled(session, ids, now)
    return int(result.rowcount)


# -- outcomes --------------------------------------------------------------------------------

# An outcome is recorded only on rows this holder still holds (or held when its lease expired):
# a row taken over by another worker is theirs to record. Written through the DB-API
# (``digest.delivery.bulk``): this runs once per call, for every recipient.
# A provider event (delivered, bounced, ...) may have been recorded before this: it is kept.
RECORD_SENT = (
    "UPDATE delivery SET provider_message_id = ?, state = 'sent', provider_status = CASE WHEN"
    " provider_status IS NULL OR provider_status IN ('accepted', 'rejected') THEN 'accepted'"
    " ELSE provider_status END, sent_at = ?, updated_at = ?, last_error = NULL,"
    " attempt_started_at = NULL, lease_expires_at = NULL, not_before = NULL,"
    " retry_until = NULL WHERE id = ? AND worker = ?"
)
RECORD_FAILED = (
    "UPDATE delivery SET last_error = ?, state = 'failed', provider_status = 'rejected',"
    " updated_at = ?, attempt_started_at = NULL, lease_expires_at = NULL"
    " WHERE id = ? AND worker = ?"
)


def record_results(
    session: Session,
    *,
    sent: Sequence[tuple[str | None, int]],
    rejected: Sequence[tuple[str, int]],
    holder: str,
    now: dt.datetime | None = None,
) -> None:
    """In flight -> ``sent`` (``(provider message id, row id)``) or ``failed`` (``(error, row
    id)``: the provider refused that recipient)."""
    connection = session.connection()
    stamp = db_timestamp(connection, DELIVERY.c.updated_at, now or utcnow())
    executemany(
        connection,
        RECORD_SENT,
        [(provider_id, stamp, stamp, row_id, holder) for provider_id, row_id in sent],
    )
    executemany(
        connection,
        RECORD_FAILED,
        [(error[:2000], stamp, row_id, holder) for error, row_id in rejected],
    )


def settle(
    session: Session,
    ids: Sequence[int],
    state: DeliveryState,
    error: str,
    *,
    holder: str,
    now: dt.datetime | None = None,
) -> None:
    """Held rows -> ``unknown`` (the provider may have them) or ``failed``, with the reason."""
    if state not in (DeliveryState.UNKNOWN, DeliveryState.FAILED):
        raise ValueError(f"settle cannot make a row {state}")
    session.connection().execute(
        sa.update(DELIVERY)
        .where(DELIVERY.c.id.in_(list(ids)), DELIVERY.c.worker == holder)
        .values(
            state=str(state),
            last_error=error[:2000],
            attempt_started_at=None,
            lease_expires_at=None,
            updated_at=now or utcnow(),
        )
    )


def defer(
    session: Session,
    ids: Sequence[int],
    *,
    holder: str,
    until: dt.datetime,
    error: str,
    retry_window: dt.timedelta,
    uncount: bool = False,
    charge: bool = True,
    now: dt.datetime | None = None,
) -> list[int]:
    """Held rows -> ``deferred`` until ``until`` (a retryable failure, or rows given back with
    it); the ids that became ``failed`` instead because their retry window is over.

    A row's window starts at its first deferral (``retry_until``); ``uncount`` takes back the
    attempt ``mark_started`` counted (the provider asked us to slow down: not the row's fault).
    Without ``charge`` the rows were never tried (the rest of a batch whose call failed): they
    only wait, their retry window and last error untouched.
    """
    if not ids:
        return []
    now = now or utcnow()
    held = sa.and_(
        DELIVERY.c.id.in_(list(ids)),
        DELIVERY.c.state == str(DeliveryState.CLAIMED),
        DELIVERY.c.worker == holder,
    )
    failed: list[int] = []
    changes: dict[str, Any] = {}
    if charge:
        over = session.connection().execute(
            sa.update(DELIVERY)
            .where(held, DELIVERY.c.retry_until.is_not(None), DELIVERY.c.retry_until <= now)
            .values(
                state=str(DeliveryState.FAILED),
                last_error=f"{error} (still failing after {retry_window} of retries)"[:2000],
                attempt_started_at=None,
                lease_expires_at=None,
                updated_at=now,
            )
            .returning(DELIVERY.c.id)
        )
        failed = [int(row[0]) for row in over]
        changes = {
            "retry_until": sa.func.coalesce(DELIVERY.c.retry_until, now + retry_window),
            "last_error": error[:2000],
        }
    session.connection().execute(
        sa.update(DELIVERY)
        .where(held)
        .values(
            **changes,
            state=str(DeliveryState.DEFERRED),
            not_before=until,
            worker=None,
            lease_expires_at=None,
            attempts=sa.case(
                (
                    sa.and_(sa.literal(uncount), DELIVERY.c.attempt_started_at.is_not(None)),
                    DELIVERY.c.attempts - 1,
                ),
                else_=DELIVERY.c.attempts,
            ),
            attempt_started_at=None,
            updated_at=now,
        )
    )
    _skip_if_cancelled(session, ids, now)
    return failed


def _skip_if_cancelled(session: Session, ids: Sequence[int], now: dt.datetime) -> None:
    """Rows given back to an edition cancelled meanwhile are skipped, as cancel did to the rest."""
    session.connection().execute(
        sa.update(DELIVERY)
        .where(
            DELIVERY.c.id.in_(list(ids)),
            DELIVERY.c.state.in_(CLAIMABLE),
            sa.exists().where(
                EDITION.c.id == DELIVERY.c.edition_id,
                EDITION.c.status == str(EditionStatus.CANCELLED),
            ),
        )
        .values(state=str(DeliveryState.SKIPPED), last_error=CANCELLED, updated_at=now)
    )


# -- operators: resend, cancel; the end of an edition -----------------------------------------


def resend(engine: Engine, edition_id: int, *, include_unknown: bool = False) -> int:
    """Failed rows (and unknown ones with ``include_unknown``) back to pending; how many.

    The edition is sending again if anything was reopened. A cancelled edition is refused.
    """
    states = [str(DeliveryState.FAILED)]
    if include_unknown:
        states.append(str(DeliveryState.UNKNOWN))
    now = utcnow()
    with immediate_session(engine) as session:
        status = _edition_status(session, edition_id)
        if status == EditionStatus.CANCELLED:
            raise ConflictError(f"edition {edition_id} is cancelled")
        reopened = (
            session.connection()
            .execute(
                sa.update(DELIVERY)
                .where(DELIVERY.c.edition_id == edition_id, DELIVERY.c.state.in_(states))
                .values(
                    state=str(DeliveryState.PENDING),
                    attempts=0,
                    worker=None,
                    lease_expires_at=None,
                    attempt_started_at=None,
                    not_before=None,
                    retry_until=None,
                    updated_at=now,
                )
            )
            .rowcount
        )
        if reopened:
            set_status(session, [edition_id], EditionStatus.SENDING, from_=EditionStatus.SENT)
    return int(reopened)


def cancel(engine: Engine, edition_id: int) -> int:
    """Cancel an edition: rows not yet handed to the provider are skipped; how many.

    Refused for an edition already sent completely. Cancelling twice is harmless.
    """
    now = utcnow()
    with immediate_session(engine) as session:
        status = _edition_status(session, edition_id)
        if status == EditionStatus.SENT:
            raise ConflictError(f"edition {edition_id} is already sent")
        not_started = sa.or_(
            DELIVERY.c.state.in_(CLAIMABLE),
            sa.and_(
                DELIVERY.c.state == str(DeliveryState.CLAIMED),
                DELIVERY.c.attempt_started_at.is_(None),
            ),
        )
        skipped = (
            session.connection()
            .execute(
                sa.update(DELIVERY)
                .where(DELIVERY.c.edition_id == edition_id, not_started)
                .values(
                    state=str(DeliveryState.SKIPPED),
                    last_error=CANCELLED,
                    worker=None,
                    lease_expires_at=None,
                    updated_at=now,
                )
            )
            .rowcount
        )
        set_status(session, [edition_id], EditionStatus.CANCELLED, from_=EditionStatus.SENDING)
    return int(skipped)


def _edition_status(session: Session, edition_id: int) -> EditionStatus:
    from digest.errors import NotFoundError

    status = (
        session.connection()
        .execute(sa.select(EDITION.c.status).where(EDITION.c.id == edition_id))
        .scalar_one_or_none()
    )
    if status is None:
        raise NotFoundError(f"no edition with id {edition_id}")
    return EditionStatus(status)


def finish_editions(engine: Engine, edition_ids: Iterable[int] | None = None) -> list[int]:
    """Mark sent every sending edition whose ledger is complete and has no row left pending,
    claimed or deferred; the ids of the editions finished now."""
    with immediate_session(engine) as session:
        open_rows = sa.exists().where(
            DELIVERY.c.edition_id == EDITION.c.id, DELIVERY.c.state.in_(OPEN_STATES)
        )
        candidates = sa.select(EDITION.c.id).where(
            EDITION.c.status == str(EditionStatus.SENDING),
            EDITION.c.ledger_complete.is_(True),
            ~open_rows,
        )
        if edition_ids is not None:
            candidates = candidates.where(EDITION.c.id.in_(list(edition_ids)))
        finished = [int(row[0]) for row in session.connection().execute(candidates)]
        finished = set_status(session, finished, EditionStatus.SENT, from_=EditionStatus.SENDING)
    for edition_id in finished:
        log.info("edition sent edition=%s", edition_id)
    return finished


# -- provider events ---------------------------------------------------------------------------


def record_provider_status(
    session: Session, delivery_id: int, status: str, *, now: dt.datetime | None = None
) -> None:
    """What a provider's webhook said of a row (``delivered``, ``bounced``, ...): kept in
    ``provider_status``; the row's state does not change."""
    session.connection().execute(
        sa.update(DELIVERY)
        .where(DELIVERY.c.id == delivery_id)
        .values(provider_status=status[:32], updated_at=now or utcnow())
    )


def forget_recipient(
    connection: sa.Connection, subscriber_id: int, addresses: Iterable[str]
) -> int:
    """Erasure: take a subscriber's address out of their ledger rows (``addresses``: what the
    rows may hold); states and counts stay. The rows leave the subscriber when its row is
    deleted (``ON DELETE SET NULL``). How many rows changed."""
    changed = connection.execute(
        sa.update(DELIVERY)
        .where(
            sa.or_(
                DELIVERY.c.subscriber_id == subscriber_id,
                DELIVERY.c.email.in_(list(addresses)),
            )
        )
        .values(email="", updated_at=utcnow())
    ).rowcount
    return int(changed or 0)


def upcoming(
    engine: Engine, edition_id: int, now: dt.datetime | None = None
) -> tuple[int, dt.datetime | None]:
    """Rows of ``edition_id`` waiting for a later ``not_before`` (scheduled or deferred), and
    when the first of them is due."""
    with session_scope(engine) as session:
        count, first = (
            session.connection()
            .execute(
                sa.select(sa.func.count(), sa.func.min(DELIVERY.c.not_before)).where(
                    DELIVERY.c.edition_id == edition_id,
                    DELIVERY.c.state.in_(CLAIMABLE),
                    DELIVERY.c.not_before > (now or utcnow()),
                )
            )
            .one()
        )
    return int(count), None if first is None else aware(first)


def edition_counts(engine: Engine, edition_id: int) -> dict[str, int]:
    """Rows per state, every state present (zero when none)."""
    with engine.connect() as connection:
        return state_counts(connection, edition_id)
