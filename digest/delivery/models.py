"""The delivery ledger: one ``Delivery`` row per (edition, subscriber), the single source of truth
of who was sent what.

The states and their transitions are drawn in ``digest.delivery.ledger``, the only module that
changes a row. ``not_before`` is when a ``deferred`` row may be tried again; ``retry_until`` is
the end of its retry window (set at its first deferral). ``attempt_started_at`` marks a row in
flight; ``last_error`` says why a row failed, was skipped, deferred or is unknown.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from digest.db import UTCDateTime, utcnow
from digest.delivery.table import DeliveryState

__all__ = ["Delivery", "DeliveryState"]


class Delivery(SQLModel, table=True):
    __tablename__ = "delivery"
    __table_args__ = (
        sa.UniqueConstraint("edition_id", "subscriber_id"),
        # Claims read "pending rows of an edition in id order": this index answers them directly.
        sa.Index("ix_delivery_edition_state", "edition_id", "state", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    edition_id: int = Field(
        sa_column=sa.Column(sa.ForeignKey("edition.id", ondelete="CASCADE"), nullable=False)
    )
    subscriber_id: int | None = Field(
        default=None,
        sa_column=sa.Column(
            sa.ForeignKey("subscriber.id", ondelete="SET NULL"), nullable=True, index=True
        ),
    )
    email: str = Field(sa_column=sa.Column(sa.String(320), nullable=False))
    variant: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    state: DeliveryState = Field(
        default=DeliveryState.PENDING, sa_column=sa.Column(sa.String(16), nullable=False)
    )
    attempts: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False))
    worker: str | None = Field(default=None, sa_column=sa.Column(sa.String(120)))
    lease_expires_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))
    not_before: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))
    retry_until: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))
    # Local-time delivery: the subscriber's ``timezone`` that ``not_before`` was computed
    # from (None: an at-once row); a claim reschedules a pending row whose subscriber moved.
    zone: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    attempt_started_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))
    message_id: str = Field(sa_column=sa.Column(sa.String(250), nullable=False, unique=True))
    provider_message_id: str | None = Field(
        default=None, sa_column=sa.Column(sa.String(250), index=True)
    )
    last_error: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    provider_status: str | None = Field(default=None, sa_column=sa.Column(sa.String(32)))
    created_at: dt.datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime, nullable=False)
    )
    updated_at: dt.datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime, nullable=False)
    )
    sent_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))
