"""The vote tables: one current vote per (subscriber, comparison, tool), and every press of a
vote button as an event.

``vote`` holds the answer that counts: a changed vote overwrites it (the last one counts), and
the unique key makes concurrent presses of one button leave one row. Tools are keyed by slug,
not by row id: re-importing a comparison rebuilds its tool rows, and votes must survive that.
``vote_event`` keeps each press with its time, the client's network (an IPv4 /24 or IPv6 /48,
never the full address) and user agent, so that presses of one subscriber's links from several
networks (a forwarded email) can be shown. Both go when the subscriber row is deleted (an
erasure); an unsubscribe keeps them.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from digest.db import UTCDateTime, utcnow


class Vote(SQLModel, table=True):
    __tablename__ = "vote"
    __table_args__ = (
        sa.UniqueConstraint("subscriber_id", "comparison_id", "tool_slug"),
        # Counting a comparison's votes reads this index only, not the rows.
        sa.Index("ix_vote_tally", "comparison_id", "tool_slug", "choice", "updated_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(
        sa_column=sa.Column(
            sa.ForeignKey("subscriber.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    comparison_id: int = Field(
        sa_column=sa.Column(sa.ForeignKey("comparison.id", ondelete="CASCADE"), nullable=False)
    )
    tool_slug: str = Field(sa_column=sa.Column(sa.String(120), nullable=False))
    edition_id: int | None = Field(
        default=None,
        sa_column=sa.Column(sa.ForeignKey("edition.id", ondelete="SET NULL"), nullable=True),
    )
    choice: str = Field(sa_column=sa.Column(sa.String(4), nullable=False))
    created_at: dt.datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime, nullable=False)
    )
    updated_at: dt.datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime, nullable=False, index=True)
    )


class VoteEvent(SQLModel, table=True):
    __tablename__ = "vote_event"

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(
        sa_column=sa.Column(
            sa.ForeignKey("subscriber.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    comparison_id: int = Field(
        sa_column=sa.Column(sa.ForeignKey("comparison.id", ondelete="CASCADE"), nullable=False)
    )
    tool_slug: str = Field(sa_column=sa.Column(sa.String(120), nullable=False))
    edition_id: int | None = Field(
        default=None,
        sa_column=sa.Column(sa.ForeignKey("edition.id", ondelete="SET NULL"), nullable=True),
    )
    choice: str = Field(sa_column=sa.Column(sa.String(4), nullable=False))
    at: dt.datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime, nullable=False)
    )
    network: str = Field(default="", sa_column=sa.Column(sa.String(64), nullable=False))
    user_agent: str = Field(default="", sa_column=sa.Column(sa.String(200), nullable=False))
