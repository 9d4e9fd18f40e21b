"""The audit log: one ``AuditEntry`` per change of a subscriber's status, preferences or
suppression, written in the same transaction as the change itself.

Entries are keyed by ``email_key`` as well as ``subscriber_id`` so that the trail of an address
survives the deletion of its subscriber row (the foreign key is set to NULL, not cascaded).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlmodel import Session, col, select

from digest.db import utcnow
from subscribers.models import AuditEntry, Cause, Status

_AUDIT_LOG: sa.Table = AuditEntry.__table__  # type: ignore[attr-defined]
_INSERT = sa.insert(_AUDIT_LOG)


class Action(enum.StrEnum):
    """What happened, the audit log's ``action``."""

    SIGNUP = "signup"
    CONFIRM = "confirm"
    UNSUBSCRIBE = "unsubscribe"
    PREFERENCES = "preferences"
    BOUNCE = "bounce"
    SOFT_BOUNCE = "soft-bounce"
    COMPLAINT = "complaint"
    REMOVE = "remove"
    SUPPRESS = "suppress"
    UNSUPPRESS = "unsuppress"
    IMPORT = "import"


def record(
    session: Session,
    *,
    email_key: str,
    action: Action,
    cause: Cause,
    actor: str,
    subscriber_id: int | None = None,
    old_status: Status | str | None = None,
    new_status: Status | str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Add one entry to the session (flushed with the change it describes)."""
    entry = AuditEntry(
        **_row(
            email_key=email_key,
            action=action,
            cause=cause,
            actor=actor,
            subscriber_id=subscriber_id,
            old_status=old_status,
            new_status=new_status,
            detail=detail,
        )
    )
    session.add(entry)
    return entry


def write(
    connection: Connection,
    *,
    email_key: str,
    action: Action,
    cause: Cause,
    actor: str,
    subscriber_id: int | None = None,
    old_status: Status | str | None = None,
    new_status: Status | str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Insert one entry at once on ``connection``, building no ``AuditEntry`` object.

    The same row as ``record`` writes, for changes made with Core statements themselves.
    """
    row = _row(
        email_key=email_key,
        action=action,
        cause=cause,
        actor=actor,
        subscriber_id=subscriber_id,
        old_status=old_status,
        new_status=new_status,
        detail=detail,
    )
    connection.execute(_INSERT, row)


def _row(
    *,
    email_key: str,
    action: Action,
    cause: Cause,
    actor: str,
    subscriber_id: int | None,
    old_status: Status | str | None,
    new_status: Status | str | None,
    detail: Mapping[str, Any] | None,
) -> dict[str, Any]:
    return {
        "subscriber_id": subscriber_id,
        "email_key": email_key,
        "at": utcnow(),
        "action": str(action),
        "cause": str(cause),
        "actor": actor[:200],
        "old_status": None if old_status is None else str(old_status),
        "new_status": None if new_status is None else str(new_status),
        "detail": dict(detail or {}),
    }


def trail(session: Session, email_key: str) -> list[AuditEntry]:
    """Every entry of an address, oldest first."""
    statement = (
        select(AuditEntry)
        .where(AuditEntry.email_key == email_key)
        .order_by(col(AuditEntry.at), col(AuditEntry.id))
    )
    return list(session.exec(statement))
