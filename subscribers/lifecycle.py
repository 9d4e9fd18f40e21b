"""A subscriber's life: signup, double opt-in, preferences, unsubscribe, bounce, complaint, removal.

States::

    (new) ──signup──> pending ──confirm──> active ──unsubscribe──> unsubscribed
                        │  ^                  │                        │
                        │  └──── signup (a fresh double opt-in) ───────┘
                        └──────── hard bounce / complaint (from any state) ──> bounced | complained

Rules a mature list keeps:

- Nobody becomes ``active`` without consent: a confirmed link click, or an import/admin add
  that records where the consent came from (``source``).
- Nothing silently reactivates an address. A web signup of an unsubscribed address starts a
  new double opt-in; bounced and complained addresses, and those suppressed for that reason,
  are never mailed again by signup or import. ``SignupOutcome`` tells the caller whether to
  send a confirmation, and the caller must answer the same whatever happened, so the signup
  form does not reveal who is subscribed.
- Every change writes an ``AuditEntry`` in the same transaction.

Every function takes a ``Session`` and leaves the commit to the caller; ``unsubscribe``, which
every one-click request runs, also takes a bare ``Connection`` and uses Core statements only.
Transitions that other processes race on (confirm, unsubscribe, bounce, complaint) are
conditional UPDATEs issued before any read, so concurrent calls serialize in the database and
exactly one of them records the change; on SQLite this also keeps them safe in an ordinary
deferred transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from digest.db import UTCDateTime, core_connection, utcnow
from digest.errors import NotFoundError
from subscribers import audit, suppression
from subscribers.audit import Action
from subscribers.models import Cause, Status, Subscriber, Suppression, SuppressionReason
from subscribers.normalize import (
    normalize_categories,
    normalize_email,
    normalize_name,
    validate_timezone,
)

RESEND_CONFIRMATION_AFTER = dt.timedelta(minutes=10)
# A status change from any of these may happen through the named transition.
_UNSUBSCRIBABLE = (Status.ACTIVE, Status.PENDING)
_BOUNCEABLE = (Status.ACTIVE, Status.PENDING, Status.UNSUBSCRIBED)
_COMPLAINABLE = (Status.ACTIVE, Status.PENDING, Status.UNSUBSCRIBED, Status.BOUNCED)
# How often ``unsubscribe`` tries again when a concurrent transition moved the row between its
# conditional UPDATEs (a pending subscriber confirming at that very moment).
_UNSUBSCRIBE_ATTEMPTS = 3

_SUBSCRIBERS: sa.Table = Subscriber.__table__  # type: ignore[attr-defined]
_SUBSCRIBER_MAPPER = sa.inspect(Subscriber)
# The statements of ``unsubscribe``, built once: every one-click request runs them.
_NOW = sa.bindparam("now", type_=UTCDateTime)
_UNSUBSCRIBE = (
    sa.update(_SUBSCRIBERS)
    .where(
        _SUBSCRIBERS.c.id == sa.bindparam("subscriber_id"),
        _SUBSCRIBERS.c.status == sa.bindparam("old_status"),
    )
    .values(status=str(Status.UNSUBSCRIBED), unsubscribed_at=_NOW, updated_at=_NOW)
    .returning(_SUBSCRIBERS.c.email, _SUBSCRIBERS.c.email_key)
)
_UNSUBSCRIBE_STATE = sa.select(
    _SUBSCRIBERS.c.email,
    _SUBSCRIBERS.c.email_key,
    _SUBSCRIBERS.c.status,
    _SUBSCRIBERS.c.unsubscribed_at,
    _SUBSCRIBERS.c.updated_at,
).where(_SUBSCRIBERS.c.id == sa.bindparam("subscriber_id"))


@dataclass(frozen=True, slots=True)
class SignupOutcome:
    """What a signup did. ``subscriber`` is None when the address is suppressed and has no row."""

    subscriber: Subscriber | None
    created: bool
    should_send_confirmation: bool


@dataclass(frozen=True, slots=True)
class UnsubscribeOutcome:
    """What ``unsubscribe`` found and did.

    ``status`` is the subscriber's status afterwards. ``previous`` is the status this call moved
    it from, or None when there was nothing to change: already unsubscribed, or bounced or
    complained, which keep their stronger status.
    """

    subscriber_id: int
    email: str
    email_key: str
    status: Status
    unsubscribed_at: dt.datetime | None
    previous: Status | None = None

    @property
    def changed(self) -> bool:
        return self.previous is not None


# -- lookups -------------------------------------------------------------------------------------


def get(session: Session, subscriber_id: int) -> Subscriber | None:
    return session.get(Subscriber, subscriber_id)


def get_by_email(session: Session, email: str) -> Subscriber | None:
    """The subscriber of an address however it is spelled (raises ``InputError`` if invalid)."""
    return get_by_key(session, normalize_email(email).key)


def get_by_key(session: Session, email_key: str) -> Subscriber | None:
    return session.exec(select(Subscriber).where(Subscriber.email_key == email_key)).first()


def require_by_email(session: Session, email: str) -> Subscriber:
    subscriber = get_by_email(session, email)
    if subscriber is None:
        raise NotFoundError(f"no subscriber with address {email.strip()}")
    return subscriber


# -- signup and confirmation ---------------------------------------------------------------------


def signup(
    session: Session,
    email: str,
    *,
    name: str = "",
    timezone: str = "UTC",
    categories: Iterable[str] = (),
    source: str = "web",
    actor: str = "web",
    confirmed: bool = False,
    cause: Cause | None = None,
    first_name: str = "",
) -> SignupOutcome:
    """Subscribe an address: pending (double opt-in) or, with ``confirmed``, active at once.

    ``confirmed`` is for imports and administrators who hold the subscriber's consent; ``source``
    records where it came from. ``cause`` defaults to ``signup`` (or ``admin`` when confirmed).
    Raises ``InputError`` for an invalid address, name, timezone or category.
    """
    address = normalize_email(email)
    clean_name = normalize_name(name)
    clean_first = normalize_name(first_name)
    zone = validate_timezone(timezone)
    wanted = normalize_categories(categories)
    if cause is None:
        cause = Cause.ADMIN if confirmed else Cause.SIGNUP
    blocked = suppression.get(session, address.key)
    hard_blocked = blocked is not None and blocked.reason != SuppressionReason.UNSUBSCRIBED
    # Only a person asking for it on their own may restart a double opt-in after unsubscribing.
    may_reopt_in = not confirmed and cause != Cause.IMPORT
    now = utcnow()

    existing = get_by_key(session, address.key)
    if existing is None:
        if hard_blocked or (blocked is not None and not may_reopt_in):
            return SignupOutcome(None, created=False, should_send_confirmation=False)
        subscriber = Subscriber(
            email=address.email,
            email_key=address.key,
            name=clean_name,
            first_name=clean_first,
            timezone=zone,
            categories=wanted,
            status=Status.ACTIVE if confirmed else Status.PENDING,
            source=source[:200],
            created_at=now,
            updated_at=now,
            confirmed_at=now if confirmed else None,
        )
        try:
            with session.begin_nested():
                session.add(subscriber)
        except IntegrityError:
            # A concurrent signup of the same address won the race: treat it as existing.
            existing = get_by_key(session, address.key)
            if existing is None:
                raise
        else:
            audit.record(
                session,
                subscriber_id=subscriber.id,
                email_key=address.key,
                action=Action.IMPORT if cause == Cause.IMPORT else Action.SIGNUP,
                cause=cause,
                actor=actor,
                new_status=subscriber.status,
                detail={"source": source, "consent": "recorded" if confirmed else "pending"},
            )
            return SignupOutcome(subscriber, created=True, should_send_confirmation=not confirmed)

    if existing.status == Status.PENDING and not hard_blocked:
        # Vouching for consent cannot override an earlier unsubscribe: only the person's own
        # click on the confirm link lifts that.
        if confirmed and blocked is None:
            _activate(session, existing, cause=cause, actor=actor, detail={"source": source})
            return SignupOutcome(existing, created=False, should_send_confirmation=False)
        return SignupOutcome(
            existing,
            created=False,
            should_send_confirmation=not confirmed and _may_resend(existing, now),
        )
    if existing.status == Status.UNSUBSCRIBED and not hard_blocked and may_reopt_in:
        old = existing.status
        existing.status = Status.PENDING
        existing.name = clean_name or existing.name
        existing.first_name = clean_first or existing.first_name
        existing.timezone = zone
        existing.categories = wanted
        existing.paused = False
        existing.source = source[:200]
        existing.updated_at = now
        session.add(existing)
        audit.record(
            session,
            subscriber_id=existing.id,
            email_key=existing.email_key,
            action=Action.SIGNUP,
            cause=cause,
            actor=actor,
            old_status=old,
            new_status=Status.PENDING,
            detail={"source": source, "consent": "pending"},
        )
        return SignupOutcome(
            existing, created=False, should_send_confirmation=_may_resend(existing, now)
        )
    # Active: nothing to do. Bounced, complained, suppressed, or an unsubscribed address that
    # an import or administrator may not bring back: nothing to do either.
    return SignupOutcome(existing, created=False, should_send_confirmation=False)


def reserve_confirmations(session: Session, subscriber_ids: Sequence[int]) -> list[Subscriber]:
    """Record a confirmation email as sent, before sending it; the subscribers it may go to.

    One conditional UPDATE takes the rows of ``subscriber_ids`` that are pending, not
    suppressed (an earlier unsubscribe aside: the person asked again) and not sent a
    confirmation in the last ``RESEND_CONFIRMATION_AFTER``; concurrent callers serialize on
    it, so each row is reserved once. Commit before sending.
    """
    if not subscriber_ids:
        return []
    now = utcnow()
    blocked = (
        select(Suppression.email_key)
        .where(col(Suppression.reason) != str(SuppressionReason.UNSUBSCRIBED))
        .scalar_subquery()
    )
    table = Subscriber.__table__  # type: ignore[attr-defined]
    statement = (
        sa.update(table)
        .where(
            table.c.id.in_(list(subscriber_ids)),
            table.c.status == str(Status.PENDING),
            table.c.email_key.not_in(blocked),
            sa.or_(
                table.c.confirmation_sent_at.is_(None),
                table.c.confirmation_sent_at <= now - RESEND_CONFIRMATION_AFTER,
            ),
        )
        .values(confirmation_sent_at=now)
        .returning(table.c.id)
    )
    reserved = sorted(session.connection().execute(statement).scalars())
    if not reserved:
        return []
    rows = session.exec(
        select(Subscriber)
        .where(col(Subscriber.id).in_(reserved))
        .order_by(col(Subscriber.id))
        .execution_options(populate_existing=True)
    ).all()
    return list(rows)


def release_confirmation(session: Session, subscriber_id: int, reserved_at: dt.datetime) -> None:
    """Give back a reservation whose email the provider did not take (a new sign-up may then
    send at once); a newer reservation is left alone."""
    table = Subscriber.__table__  # type: ignore[attr-defined]
    session.connection().execute(
        sa.update(table)
        .where(table.c.id == subscriber_id, table.c.confirmation_sent_at == reserved_at)
        .values(confirmation_sent_at=None)
    )


def _may_resend(subscriber: Subscriber, now: dt.datetime) -> bool:
    sent = subscriber.confirmation_sent_at
    return sent is None or now - sent >= RESEND_CONFIRMATION_AFTER


def _activate(
    session: Session, subscriber: Subscriber, *, cause: Cause, actor: str, detail: dict[str, Any]
) -> None:
    assert subscriber.id is not None
    now = utcnow()
    if _transition(
        session,
        col(Subscriber.id) == subscriber.id,
        (Status.PENDING,),
        Status.ACTIVE,
        confirmed_at=now,
        updated_at=now,
    ):
        session.refresh(subscriber)
        audit.record(
            session,
            subscriber_id=subscriber.id,
            email_key=subscriber.email_key,
            action=Action.CONFIRM,
            cause=cause,
            actor=actor,
            old_status=Status.PENDING,
            new_status=Status.ACTIVE,
            detail=detail,
        )


def confirm(session: Session, subscriber_id: int, *, actor: str) -> Subscriber | None:
    """Pending -> active (the double opt-in link). Idempotent; None if there is no such row.

    Any other status is left alone: an unsubscribed, bounced or complained address needs a new
    signup first. Confirming lifts an ``unsubscribed`` suppression (the person opted in again),
    never a stronger one.
    """
    now = utcnow()
    changed = _transition(
        session,
        col(Subscriber.id) == subscriber_id,
        (Status.PENDING,),
        Status.ACTIVE,
        confirmed_at=now,
        updated_at=now,
    )
    subscriber = session.get(Subscriber, subscriber_id, populate_existing=True)
    if subscriber is None or changed is None:
        return subscriber
    lifted = session.exec(
        sa.delete(Suppression).where(
            col(Suppression.email_key) == subscriber.email_key,
            col(Suppression.reason) == str(SuppressionReason.UNSUBSCRIBED),
        )
    ).rowcount
    audit.record(
        session,
        subscriber_id=subscriber.id,
        email_key=subscriber.email_key,
        action=Action.CONFIRM,
        cause=Cause.CONFIRM,
        actor=actor,
        old_status=changed,
        new_status=Status.ACTIVE,
        detail={"lifted_suppression": "unsubscribed"} if lifted else {},
    )
    return subscriber


# -- leaving -------------------------------------------------------------------------------------


def unsubscribe(
    db: Session | Connection,
    subscriber_id: int,
    *,
    cause: Cause,
    actor: str,
    detail: str = "",
) -> UnsubscribeOutcome | None:
    """Unsubscribe (pending or active -> unsubscribed) and suppress the address.

    Idempotent and safe under concurrency: of any number of simultaneous calls exactly one
    changes the status and writes the audit entry. Bounced and complained subscribers keep
    their stronger status. None if there is no such subscriber.

    Core statements only, on a session's connection or on ``db`` itself, and no ORM object is
    loaded: a conditional ``UPDATE ... RETURNING`` per status it may leave, then the
    suppression and the audit entry. A ``Subscriber`` of this id already loaded in a session
    is brought up to date.
    """
    if isinstance(db, Connection):
        session, connection = None, db
    else:
        session, connection = db, core_connection(db)
    now = utcnow()
    attempts = 0
    while True:
        for old in _UNSUBSCRIBABLE:
            changed = connection.execute(
                _UNSUBSCRIBE, {"subscriber_id": subscriber_id, "old_status": str(old), "now": now}
            ).first()
            if changed is not None:
                email, email_key = changed
                # The weakest reason: it never replaces a suppression already there.
                suppression.insert(
                    connection, email_key, SuppressionReason.UNSUBSCRIBED, detail=str(cause)
                )
                audit.write(
                    connection,
                    subscriber_id=subscriber_id,
                    email_key=email_key,
                    action=Action.UNSUBSCRIBE,
                    cause=cause,
                    actor=actor,
                    old_status=old,
                    new_status=Status.UNSUBSCRIBED,
                    detail={"note": detail} if detail else {},
                )
                _update_loaded(
                    session,
                    subscriber_id,
                    status=str(Status.UNSUBSCRIBED),
                    unsubscribed_at=now,
                    updated_at=now,
                )
                return UnsubscribeOutcome(
                    subscriber_id=subscriber_id,
                    email=email,
                    email_key=email_key,
                    status=Status.UNSUBSCRIBED,
                    unsubscribed_at=now,
                    previous=old,
                )
        state = connection.execute(_UNSUBSCRIBE_STATE, {"subscriber_id": subscriber_id}).first()
        if state is None:
            return None
        _update_loaded(
            session,
            subscriber_id,
            status=state.status,
            unsubscribed_at=state.unsubscribed_at,
            updated_at=state.updated_at,
        )
        attempts += 1
        if state.status not in _UNSUBSCRIBABLE or attempts == _UNSUBSCRIBE_ATTEMPTS:
            return UnsubscribeOutcome(
                subscriber_id=subscriber_id,
                email=state.email,
                email_key=state.email_key,
                status=Status(state.status),
                unsubscribed_at=state.unsubscribed_at,
            )
        # A concurrent transaction moved the row between two of the UPDATEs: try again.


def _update_loaded(session: Session | None, subscriber_id: int, **values: Any) -> None:
    """Give a ``Subscriber`` already loaded in ``session`` the values a Core statement wrote."""
    if session is None:
        return
    key = _SUBSCRIBER_MAPPER.identity_key_from_primary_key((subscriber_id,))
    loaded = session.identity_map.get(key)
    if loaded is not None:
        for name, value in values.items():
            set_committed_value(loaded, name, value)


def admin_unsubscribe(session: Session, email: str, *, actor: str) -> Subscriber:
    """Unsubscribe an address on an administrator's behalf (``NotFoundError`` if unknown)."""
    subscriber = require_by_email(session, email)
    assert subscriber.id is not None
    # The subscriber is loaded in the session, so ``unsubscribe`` updates its status.
    if unsubscribe(session, subscriber.id, cause=Cause.ADMIN, actor=actor) is None:
        raise NotFoundError(f"no subscriber with address {email.strip()}")
    return subscriber


