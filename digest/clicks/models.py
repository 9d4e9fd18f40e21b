"""The tracked-link tables: each edition's frozen link table, every hit on a tracked link, and
every fetch of an open pixel.

``edition_link`` is written once, when the edition is created (``digest.render.links`` numbers
the links); the redirect reads its target from here, never from the URL. ``click_hit`` keeps
every hit raw: time, link, method, user agent and the client's network (an IPv4 /24 or IPv6
/48, never the full address), with the classification (``human`` or ``automated``) and the rule
that decided it (``digest.clicks.rules``). Hits go with their subscriber (an erasure) or
edition; raw hits older than the retention are folded into ``click_daily`` counts.

Opens are kept apart, in ``open_hit`` and ``open_daily``, with the same fields but no link:
a pixel fetch is never a click, so no click figure or rule can count one by mistake.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from digest.db import UTCDateTime, utcnow


class EditionLink(SQLModel, table=True):
    __tablename__ = "edition_link"

    edition_id: int = Field(
        sa_column=sa.Column(
            sa.ForeignKey("edition.id", ondelete="CASCADE"), primary_key=True, nullable=False
        )
    )
    link: int = Field(sa_column=sa.Column(sa.Integer, primary_key=True, nullable=False))
    kind: str = Field(sa_column=sa.Column(sa.String(12), nullable=False))
    url: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    comparison: int | None = Field(default=None, sa_column=sa.Column(sa.Integer, nullable=True))
    tool: str | None = Field(default=None, sa_column=sa.Column(sa.String(120), nullable=True))


class ClickHit(SQLModel, table=True):
    __tablename__ = "click_hit"
    __table_args__ = (sa.Index("ix_click_hit_edition_at", "edition_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    edition_id: int = Field(
        sa_column=sa.Column(sa.ForeignKey("edition.id", ondelete="CASCADE"), nullable=False)
    )
    subscriber_id: int = Field(
        sa_column=sa.Column(
            sa.ForeignKey("subscriber.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    link: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    at: dt.datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime, nullable=False)
    )
    method: str = Field(default="GET", sa_column=sa.Column(sa.String(8), nullable=False))
    user_agent: str = Field(default="", sa_column=sa.Column(sa.String(200), nullable=False))
    network: str = Field(default="", sa_column=sa.Column(sa.String(64), nullable=False))
    verdict: str = Field(default="", sa_column=sa.Column(sa.String(10), nullable=False))
    reason: str = Field(default="", sa_column=sa.Column(sa.String(20), nullable=False))


class ClickDaily(SQLModel, table=True):
    """Hits older than the retention, counted per edition, link, UTC day and classification."""

    __tablename__ = "click_daily"

    edition_id: int = Field(
        sa_column=sa.Column(
            sa.ForeignKey("edition.id", ondelete="CASCADE"), primary_key=True, nullable=False
        )
    )
    link: int = Field(sa_column=sa.Column(sa.Integer, primary_key=True, nullable=False))
    day: dt.date = Field(sa_column=sa.Column(sa.Date, primary_key=True, nullable=False))
    verdict: str = Field(sa_column=sa.Column(sa.String(10), primary_key=True, nullable=False))
    reason: str = Field(sa_column=sa.Column(sa.String(20), primary_key=True, nullable=False))
    hits: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False))


class OpenHit(SQLModel, table=True):
    """One fetch of an edition's open pixel (classified when stored: ``rules.classify_open``)."""

    __tablename__ = "open_hit"
    __table_args__ = (sa.Index("ix_open_hit_edition_at", "edition_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    edition_id: int = Field(
        sa_column=sa.Column(sa.ForeignKey("edition.id", ondelete="CASCADE"), nullable=False)
    )
    subscriber_id: int = Field(
        sa_column=sa.Column(
            sa.ForeignKey("subscriber.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    at: dt.datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime, nullable=False)
    )
    method: str = Field(default="GET", sa_column=sa.Column(sa.String(8), nullable=False))
    user_agent: str = Field(default="", sa_column=sa.Column(sa.String(200), nullable=False))
    network: str = Field(default="", sa_column=sa.Column(sa.String(64), nullable=False))
    verdict: str = Field(default="", sa_column=sa.Column(sa.String(10), nullable=False))
    reason: str = Field(default="", sa_column=sa.Column(sa.String(20), nullable=False))


class OpenDaily(SQLModel, table=True):
    """Pixel fetches older than the retention, counted per edition, UTC day and
    classification."""

    __tablename__ = "open_daily"

    edition_id: int = Field(
        sa_column=sa.Column(
            sa.ForeignKey("edition.id", ondelete="CASCADE"), primary_key=True, nullable=False
        )
    )
    day: dt.date = Field(sa_column=sa.Column(sa.Date, primary_key=True, nullable=False))
    verdict: str = Field(sa_column=sa.Column(sa.String(10), primary_key=True, nullable=False))
    reason: str = Field(sa_column=sa.Column(sa.String(20), primary_key=True, nullable=False))
    hits: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False))
