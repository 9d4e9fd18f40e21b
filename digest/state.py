"""Small service-wide facts kept in the database: the pause switch, heartbeats, leader leases.

A key-value table rather than one table per fact: each is a handful of rows, read and written
by the scheduler, the workers and the web app alike.

Read and written with SQLAlchemy Core on ``SERVICE_STATE``, a table clause naming the columns
(the table itself, ``ServiceState``, is declared with the other models in ``digest.models``; a
test holds the two together): ``digest status`` and the pause switch then need no ORM.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from digest.db import UTCDateTime, core_connection, utcnow

if TYPE_CHECKING:
    from sqlmodel import Session

SERVICE_STATE = sa.table(
    "service_state",
    sa.column("key", sa.String(64)),
    sa.column("value", sa.JSON),
    sa.column("updated_at", UTCDateTime),
)


def read_state(db: Session | Connection, key: str) -> dict[str, Any] | None:
    """The value stored under ``key``, or None; in the transaction of ``db``."""
    value = (
        _connection(db)
        .execute(sa.select(SERVICE_STATE.c.value).where(SERVICE_STATE.c.key == key))
        .scalar()
    )
    return None if value is None else dict(value)


def write_state(db: Session | Connection, key: str, value: dict[str, Any]) -> None:
    """Set ``key`` to ``value`` with one upsert, in the transaction of ``db``.

    A single write statement, not a read then a write: on SQLite a transaction that read first
    cannot upgrade to a write lock while another process writes (it fails at once with
    "database is locked" instead of waiting), and the scheduler, the workers and APScheduler's
    job store all write to the same file.
    """
    connection = _connection(db)
    table = SERVICE_STATE
    now = utcnow()
    dialect = connection.dialect.name
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
    connection.execute(upsert)


def _connection(db: Session | Connection) -> Connection:
    """A Core connection: ``db`` itself, or the session's (its pending changes flushed first)."""
    return db if isinstance(db, Connection) else core_connection(db)


def _changes(statement: Any) -> dict[str, Any]:
    return {"value": statement.excluded.value, "updated_at": statement.excluded.updated_at}
