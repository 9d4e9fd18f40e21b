"""A subscriber's personal data, in one place: everything stored about one address, exported
together (``export_data``) and erased together (``erase``).

What is stored about an address: the subscriber row (address, name, timezone, preferences,
status and its times), the audit trail of every change, a suppression entry if the address may
never be mailed again, one ledger row per edition sent to it, provider events about it
(delivered, bounced, complained, with the provider's raw payload), its votes with each
press of a vote button (time, network prefix, user agent), its hits on tracked links
(time, link, method, network prefix, user agent, and whether the rules counted it as a person)
and its fetches of the open pixel (the same fields, without a link).

``erase`` deletes the subscriber row, its votes and their presses, its link hits and pixel
fetches, and the provider events that name the address, and takes the address out of the
ledger rows (the counts of each edition stay right). The audit trail and the suppression
entry stay: they are the proof of consent and of the request to stop, and the suppression is
what keeps the address from ever being mailed again (re-importing it from an old list would
otherwise bring it back).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from digest.clicks.models import ClickHit, OpenHit
from digest.delivery import ledger
from digest.delivery.models import Delivery
from digest.editions.models import Edition
from digest.errors import NotFoundError
from digest.votes.models import Vote, VoteEvent
from digest.webhooks.models import WebhookEvent
from subscribers import lifecycle
from subscribers.models import AuditEntry, Subscriber, Suppression
from subscribers.normalize import email_key

SUBSCRIBER = cast(sa.Table, sa.inspect(Subscriber).local_table)
AUDIT = cast(sa.Table, sa.inspect(AuditEntry).local_table)
SUPPRESSION = cast(sa.Table, sa.inspect(Suppression).local_table)
DELIVERY = cast(sa.Table, sa.inspect(Delivery).local_table)
EDITION = cast(sa.Table, sa.inspect(Edition).local_table)
WEBHOOK_EVENT = cast(sa.Table, sa.inspect(WebhookEvent).local_table)
VOTE = cast(sa.Table, sa.inspect(Vote).local_table)
VOTE_EVENT = cast(sa.Table, sa.inspect(VoteEvent).local_table)
CLICK_HIT = cast(sa.Table, sa.inspect(ClickHit).local_table)
OPEN_HIT = cast(sa.Table, sa.inspect(OpenHit).local_table)


@dataclass(frozen=True, slots=True)
class Erasure:
    """What ``erase`` removed."""

    email: str
    votes: int
    vote_presses: int
    provider_events: int
    ledger_rows: int
    link_hits: int = 0
    open_hits: int = 0


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def _rows(connection: Connection, query: sa.Select[Any]) -> list[dict[str, Any]]:
    return [
        {key: _plain(value) for key, value in row._mapping.items()}
        for row in connection.execute(query)
    ]


def _key(email: str) -> str:
    return email_key(email)


def export_data(connection: Connection, email: str) -> dict[str, Any]:
    """Everything stored about ``email`` as plain data. ``NotFoundError`` when nothing is."""
    key = _key(email)
    subscriber = _rows(connection, sa.select(SUBSCRIBER).where(SUBSCRIBER.c.email_key == key))
    audit = _rows(
        connection,
        sa.select(AUDIT).where(AUDIT.c.email_key == key).order_by(AUDIT.c.at, AUDIT.c.id),
    )
    suppression = _rows(connection, sa.select(SUPPRESSION).where(SUPPRESSION.c.email_key == key))
    if not (subscriber or audit or suppression):
        raise NotFoundError(f"nothing is stored about {email}")
    subscriber_id = subscriber[0]["id"] if subscriber else None
    addresses = {row["email"] for row in subscriber} | {email}
    deliveries = _rows(
        connection,
        sa.select(
            EDITION.c.week,
            DELIVERY.c.state,
            DELIVERY.c.message_id,
            DELIVERY.c.created_at,
            DELIVERY.c.sent_at,
            DELIVERY.c.provider_status,
        )
        .join(EDITION, EDITION.c.id == DELIVERY.c.edition_id)
        .where(_delivery_of(subscriber_id, addresses))
        .order_by(DELIVERY.c.id),
    )
    events = _rows(
        connection,
        sa.select(
            WEBHOOK_EVENT.c.provider,
            WEBHOOK_EVENT.c.event_type,
            WEBHOOK_EVENT.c.bounce,
            WEBHOOK_EVENT.c.occurred_at,
            WEBHOOK_EVENT.c.received_at,
            WEBHOOK_EVENT.c.description,
            WEBHOOK_EVENT.c.raw,
        )
        .where(WEBHOOK_EVENT.c.email.in_(addresses))
        .order_by(WEBHOOK_EVENT.c.id),
    )
    votes: list[dict[str, Any]] = []
    presses: list[dict[str, Any]] = []
    hits: list[dict[str, Any]] = []
    fetches: list[dict[str, Any]] = []
    if subscriber_id is not None:
        fetches = _rows(
            connection,
            sa.select(
                EDITION.c.week,
                OPEN_HIT.c.at,
                OPEN_HIT.c.method,
                OPEN_HIT.c.network,
                OPEN_HIT.c.user_agent,
                OPEN_HIT.c.verdict,
                OPEN_HIT.c.reason,
            )
            .join(EDITION, EDITION.c.id == OPEN_HIT.c.edition_id)
            .where(OPEN_HIT.c.subscriber_id == subscriber_id)
            .order_by(OPEN_HIT.c.id),
        )
        hits = _rows(
            connection,
            sa.select(
                EDITION.c.week,
                CLICK_HIT.c.link,
                CLICK_HIT.c.at,
                CLICK_HIT.c.method,
                CLICK_HIT.c.network,
                CLICK_HIT.c.user_agent,
                CLICK_HIT.c.verdict,
                CLICK_HIT.c.reason,
            )
            .join(EDITION, EDITION.c.id == CLICK_HIT.c.edition_id)
            .where(CLICK_HIT.c.subscriber_id == subscriber_id)
            .order_by(CLICK_HIT.c.id),
        )
        votes = _rows(
            connection,
            sa.select(VOTE).where(VOTE.c.subscriber_id == subscriber_id).order_by(VOTE.c.id),
        )
        presses = _rows(
            connection,
            sa.select(VOTE_EVENT)
            .where(VOTE_EVENT.c.subscriber_id == subscriber_id)
            .order_by(VOTE_EVENT.c.id),
        )
    return {
        "email": email,
        "subscriber": subscriber[0] if subscriber else None,
        "audit": audit,
        "suppression": suppression[0] if suppression else None,
        "deliveries": deliveries,
        "provider_events": events,
        "votes": votes,
        "vote_presses": presses,
        "link_hits": hits,
        "open_hits": fetches,
    }


def _delivery_of(subscriber_id: int | None, addresses: set[str]) -> sa.ColumnElement[bool]:
    by_address = DELIVERY.c.email.in_(addresses)
    if subscriber_id is None:
        return by_address
    return sa.or_(DELIVERY.c.subscriber_id == subscriber_id, by_address)


def erase(connection: Connection, email: str, *, actor: str) -> Erasure:
    """Erase what is stored about ``email`` (see the module docstring); one transaction.

    ``NotFoundError`` when there is no such subscriber.
    """
    from sqlmodel import Session

    key = _key(email)
    row = connection.execute(
        sa.select(SUBSCRIBER.c.id, SUBSCRIBER.c.email).where(SUBSCRIBER.c.email_key == key)
    ).first()
    if row is None:
        raise NotFoundError(f"no subscriber with address {email}")
    subscriber_id, stored = int(row.id), str(row.email)
    addresses = {stored, email}
    counted = {
        "votes": _count(connection, VOTE, VOTE.c.subscriber_id == subscriber_id),
        "vote_presses": _count(connection, VOTE_EVENT, VOTE_EVENT.c.subscriber_id == subscriber_id),
    }
    link_hits = connection.execute(
        CLICK_HIT.delete().where(CLICK_HIT.c.subscriber_id == subscriber_id)
    ).rowcount
    open_hits = connection.execute(
        OPEN_HIT.delete().where(OPEN_HIT.c.subscriber_id == subscriber_id)
    ).rowcount
    events = connection.execute(
        WEBHOOK_EVENT.delete().where(WEBHOOK_EVENT.c.email.in_(addresses))
    ).rowcount
    scrubbed = ledger.forget_recipient(connection, subscriber_id, addresses)
    with Session(bind=connection) as session:
        lifecycle.remove(session, stored, actor=actor)
        session.flush()
    return Erasure(
        email=stored,
        votes=counted["votes"],
        vote_presses=counted["vote_presses"],
        provider_events=int(events or 0),
        ledger_rows=scrubbed,
        link_hits=int(link_hits or 0),
        open_hits=int(open_hits or 0),
    )


def _count(connection: Connection, table: sa.Table, where: sa.ColumnElement[bool]) -> int:
    return int(
        connection.execute(sa.select(sa.func.count()).select_from(table).where(where)).scalar_one()
    )
