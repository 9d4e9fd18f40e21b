"""Where a send stands, for ``digest status``: which edition, in what state, how far, how fast.

Without an edition named, the report is about the edition in progress (the oldest one still
``sending``: held, paused or going out), else the latest. Its ``state`` reads as an operator
would say it:

- ``held until <time> (send window ...)``: outside the send window;
- ``paused by <who> at <when>``: the pause switch is on;
- ``sending``; ``sent``; ``sent with N failures`` (failed or unknown rows); ``cancelled``.

Deferred rows (retrying after a provider failure) and when the next is due are counted apart.
The rate is messages sent per second over the last minute (measured from the first of them,
so a send six seconds old is not averaged over sixty); the ETA comes from it, and only while
the edition is actually sending.

In local-time delivery the report has the ``schedule``: rows grouped by the instant they are
due (the subscriber's send time in their zone, by the rule kept with the edition), each with
how many are still to go, how many are sent, and the zones due then (most rows first).

Provider events are counted by the webhooks package and passed in (``webhook``): delivery does
not import webhooks.

Everything here reads with SQLAlchemy Core on one connection, through the table clauses of
``digest.delivery.table``, ``digest.editions.table`` and ``digest.state``: the ORM and the
models are not loaded, which keeps ``digest status`` quick to start.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from digest.db import aware, utcnow
from digest.delivery.guards import Guards, Hold
from digest.delivery.local_time import LocalSchedule, own_zone, state_key
from digest.delivery.table import DELIVERY_COLUMNS as DELIVERY
from digest.delivery.table import DeliveryState
from digest.editions.table import (
    EDITION_COLUMNS,
    EditionRow,
    EditionStatus,
    edition_row,
    latest_edition_id,
)
from digest.state import read_state

RATE_WINDOW = dt.timedelta(minutes=1)
DOCUMENTED_COUNTS = ("pending", "claimed", "sent", "failed", "unknown", "skipped")


@dataclass(frozen=True, slots=True)
class EditionStatusReport:
    """Counts per ledger state, the state in words, and the pace of the send."""

    edition: EditionRow | None
    counts: dict[str, int]
    state: str | None = None
    hold: Hold | None = None
    deferred: int = 0
    next_retry_at: dt.datetime | None = None
    rate_per_second: float = 0.0
    eta_seconds: float | None = None
    webhook: dict[str, int] = field(default_factory=dict)
    schedule: list[ScheduleSlot] = field(default_factory=list)

    @property
    def remaining(self) -> int:
        return self.counts["pending"] + self.counts["claimed"] + self.deferred

    def as_json(self) -> dict[str, Any]:
        edition = self.edition
        return {
            "edition": None if edition is None else edition.id,
            "week": None if edition is None else edition.week,
            "counts": self.counts,
            "state": self.state,
            "deferred": self.deferred,
            "next_retry_at": utc_iso(self.next_retry_at),
            "status": None if edition is None else str(edition.status),
            "hold": None if self.hold is None else self.hold.as_dict(),
            "subject": None if edition is None else edition.subject,
            "ledger_complete": None if edition is None else edition.ledger_complete,
            "total": sum(self.counts.values()) + self.deferred,
            "rate_per_second": round(self.rate_per_second, 2),
            "eta_seconds": None if self.eta_seconds is None else round(self.eta_seconds, 1),
            "created_at": None if edition is None else utc_iso(edition.created_at),
            "completed_at": None if edition is None else utc_iso(edition.completed_at),
            "webhook": self.webhook,
            "schedule": [slot.as_json() for slot in self.schedule],
        }


@dataclass(frozen=True, slots=True)
class ScheduleSlot:
    """The rows of a local-time edition due at one instant."""

    at: dt.datetime
    pending: int
    sent: int
    zones: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "at": utc_iso(self.at),
            "pending": self.pending,
            "sent": self.sent,
            "zones": list(self.zones),
        }


def schedule_slots(connection: Connection, edition_id: int) -> list[ScheduleSlot]:
    """A local-time edition's rows by due instant (empty for an edition sent at once)."""
    stored = read_state(connection, state_key(edition_id))
    if stored is None:
        return []
    schedule = LocalSchedule.from_dict(stored)
    rows = connection.execute(
        sa.select(DELIVERY.c.zone, DELIVERY.c.state, sa.func.count())
        .where(DELIVERY.c.edition_id == edition_id, DELIVERY.c.zone.is_not(None))
        .group_by(DELIVERY.c.zone, DELIVERY.c.state)
    )
    to_go = {str(state) for state in (DeliveryState.PENDING, DeliveryState.CLAIMED)}
    to_go.add(str(DeliveryState.DEFERRED))
    pending: Counter[dt.datetime] = Counter()
    sent: Counter[dt.datetime] = Counter()
    zones: dict[dt.datetime, Counter[str]] = {}
    for zone, state, count in rows:
        at = schedule.due(zone)
        if state in to_go:
            pending[at] += int(count)
        elif state == str(DeliveryState.SENT):
            sent[at] += int(count)
        else:
            continue
        shown = zone if own_zone(zone) is not None else schedule.default_zone.key
        zones.setdefault(at, Counter())[shown] += int(count)
    return [
        ScheduleSlot(at, pending[at], sent[at], tuple(name for name, _ in zones[at].most_common()))
        for at in sorted(zones)
    ]


