"""Store normalized events once each and apply their effects exactly once.

For every event, in one transaction per webhook request:

1. find the delivery it is about (by the provider's message id, else by our Message-ID);
2. ``INSERT ... ON CONFLICT DO NOTHING`` into ``webhook_event``: a redelivered event (same
   ``(provider, event_key)``) or a reused one-time token inserts nothing and has no effect;
3. for a new row only: a hard bounce or a complaint suppresses the address and writes an audit
   entry (``subscribers.lifecycle``), a soft bounce is audited only; and the delivery's
   ``provider_status`` becomes the event type (``digest.delivery.ledger`` writes it), unless
   an event of that delivery that happened later is already stored (webhooks arrive out of
   order).

The write lock is taken at BEGIN on SQLite (``immediate_session``) so concurrent deliveries of
the same event serialize; on PostgreSQL the unique index does the same. Either way the
redelivery finds the first row and does nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from digest.db import immediate_session, utcnow
from digest.delivery.ledger import record_provider_status
from digest.delivery.models import Delivery
from digest.errors import InputError
from digest.webhooks.events import BounceKind, EventType, NormalizedEvent
from digest.webhooks.models import WebhookEvent
from subscribers import lifecycle
from subscribers.suppression import insert_ignore

logger = logging.getLogger(__name__)

MAX_AUDIT_DETAIL = 500
_TABLE: sa.Table = WebhookEvent.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one webhook request did: events received, newly stored, and already known."""

    received: int
    stored: int
    duplicates: int


def process_events(engine: Engine, events: Sequence[NormalizedEvent]) -> Outcome:
    """Store and apply ``events`` in one transaction (all or nothing)."""
    if not events:
        return Outcome(received=0, stored=0, duplicates=0)
    with immediate_session(engine) as session:
        return record_events(session, events)


def record_events(session: Session, events: Sequence[NormalizedEvent]) -> Outcome:
    """Like ``process_events`` inside the caller's transaction (the caller commits)."""
    stored = 0
    for event in events:
        if record_event(session, event):
            stored += 1
    return Outcome(received=len(events), stored=stored, duplicates=len(events) - stored)


def record_event(session: Session, event: NormalizedEvent) -> bool:
    """Store ``event`` and apply its effects; False (and nothing done) if it was already known."""
    delivery = find_delivery(session, event)
    received_at = utcnow()
    statement = (
        insert_ignore(session, _TABLE)
        .values(
            provider=event.provider,
            event_key=event.event_key,
            event_type=str(event.event_type),
            bounce=None if event.bounce is None else str(event.bounce),
            email=_fit(event.email, 320),
            message_id=_fit(event.message_id or (delivery.message_id if delivery else None), 250),
            provider_message_id=_fit(event.provider_message_id, 250),
            delivery_id=None if delivery is None else delivery.id,
            replay_token=_fit(event.replay_token, 200),
            occurred_at=event.occurred_at,
            received_at=received_at,
            description=event.description,
            raw=event.raw,
        )
        .returning(_TABLE.c.id)
    )
    row_id = session.exec(statement).scalar_one_or_none()
    if row_id is None:
        if event.replay_token and not _known(session, event):
            logger.warning(
                "webhook %s: a used signature token came with another event (%s); ignored",
                event.provider,
                event.event_key,
            )
        else:
            logger.info("webhook %s event %s already recorded", event.provider, event.event_key)
        return False
    _apply_effects(session, event)
    if delivery is not None and event.event_type is not EventType.UNKNOWN:
        _update_delivery(session, delivery, event, row_id, event.occurred_at or received_at)
    return True


def _fit(value: str | None, width: int) -> str | None:
    # Providers' values are not ours to trust: a signed but oversized field must not make
    # PostgreSQL refuse the whole batch (SQLite would not notice).
    return value if value is None or len(value) <= width else value[:width]


def _known(session: Session, event: NormalizedEvent) -> bool:
    return (
        session.exec(
            select(WebhookEvent.id).where(
                WebhookEvent.provider == event.provider, WebhookEvent.event_key == event.event_key
            )
        ).first()
        is not None
    )


def find_delivery(session: Session, event: NormalizedEvent) -> Delivery | None:
    """The ledger row the event is about, if the ids it carries name one."""
    conditions: list[sa.ColumnElement[bool]] = []
    if event.provider_message_id:
        bare = event.provider_message_id.strip().strip("<>")
        candidates = {event.provider_message_id, bare, f"<{bare}>"}
        conditions.append(col(Delivery.provider_message_id).in_(sorted(candidates)))
    if event.message_id:
        conditions.append(col(Delivery.message_id) == event.message_id)
    if not conditions:
        return None
    return session.exec(
        select(Delivery).where(sa.or_(*conditions)).order_by(col(Delivery.id)).limit(1)
    ).first()


def _apply_effects(session: Session, event: NormalizedEvent) -> None:
    if event.email is None:
        return
    actor = f"webhook:{event.provider}"
    detail = f"{event.provider} event {event.event_key}"
    if event.description:
        detail += f": {event.description}"
    detail = detail[:MAX_AUDIT_DETAIL]
    try:
        if event.event_type is EventType.BOUNCED:
            lifecycle.record_bounce(
                session,
                event.email,
                hard=event.bounce is BounceKind.HARD,
                actor=actor,
                detail=detail,
            )
        elif event.event_type is EventType.COMPLAINED:
            lifecycle.record_complaint(session, event.email, actor=actor, detail=detail)
    except InputError:
        # An address we could never have mailed: keep the event, there is nobody to suppress.
        logger.warning(
            "webhook %s event %s names an invalid address", event.provider, event.event_key
        )


def _update_delivery(
    session: Session, delivery: Delivery, event: NormalizedEvent, row_id: int, when: dt.datetime
) -> None:
    happened = sa.func.coalesce(col(WebhookEvent.occurred_at), col(WebhookEvent.received_at))
    later = session.exec(
        select(WebhookEvent.id)
        .where(
            col(WebhookEvent.delivery_id) == delivery.id,
            col(WebhookEvent.id) != row_id,
            col(WebhookEvent.event_type) != str(EventType.UNKNOWN),
            happened > when,
        )
        .limit(1)
    ).first()
    if later is not None:
        return
    assert delivery.id is not None
    record_provider_status(session, delivery.id, str(event.event_type))
