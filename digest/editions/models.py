"""An ``Edition`` is one newsletter's issue for one ISO week, created at most once.

``(newsletter, week)`` is unique, so a job fired twice creates one edition. The comparisons it
carries are frozen in ``EditionComparison`` together with a snapshot of their content at the
moment the edition was built: a later edit of a comparison does not change what was sent.

``ledger_complete`` turns true once a delivery row exists for every recipient; until then any
process that opens the edition finishes building the ledger (inserts are idempotent), so a crash
between creating the edition and writing its last ledger row loses nobody.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from digest.db import UTCDateTime, utcnow
from digest.editions.table import EditionStatus

__all__ = ["Edition", "EditionComparison", "EditionStatus"]


class Edition(SQLModel, table=True):
    __tablename__ = "edition"
    __table_args__ = (sa.UniqueConstraint("newsletter", "week"),)

    id: int | None = Field(default=None, primary_key=True)
    newsletter: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    week: str = Field(sa_column=sa.Column(sa.String(8), nullable=False))
    status: EditionStatus = Field(
        default=EditionStatus.SENDING, sa_column=sa.Column(sa.String(16), nullable=False)
    )
    subject: str = Field(default="", sa_column=sa.Column(sa.String(500), nullable=False))
    ledger_complete: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False))
    created_at: dt.datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime, nullable=False)
    )
    completed_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))
    cancelled_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))


class EditionComparison(SQLModel, table=True):
    __tablename__ = "edition_comparison"
    __table_args__ = (sa.UniqueConstraint("edition_id", "position"),)

    edition_id: int = Field(
        sa_column=sa.Column(
            sa.ForeignKey("edition.id", ondelete="CASCADE"), primary_key=True, nullable=False
        )
    )
    comparison_id: int = Field(
        sa_column=sa.Column(
            sa.ForeignKey("comparison.id", ondelete="RESTRICT"),
            primary_key=True,
            nullable=False,
            index=True,
        )
    )
    position: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    snapshot: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