def record_bounce(
    session: Session, email: str, *, hard: bool, actor: str, detail: str = ""
) -> Subscriber | None:
    """A bounce reported for ``email``. Hard: status bounced and suppressed. Soft: audited only.

    Works for addresses without a subscriber row (the suppression alone is recorded).
    """
    key = normalize_email(email).key
    if not hard:
        subscriber = get_by_key(session, key)
        audit.record(
            session,
            subscriber_id=None if subscriber is None else subscriber.id,
            email_key=key,
            action=Action.SOFT_BOUNCE,
            cause=Cause.BOUNCE,
            actor=actor,
            detail={"detail": detail} if detail else {},
        )
        return subscriber
    return _terminal(
        session,
        key,
        SuppressionReason.BOUNCED,
        Status.BOUNCED,
        _BOUNCEABLE,
        action=Action.BOUNCE,
        cause=Cause.BOUNCE,
        actor=actor,
        detail=detail,
    )


def record_complaint(
    session: Session, email: str, *, actor: str, detail: str = ""
) -> Subscriber | None:
    """A spam complaint for ``email``: status complained and suppressed, with or without a row."""
    key = normalize_email(email).key
    return _terminal(
        session,
        key,
        SuppressionReason.COMPLAINED,
        Status.COMPLAINED,
        _COMPLAINABLE,
        action=Action.COMPLAINT,
        cause=Cause.COMPLAINT,
        actor=actor,
        detail=detail,
    )


