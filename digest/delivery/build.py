"""The delivery ledger of an edition: one ``Delivery`` row per recipient, written before the
first message goes out.

A recipient is every subscriber the subscribers package calls mailable (active, not paused,
not suppressed) whose categories match at least one comparison of the edition; the row stores
the content variant they get and a Message-ID chosen now, so a retry of that row reuses the
same Message-ID (and idempotency key).

The ledger is built in chunks of subscribers, in id order, each chunk one transaction of
``INSERT ... ON CONFLICT DO NOTHING``: a process that dies halfway leaves a partial ledger that
the next run completes without duplicating anyone, and two processes building it at once are
harmless. ``Edition.ledger_complete`` is set when the last chunk is in; only then can the
edition be considered sent.

In local-time delivery a ``LocalSchedule`` gives each row its ``not_before`` (the subscriber's
send time, ``digest.delivery.local_time``) and ``zone`` (the subscriber's ``timezone`` it was
computed from); at once, both stay empty.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col

from digest.db import immediate_session, session_scope, utcnow
from digest.delivery.bulk import db_timestamp, executemany
from digest.delivery.local_time import LocalSchedule
from digest.delivery.models import Delivery, DeliveryState
from digest.editions.models import Edition
from digest.editions.service import mark_ledger_complete
from subscribers.lifecycle import mailable_subscribers_query
from subscribers.models import Subscriber

log = logging.getLogger(__name__)

DELIVERY = cast(sa.Table, sa.inspect(Delivery).local_table)
CHUNK_SIZE = 20_000

VariantKey = Callable[[Sequence[str]], str | None]
"""A subscriber's categories -> the key of the variant they get (None: nothing for them)."""


# Written through the DB-API (``digest.delivery.bulk``): 100,000 rows in a few seconds.
INSERT_ROW = (
    "INSERT INTO delivery (edition_id, subscriber_id, email, variant, state, attempts,"
    " message_id, created_at, updated_at, not_before, zone)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT DO NOTHING"
)


def ensure_ledger(
    engine: Engine,
    edition: Edition,
    variant_key: VariantKey,
    new_message_id: Callable[[], str],
    *,
    chunk_size: int = CHUNK_SIZE,
    schedule: LocalSchedule | None = None,
) -> int:
    """Complete the ledger of ``edition`` if it is not complete yet; rows now in the ledger.

    ``variant_key`` decides who gets what (cached per distinct category list);
    ``new_message_id`` makes each row's Message-ID; ``schedule`` (local-time delivery) when
    each row is due.
    """
    assert edition.id is not None
    if not edition.ledger_complete:
        inserted = _build(
            engine, edition.id, variant_key, new_message_id, chunk_size, schedule=schedule
        )
        with immediate_session(engine) as session:
            mark_ledger_complete(session, edition.id)
        edition.ledger_complete = True
        log.info("ledger complete edition=%s inserted=%d", edition.id, inserted)
    with session_scope(engine) as session:
        total = (
            session.connection()
            .execute(sa.select(sa.func.count()).where(DELIVERY.c.edition_id == edition.id))
            .one()[0]
        )
    return int(total)


def _build(
    engine: Engine,
    edition_id: int,
    variant_key: VariantKey,
    new_message_id: Callable[[], str],
    chunk_size: int,
    *,
    schedule: LocalSchedule | None,
) -> int:
    variants: dict[str, str | None] = {}
    stamps: dict[str, Any] = {}  # a zone's due instant as the driver takes it
    pending = str(DeliveryState.PENDING)
    last_id = 0
    inserted = 0
    while True:
        with immediate_session(engine) as session:
            connection = session.connection()
            chunk = connection.execute(
                mailable_subscribers_query()
                .where(col(Subscriber.id) > last_id)
                .with_only_columns(
                    col(Subscriber.id),
                    col(Subscriber.email),
                    # As text: one JSON decode per distinct category list, not per row.
                    sa.cast(col(Subscriber.categories), sa.Text),
                    col(Subscriber.timezone),
                )
                .limit(chunk_size)
            ).all()
            if not chunk:
                return inserted
            last_id = int(chunk[-1][0] or 0)
            now = db_timestamp(connection, DELIVERY.c.created_at, utcnow())
            rows: list[tuple[Any, ...]] = []
            for subscriber_id, email, categories, zone in chunk:
                if categories not in variants:
                    variants[categories] = variant_key(tuple(json.loads(categories or "[]")))
                variant = variants[categories]
                if variant is not None:
                    due = None
                    if schedule is not None:
                        due = stamps.get(zone)
                        if due is None:
                            due = db_timestamp(
                                connection, DELIVERY.c.not_before, schedule.due(zone)
                            )
                            stamps[zone] = due
                    rows.append(
                        (
                            edition_id,
                            subscriber_id,
                            email,
                            variant,
                            pending,
                            0,
                            new_message_id(),
                            now,
                            now,
                            due,
                            None if schedule is None else zone,
                        )
                    )
            if rows:
                executemany(connection, INSERT_ROW, rows)
                inserted += len(rows)