def utc_iso(moment: dt.datetime | None) -> str | None:
    """An instant in ISO 8601, in UTC with a ``Z``; a naive one is taken as UTC."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def edition_to_show(connection: Connection, newsletter: str) -> EditionRow | None:
    """The edition in progress (the oldest still sending), else the latest one."""
    table = EDITION_COLUMNS
    sending = connection.execute(
        sa.select(table.c.id)
        .where(table.c.newsletter == newsletter, table.c.status == str(EditionStatus.SENDING))
        .order_by(table.c.id)
        .limit(1)
    ).scalar()
    shown = sending if sending is not None else latest_edition_id(connection, newsletter)
    return None if shown is None else edition_row(connection, int(shown))


def state_counts(connection: Connection, edition_id: int) -> dict[str, int]:
    """Rows per state, every state present (zero when none)."""
    counts = {str(state): 0 for state in DeliveryState}
    rows = connection.execute(
        sa.select(DELIVERY.c.state, sa.func.count())
        .where(DELIVERY.c.edition_id == edition_id)
        .group_by(DELIVERY.c.state)
    )
    for state, count in rows:
        counts[str(state)] = int(count)
    return counts


def status_report(
    connection: Connection,
    edition: EditionRow | None,
    *,
    guards: Guards,
    webhook: dict[str, int] | None = None,
    now: dt.datetime | None = None,
) -> EditionStatusReport:
    """Where ``edition`` stands (an empty report for None: nothing was ever sent)."""
    if edition is None:
        return EditionStatusReport(None, dict.fromkeys(DOCUMENTED_COUNTS, 0))
    now = now or utcnow()
    every = state_counts(connection, edition.id)
    deferred = every.pop(str(DeliveryState.DEFERRED), 0)
    counts = {name: every.get(name, 0) for name in DOCUMENTED_COUNTS}
    next_retry = connection.execute(
        sa.select(sa.func.min(DELIVERY.c.not_before)).where(
            DELIVERY.c.edition_id == edition.id,
            DELIVERY.c.state == str(DeliveryState.DEFERRED),
        )
    ).scalar()
    next_retry_at = None if next_retry is None else aware(next_retry)
    hold: Hold | None = None
    rate, eta = 0.0, None
    if edition.status == EditionStatus.SENDING:
        hold = guards.check(connection, now)
        if hold is None:
            state = "sending"
            rate = _recent_rate(connection, edition.id, now)
            remaining = counts["pending"] + counts["claimed"] + deferred
            eta = remaining / rate if rate > 0 else None
        else:
            state = hold.describe()
    elif edition.status == EditionStatus.SENT:
        failures = counts["failed"] + counts["unknown"]
        state = f"sent with {failures} failures" if failures else "sent"
    else:
        state = str(edition.status)
    return EditionStatusReport(
        edition,
        counts,
        state=state,
        hold=hold,
        deferred=deferred,
        next_retry_at=next_retry_at,
        rate_per_second=rate,
        eta_seconds=eta,
        webhook=webhook or {},
        schedule=schedule_slots(connection, edition.id),
    )


def _recent_rate(connection: Connection, edition_id: int, now: dt.datetime) -> float:
    """Messages per second over the last minute, measured from the first of them."""
    count, first = connection.execute(
        sa.select(sa.func.count(), sa.func.min(DELIVERY.c.sent_at)).where(
            DELIVERY.c.edition_id == edition_id,
            DELIVERY.c.state == str(DeliveryState.SENT),
            DELIVERY.c.sent_at >= now - RATE_WINDOW,
        )
    ).one()
    if not count or first is None:
        return 0.0
    span = max(1.0, (now - aware(first)).total_seconds())
    return int(count) / span