def _terminal(
    session: Session,
    key: str,
    reason: SuppressionReason,
    status: Status,
    from_statuses: Sequence[Status],
    *,
    action: Action,
    cause: Cause,
    actor: str,
    detail: str,
) -> Subscriber | None:
    suppressed = suppression.add(session, key, reason, detail=detail)
    changed = _transition(
        session, col(Subscriber.email_key) == key, from_statuses, status, updated_at=utcnow()
    )
    subscriber = get_by_key(session, key)
    if subscriber is not None:
        session.refresh(subscriber)
    if suppressed or changed is not None:
        audit.record(
            session,
            subscriber_id=None if subscriber is None else subscriber.id,
            email_key=key,
            action=action,
            cause=cause,
            actor=actor,
            old_status=changed,
            new_status=None if changed is None else status,
            detail={"detail": detail} if detail else {},
        )
    return subscriber


def remove(session: Session, email: str, *, actor: str) -> Subscriber:
    """Delete the subscriber row of ``email``; its suppression and audit trail stay.

    Raises ``NotFoundError`` if there is no such subscriber.
    """
    subscriber = require_by_email(session, email)
    key, old = subscriber.email_key, subscriber.status
    session.delete(subscriber)
    session.flush()
    audit.record(
        session,
        email_key=key,
        action=Action.REMOVE,
        cause=Cause.ADMIN,
        actor=actor,
        old_status=old,
        detail={"subscriber_id": subscriber.id},
    )
    return subscriber


