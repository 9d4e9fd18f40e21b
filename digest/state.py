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
    row = session.get(ServiceState, key)
    if row is None:
        session.add(ServiceState(key=key, value=value))
    else:
        row.value = value
        row.updated_at = utcnow()
        session.add(row)
