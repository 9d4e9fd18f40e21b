"""Subscriber rows, the address-level suppression list, and the audit log of every change.

``email`` keeps the address as given (trimmed, domain lowercased and IDNA-decoded);
``email_key`` is its case-folded form and carries the uniqueness, so ``Ada@Example.com`` and
``ada@example.com`` are one subscriber. The suppression list is keyed the same way and has no
foreign key to ``subscriber``: it outlives the subscriber row on purpose.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from digest.db import UTCDateTime, utcnow


class Status(enum.StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


class Cause(enum.StrEnum):
    """Why a subscriber's state or preferences changed (the audit log's ``cause``)."""

    SIGNUP = "signup"
    CONFIRM = "confirm"
    LINK = "link"
    ONE_CLICK = "one-click"
    PREFERENCE_PAGE = "preference-page"
    BOUNCE = "bounce"
    COMPLAINT = "complaint"
    ADMIN = "admin"
    IMPORT = "import"


class SuppressionReason(enum.StrEnum):
    """Why an address is suppressed, weakest first: a stronger reason replaces a weaker one."""

    UNSUBSCRIBED = "unsubscribed"
    ADMIN = "admin"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


class Subscriber(SQLModel, table=True):
    __tablename__ = "subscriber"
    # Never reuse the id of a deleted row on SQLite: links signed with an old id (unsubscribe,
    # preferences) must not start acting on somebody else.
    __table_args__ = {"sqlite_autoincrement": True}

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(sa_column=sa.Column(sa.String(320), nullable=False))
    email_key: str = Field(sa_column=sa.Column(sa.String(320), nullable=False, unique=True))
    name: str = Field(default="", sa_column=sa.Column(sa.String(200), nullable=False))
    # The name the greeting uses when the subscriber gave one (else derived from ``name``).
    first_name: str = Field(
        default="", sa_column=sa.Column(sa.String(200), nullable=False, server_default="")
    )
    timezone: str = Field(default="UTC", sa_column=sa.Column(sa.String(64), nullable=False))
    categories: list[str] = Field(
        default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False)
    )
    status: Status = Field(
        default=Status.PENDING,
        sa_column=sa.Column(sa.String(16), nullable=False, index=True),
    )
    paused: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False))
    # "Would you ship it?" links in the cards; the subscriber may turn them off.
    vote_links: bool = Field(
        default=True,
        sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.true()),
    )
    # Tracked content links (DIGEST_TRACK_CLICKS); the subscriber may turn them off.
    track_clicks: bool = Field(
        default=True,
        sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.true()),
    )
    source: str = Field(default="", sa_column=sa.Column(sa.String(200), nullable=False))
    created_at: dt.datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime, nullable=False)
    )
    updated_at: dt.datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime, nullable=False)
    )
    confirmed_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))
    unsubscribed_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))
    confirmation_sent_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))


class Suppression(SQLModel, table=True):
    """An address that must never be mailed again, whatever happens to its subscriber row."""

    __tablename__ = "suppression"

    id: int | None = Field(default=None, primary_key=True)
    email_key: str = Field(sa_column=sa.Column(sa.String(320), nullable=False, unique=True))
    reason: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
    detail: str = Field(default="", sa_column=sa.Column(sa.Text, nullable=False))
    created_at: dt.datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime, nullable=False)
    )


class AuditEntry(SQLModel, table=True):
    """One change of a subscriber's status or preferences: when, why, by whom, from what to what."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int | None = Field(
        default=None,
        sa_column=sa.Column(
            sa.ForeignKey("subscriber.id", ondelete="SET NULL"), nullable=True, index=True
        ),
    )
    email_key: str = Field(sa_column=sa.Column(sa.String(320), nullable=False, index=True))
    at: dt.datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime, nullable=False)
    )
    action: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
    cause: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
    actor: str = Field(sa_column=sa.Column(sa.String(200), nullable=False))
    old_status: str | None = Field(default=None, sa_column=sa.Column(sa.String(16)))
    new_status: str | None = Field(default=None, sa_column=sa.Column(sa.String(16)))
    detail: dict[str, Any] = Field(
        default_factory=dict, sa_column=sa.Column(sa.JSON, nullable=False)
    )