# -- preferences ---------------------------------------------------------------------------------


def update_preferences(
    session: Session,
    subscriber_id: int,
    *,
    categories: Iterable[str] | None = None,
    paused: bool | None = None,
    actor: str,
    cause: Cause = Cause.PREFERENCE_PAGE,
    name: str | None = None,
    timezone: str | None = None,
    vote_links: bool | None = None,
    track_clicks: bool | None = None,
) -> Subscriber | None:
    """Change what a subscriber receives (None leaves a field as it is). Audited when anything
    changed; None if there is no such subscriber."""
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        return None
    wanted: dict[str, Any] = {}
    if categories is not None:
        wanted["categories"] = normalize_categories(categories)
    if paused is not None:
        wanted["paused"] = bool(paused)
    if vote_links is not None:
        wanted["vote_links"] = bool(vote_links)
    if track_clicks is not None:
        wanted["track_clicks"] = bool(track_clicks)
    if name is not None:
        wanted["name"] = normalize_name(name)
    if timezone is not None:
        wanted["timezone"] = validate_timezone(timezone)
    changes = {
        field: [getattr(subscriber, field), value]
        for field, value in wanted.items()
        if getattr(subscriber, field) != value
    }
    if not changes:
        return subscriber
    for field, (_old, new) in changes.items():
        setattr(subscriber, field, new)
    subscriber.updated_at = utcnow()
    session.add(subscriber)
    audit.record(
        session,
        subscriber_id=subscriber.id,
        email_key=subscriber.email_key,
        action=Action.PREFERENCES,
        cause=cause,
        actor=actor,
        old_status=subscriber.status,
        new_status=subscriber.status,
        detail={"changes": changes},
    )
    return subscriber


