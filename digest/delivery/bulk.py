"""Bulk writes through the DB-API ``executemany``, for the two hot statements of a send:
writing the ledger and recording a call's outcomes.

SQLAlchemy's own ``executemany`` converts every parameter of every row in Python, which costs
several times the database work itself for these narrow, repetitive rows (measured: 46 ms
against 7 ms to record 500 outcomes on SQLite). Here the statement is written once with ``?``
placeholders and adapted to the driver's style; values that need a conversion (timestamps)
are converted once per batch with the column type's own processor, so what is stored is
exactly what SQLAlchemy would have stored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def driver_sql(connection: Connection, sql: str) -> str:
    """``sql`` written with ``?`` placeholders, in the driver's paramstyle (qmark or format)."""
    if connection.dialect.paramstyle == "qmark":
        return sql
    return sql.replace("%", "%%").replace("?", "%s")


def db_timestamp(connection: Connection, column: sa.Column[Any], moment: dt.datetime) -> Any:
    """``moment`` as the driver receives it for ``column`` (the column type's bind processor)."""
    processor = column.type.dialect_impl(connection.dialect).bind_processor(connection.dialect)
    return processor(moment) if processor is not None else moment


def executemany(connection: Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """Run ``sql`` (``?`` placeholders) once per row, in the caller's transaction."""
    if rows:
        connection.exec_driver_sql(driver_sql(connection, sql), list(map(tuple, rows)))
