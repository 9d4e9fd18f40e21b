"""The delivery ledger: one ``Delivery`` row per (edition, subscriber), the single source of truth
of who was sent what.

States::

    pending ──claim──> claimed (worker, lease_expires_at) ──> sent | failed | unknown | skipped
       ^                   │
       └── lease expired ──┘

``unknown`` means the provider may have the message (a timeout after the request went out);
it is never resent automatically unless the backend deduplicates by idempotency key.

``attempt_started_at`` is set and committed before a row is handed to the provider and cleared
when the outcome is recorded. A claimed row whose lease expired with the marker still set was
in flight when its worker died: it becomes ``unknown`` rather than ``pending``, so a crash
never makes a recipient receive the edition twice. ``last_error`` says why a row failed, was
skipped (``unsubscribed``, ``suppressed``, ``cancelled``, ...) or is unknown.
"""

from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from digest.db import UTCDateTime, utcnow


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"
    SKIPPED = "skipped"


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
