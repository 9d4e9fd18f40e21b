"""Small service-wide facts kept in the database: the pause switch, heartbeats, leader leases.

A key-value table rather than one table per fact: each is a handful of rows, read and written
by the scheduler, the workers and the web app alike.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel

from digest.db import UTCDateTime, utcnow


class ServiceState(SQLModel, table=True):
    __tablename__ = "service_state"

    key: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    value: dict[str, Any] = Field(
        default_factory=dict, sa_column=sa.Column(sa.JSON, nullable=False)
    )
    updated_at: dt.datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime, nullable=False)
    )


def read_state(session: Session, key: str) -> dict[str, Any] | None:
    row = session.get(ServiceState, key)
    return dict(row.value) if row is not None else None


def write_state(session: Session, key: str, value: dict[str, Any]) -> None:
    """Set ``key`` to ``value`` with one upsert.

    A single write statement, not a read then a write: on SQLite a transaction that read first
    cannot upgrade to a write lock while another process writes (it fails at once with
    "database is locked" instead of waiting), and the scheduler, the workers and APScheduler's
    job store all write to the same file.
    """
    session.flush()
    table = ServiceState.__table__  # type: ignore[attr-defined]
    now = utcnow()
    dialect = session.get_bind().dialect.name
    upsert: sa.Executable
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        pg = postgresql.insert(table).values(key=key, value=value, updated_at=now)
        upsert = pg.on_conflict_do_update(index_elements=[table.c.key], set_=_changes(pg))
    elif dialect == "sqlite":
        from sqlalchemy.dialects import sqlite

        lite = sqlite.insert(table).values(key=key, value=value, updated_at=now)
        upsert = lite.on_conflict_do_update(index_elements=[table.c.key], set_=_changes(lite))
    else:  # pragma: no cover - only the two supported databases
        raise NotImplementedError(f"unsupported database dialect {dialect!r}")
    session.execute(upsert)
    session.expire_all()


def _changes(statement: Any) -> dict[str, Any]:
    return {"value": statement.excluded.value, "updated_at": statement.excluded.updated_at}