# -- who may be mailed ---------------------------------------------------------------------------


def _not_suppressed() -> ColumnElement[bool]:
    return ~sa.exists().where(col(Suppression.email_key) == col(Subscriber.email_key))


def is_mailable(session: Session, subscriber: Subscriber) -> bool:
    """Active, not paused, and not on the suppression list (checked in the database)."""
    if subscriber.status != Status.ACTIVE or subscriber.paused:
        return False
    return not suppression.is_suppressed(session, subscriber.email_key)


def mailable_subscribers_query() -> SelectOfScalar[Subscriber]:
    """Every subscriber an edition may go to, by id; add filters or ``yield_per`` as needed."""
    return (
        select(Subscriber)
        .where(
            col(Subscriber.status) == str(Status.ACTIVE),
            col(Subscriber.paused).is_(False),
            _not_suppressed(),
        )
        .order_by(col(Subscriber.id))
    )


# -- helpers -------------------------------------------------------------------------------------


def _transition(
    session: Session,
    where: ColumnElement[bool],
    from_statuses: Sequence[Status],
    to_status: Status,
    **values: Any,
) -> Status | None:
    """Move the row(s) matching ``where`` from one of ``from_statuses`` to ``to_status``.

    One conditional UPDATE per candidate status, so the old status is known exactly without a
    prior read; returns it, or None when no row was in any of those statuses.
    """
    for old in from_statuses:
        result = session.exec(
            sa.update(Subscriber)
            .where(where, col(Subscriber.status) == str(old))
            .values(status=str(to_status), **values)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount:
            return old
    return None
