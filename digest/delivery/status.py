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
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from digest.config import Settings
from digest.content.weeks import IsoWeek
from digest.db import utcnow
from digest.delivery.guards import Guards, Hold
from digest.delivery.ledger import DELIVERY, aware, state_counts
from digest.delivery.local_time import (
    LocalSchedule,
    delivery_day,
    delivery_weekday,
    own_zone,
    parse_send_time,
    state_key,
    zone_of,
)
from digest.delivery.models import DeliveryState
from digest.editions.models import Edition, EditionStatus
from digest.editions.service import find_edition, latest_edition
from digest.state import read_state
from subscribers.models import Subscriber

RATE_WINDOW = dt.timedelta(minutes=1)
DOCUMENTED_COUNTS = ("pending", "claimed", "sent", "failed", "unknown", "skipped")


@dataclass(frozen=True, slots=True)
class EditionStatusReport:
    """Counts per ledger state, the state in words, and the pace of the send."""

    edition: Edition | None
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
            "next_retry_at": _iso(self.next_retry_at),
            "status": None if edition is None else str(edition.status),
            "hold": None if self.hold is None else self.hold.as_dict(),
            "subject": None if edition is None else edition.subject,
            "ledger_complete": None if edition is None else edition.ledger_complete,
            "total": sum(self.counts.values()) + self.deferred,
            "rate_per_second": round(self.rate_per_second, 2),
            "eta_seconds": None if self.eta_seconds is None else round(self.eta_seconds, 1),
            "created_at": None if edition is None else _iso(edition.created_at),
            "completed_at": None if edition is None else _iso(edition.completed_at),
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
            "at": _iso(self.at),
            "pending": self.pending,
            "sent": self.sent,
            "zones": list(self.zones),
        }


def delivery_time(
    session: Session,
    settings: Settings,
    week: IsoWeek,
    subscriber: Subscriber,
    *,
    now: dt.datetime | None = None,
) -> str | None:
    """When ``subscriber`` receives the edition of ``week``, in words (``digest preview --as``):
    sent already, due at their send time (by the rule kept with the edition, or the one the
    weekly job would use), or None when delivery is at once."""
    now = now or utcnow()
    edition = find_edition(session, settings.newsletter, week)
    stored = None if edition is None else read_state(session, state_key(edition.id or 0))
    if edition is not None and subscriber.id is not None:
        sent_at = (
            session.connection()
            .execute(
                sa.select(DELIVERY.c.sent_at).where(
                    DELIVERY.c.edition_id == edition.id,
                    DELIVERY.c.subscriber_id == subscriber.id,
                    DELIVERY.c.state == str(DeliveryState.SENT),
                )
            )
            .scalar()
        )
        if sent_at is not None:
            return f"{subscriber.email} was sent this edition at {_iso(aware(sent_at))}"
    if stored is not None:
        schedule = LocalSchedule.from_dict(stored)
    elif settings.delivery_mode == "local-time" and (
        edition is None or not edition.ledger_complete
    ):
        weekday = delivery_weekday(settings.delivery_day, settings.schedule)
        day = delivery_day(week.monday, weekday)
        schedule = LocalSchedule(parse_send_time(settings.local_send_time), settings.zone, now, day)
        if schedule.due(subscriber.timezone) < now:  # a send now: the next send time
            schedule = LocalSchedule(schedule.at, schedule.default_zone, now)
    else:
        return None
    due = schedule.due(subscriber.timezone)
    zone = zone_of(subscriber.timezone, schedule.default_zone)
    local = due.astimezone(zone)
    verb = "is due" if due > now else "was due (it goes at once)"
    return (
        f"{subscriber.email} {verb} this edition at {local:%a %d %b %Y %H:%M} {zone.key}"
        f" ({_iso(due)})"
    )


def schedule_slots(session: Session, edition_id: int) -> list[ScheduleSlot]:
    """A local-time edition's rows by due instant (empty for an edition sent at once)."""
    stored = read_state(session, state_key(edition_id))
    if stored is None:
        return []
    schedule = LocalSchedule.from_dict(stored)
    rows = session.connection().execute(
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


def _iso(moment: dt.datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def edition_to_show(session: Session, newsletter: str) -> Edition | None:
    """The edition in progress (the oldest still sending), else the latest one."""
    sending = session.exec(
        select(Edition)
        .where(Edition.newsletter == newsletter, Edition.status == str(EditionStatus.SENDING))
        .order_by(col(Edition.id))
    ).first()
    return sending or latest_edition(session, newsletter)


def status_report(
    session: Session,
    edition: Edition | None,
    *,
    guards: Guards,
    webhook: dict[str, int] | None = None,
    now: dt.datetime | None = None,
) -> EditionStatusReport:
    """Where ``edition`` stands (an empty report for None: nothing was ever sent)."""
    if edition is None:
        return EditionStatusReport(None, dict.fromkeys(DOCUMENTED_COUNTS, 0))
    assert edition.id is not None
    now = now or utcnow()
    every = state_counts(session, edition.id)
    deferred = every.pop(str(DeliveryState.DEFERRED), 0)
    counts = {name: every.get(name, 0) for name in DOCUMENTED_COUNTS}
    next_retry = (
        session.connection()
        .execute(
            sa.select(sa.func.min(DELIVERY.c.not_before)).where(
                DELIVERY.c.edition_id == edition.id,
                DELIVERY.c.state == str(DeliveryState.DEFERRED),
            )
        )
        .scalar()
    )
    next_retry_at = None if next_retry is None else aware(next_retry)
    hold: Hold | None = None
    rate, eta = 0.0, None
    if edition.status == EditionStatus.SENDING:
        hold = guards.check(session, now)
        if hold is None:
            state = "sending"
            rate = _recent_rate(session, edition.id, now)
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
        schedule=schedule_slots(session, edition.id),
    )


def _recent_rate(session: Session, edition_id: int, now: dt.datetime) -> float:
    """Messages per second over the last minute, measured from the first of them."""
    count, first = (
        session.connection()
        .execute(
            sa.select(sa.func.count(), sa.func.min(DELIVERY.c.sent_at)).where(
                DELIVERY.c.edition_id == edition_id,
                DELIVERY.c.state == str(DeliveryState.SENT),
                DELIVERY.c.sent_at >= now - RATE_WINDOW,
            )
        )
        .one()
    )
    if not count or first is None:
        return 0.0
    span = max(1.0, (now - aware(first)).total_seconds())
    return int(count) / span
