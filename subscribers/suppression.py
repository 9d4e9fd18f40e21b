"""The suppression list: addresses that must not be mailed, whatever their subscriber row says.

Keyed by ``email_key`` and independent of the ``subscriber`` table, so a suppression outlives
the deletion of its subscriber. Adding is idempotent and race-free (``INSERT ... ON CONFLICT
DO NOTHING``, then a conditional upgrade): an address keeps its strongest reason
(complained > bounced > admin > unsubscribed), and the first one among equals.
"""

from __future__ import annotations

import functools

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Insert, ReturningInsert
from sqlmodel import Session, col, select

from digest.db import core_connection, utcnow
from digest.errors import NotFoundError
from subscribers import audit
from subscribers.audit import Action
from subscribers.models import Cause, Suppression, SuppressionReason
from subscribers.normalize import normalize_email

_SUPPRESSIONS: sa.Table = Suppression.__table__  # type: ignore[attr-defined]
_RANK = {
    SuppressionReason.UNSUBSCRIBED: 1,
    SuppressionReason.ADMIN: 2,
    SuppressionReason.BOUNCED: 3,
    SuppressionReason.COMPLAINED: 4,
}
# Reasons that only an explicit, fresh opt-in may lift: everything but a plain unsubscribe.
HARD_REASONS = frozenset(
    {SuppressionReason.ADMIN, SuppressionReason.BOUNCED, SuppressionReason.COMPLAINED}
)


def insert_ignore(session: Session, table: sa.Table) -> Insert:
    """An INSERT into ``table`` that skips rows whose unique key already exists."""
    return _insert_ignore(session.get_bind().dialect.name, table)


def _insert_ignore(dialect: str, table: sa.Table) -> Insert:
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table).on_conflict_do_nothing()
    if dialect == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table).on_conflict_do_nothing()
    raise NotImplementedError(f"unsupported database dialect {dialect!r}")


def add(session: Session, email_key: str, reason: SuppressionReason, *, detail: str = "") -> bool:
    """Suppress ``email_key``; True if it was new or its reason got stronger.

    The caller writes the audit entry (it knows why); use ``suppress`` for a standalone one.
    """
    if insert(core_connection(session), email_key, reason, detail=detail):
        return True
    weaker = [str(other) for other, rank in _RANK.items() if rank < _RANK[reason]]
    if not weaker:
        return False
    upgraded = session.exec(
        sa.update(Suppression)
        .where(col(Suppression.email_key) == email_key, col(Suppression.reason).in_(weaker))
        .values(reason=str(reason), detail=detail)
    )
    return upgraded.rowcount > 0


def insert(
    connection: Connection, email_key: str, reason: SuppressionReason, *, detail: str = ""
) -> bool:
    """Suppress ``email_key`` unless it already is, with a Core statement; True if it was new.

    An existing suppression is left as it is, whatever its reason: ``add`` also strengthens a
    weaker one. For the weakest reason, ``unsubscribed``, the two are the same.
    """
    row = {"email_key": email_key, "reason": str(reason), "detail": detail, "created_at": utcnow()}
    return connection.execute(_insert_statement(connection.dialect.name), row).first() is not None


@functools.cache
def _insert_statement(dialect: str) -> ReturningInsert[tuple[int]]:
    # Built once per dialect: a statement object built per call costs more than running it.
    return _insert_ignore(dialect, _SUPPRESSIONS).returning(_SUPPRESSIONS.c.id)


def get(session: Session, email_key: str) -> Suppression | None:
    return session.exec(select(Suppression).where(Suppression.email_key == email_key)).first()


def is_suppressed(session: Session, email_key: str) -> bool:
    return get(session, email_key) is not None


def is_hard_suppressed(session: Session, email_key: str) -> bool:
    """True if the address is suppressed for a reason that a new signup cannot lift."""
    entry = get(session, email_key)
    return entry is not None and entry.reason != SuppressionReason.UNSUBSCRIBED


def list_suppressions(
    session: Session, *, reason: SuppressionReason | None = None
) -> list[Suppression]:
    """Every suppressed address (or those of one reason), newest first."""
    statement = select(Suppression).order_by(
        col(Suppression.created_at).desc(), col(Suppression.id).desc()
    )
    if reason is not None:
        statement = statement.where(Suppression.reason == str(reason))
    return list(session.exec(statement))


def suppress(
    session: Session,
    email: str,
    *,
    actor: str,
    reason: SuppressionReason = SuppressionReason.ADMIN,
    detail: str = "",
) -> bool:
    """Suppress an address by hand (audited); True if anything changed."""
    key = normalize_email(email).key
    changed = add(session, key, reason, detail=detail)
    if changed:
        audit.record(
            session,
            email_key=key,
            action=Action.SUPPRESS,
            cause=Cause.ADMIN,
            actor=actor,
            detail={"reason": str(reason), "note": detail} if detail else {"reason": str(reason)},
        )
    return changed


def remove(session: Session, email: str, *, actor: str, detail: str = "") -> Suppression:
    """Lift the suppression of an address (an administrator's decision, audited).

    The subscriber's status is left as it is: a bounced subscriber stays bounced and is not
    mailed until it signs up and confirms again. Raises ``NotFoundError`` if not suppressed.
    """
    key = normalize_email(email).key
    entry = get(session, key)
    if entry is None:
        raise NotFoundError(f"{email.strip()} is not on the suppression list")
    session.delete(entry)
    audit.record(
        session,
        email_key=key,
        action=Action.UNSUPPRESS,
        cause=Cause.ADMIN,
        actor=actor,
        detail={"reason": entry.reason, "suppressed_at": entry.created_at.isoformat()}
        | ({"note": detail} if detail else {}),
    )
    return entry
