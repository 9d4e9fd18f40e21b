"""Operating a send: where an edition stands, resending what failed, cancelling the rest.

These are the library side of ``digest status``, ``digest resend`` and ``digest cancel``; each
is one short transaction, safe while workers are sending:

- ``resend`` puts ``failed`` rows (and, only when asked, ``unknown`` ones — those may have
  reached the recipient) back to ``pending`` with their attempts reset, and reopens the edition.
- ``cancel`` skips every row not yet handed to the provider (``pending``, and ``claimed`` rows
  whose attempt has not started) and marks the edition cancelled; workers see it at their next
  batch and the rows already in flight finish normally.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from digest.db import immediate_session, utcnow
from digest.delivery.claims import CANCELLED, DELIVERY, EDITION
from digest.delivery.models import DeliveryState
from digest.editions.models import Edition, EditionStatus
from digest.editions.service import get_edition
from digest.errors import ConflictError
from digest.webhooks.models import WebhookEvent

WEBHOOK_EVENT = cast(sa.Table, sa.inspect(WebhookEvent).local_table)
RATE_WINDOW = dt.timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class EditionStatusReport:
    """Counts per ledger state and the pace of the send."""

    edition: Edition
    counts: dict[str, int]
    rate_per_second: float
    eta_seconds: float | None
    webhook: dict[str, int]

    @property
    def remaining(self) -> int:
        return self.counts["pending"] + self.counts["claimed"]

    def as_json(self) -> dict[str, Any]:
        return {
            "edition": self.edition.id,
            "week": self.edition.week,
            "counts": self.counts,
            "status": str(self.edition.status),
            "subject": self.edition.subject,
            "ledger_complete": self.edition.ledger_complete,
            "total": sum(self.counts.values()),
            "rate_per_second": round(self.rate_per_second, 2),
            "eta_seconds": None if self.eta_seconds is None else round(self.eta_seconds, 1),
            "created_at": _iso(self.edition.created_at),
            "completed_at": _iso(self.edition.completed_at),
            "webhook": self.webhook,
        }


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def state_counts(session: Session, edition_id: int) -> dict[str, int]:
    """Rows per state, every state present (zero when none)."""
    counts = {str(state): 0 for state in DeliveryState}
    rows = session.connection().execute(
        sa.select(DELIVERY.c.state, sa.func.count())
        .where(DELIVERY.c.edition_id == edition_id)
        .group_by(DELIVERY.c.state)
    )
    for state, count in rows:
        counts[str(state)] = int(count)
    return counts


def status_report(
    session: Session, edition: Edition, *, now: dt.datetime | None = None
) -> EditionStatusReport:
    """Where ``edition`` stands: counts, messages per second over the last minute, the ETA,
    and the provider events received so far (by type)."""
    assert edition.id is not None
    now = now or utcnow()
    counts = state_counts(session, edition.id)
    recent = (
        session.connection()
        .execute(
            sa.select(sa.func.count()).where(
                DELIVERY.c.edition_id == edition.id,
                DELIVERY.c.state == str(DeliveryState.SENT),
                DELIVERY.c.sent_at >= now - RATE_WINDOW,
            )
        )
        .one()[0]
    )
    rate = int(recent) / RATE_WINDOW.total_seconds()
    remaining = counts["pending"] + counts["claimed"]
    eta = remaining / rate if rate > 0 else (0.0 if remaining == 0 else None)
    return EditionStatusReport(edition, counts, rate, eta, webhook_counts(session, edition.id))


def webhook_counts(session: Session, edition_id: int) -> dict[str, int]:
    """Provider events (delivered, bounced, ...) matched to this edition's rows, by type."""
    rows = session.connection().execute(
        sa.select(WEBHOOK_EVENT.c.event_type, sa.func.count())
        .join(DELIVERY, DELIVERY.c.id == WEBHOOK_EVENT.c.delivery_id)
        .where(DELIVERY.c.edition_id == edition_id)
        .group_by(WEBHOOK_EVENT.c.event_type)
    )
    return {str(event_type): int(count) for event_type, count in rows}


def resend(engine: Engine, edition_id: int, *, include_unknown: bool = False) -> int:
    """Failed rows (and unknown ones with ``include_unknown``) back to pending; how many.

    The edition is sending again if anything was reopened. A cancelled edition is refused.
    """
    states = [str(DeliveryState.FAILED)]
    if include_unknown:
        states.append(str(DeliveryState.UNKNOWN))
    now = utcnow()
    with immediate_session(engine) as session:
        edition = get_edition(session, edition_id)
        if edition.status == EditionStatus.CANCELLED:
            raise ConflictError(f"edition {edition_id} ({edition.week}) is cancelled")
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
                    updated_at=now,
                )
            )
            .rowcount
        )
        if reopened:
            session.connection().execute(
                sa.update(EDITION)
                .where(EDITION.c.id == edition_id)
                .values(status=str(EditionStatus.SENDING), completed_at=None)
            )
    return int(reopened)


def cancel(engine: Engine, edition_id: int) -> int:
    """Cancel an edition: rows not yet handed to the provider are skipped; how many.

    Refused for an edition already sent completely. Cancelling twice is harmless.
    """
    now = utcnow()
    with immediate_session(engine) as session:
        edition = get_edition(session, edition_id)
        if edition.status == EditionStatus.SENT:
            raise ConflictError(f"edition {edition_id} ({edition.week}) is already sent")
        not_started = sa.or_(
            DELIVERY.c.state == str(DeliveryState.PENDING),
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
        session.connection().execute(
            sa.update(EDITION)
            .where(EDITION.c.id == edition_id)
            .values(status=str(EditionStatus.CANCELLED), cancelled_at=now)
        )
    return int(skipped)
