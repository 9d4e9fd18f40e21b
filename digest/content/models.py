"""Stored comparisons: a ``Comparison`` owns its ``Tool`` rows, and each tool its ``Review`` rows.

The rows mirror the validated document (``digest.content.schema``) one to one. ``content_hash``
is the SHA-256 of the document's canonical form, so a re-import can tell "unchanged" from
"updated" without comparing every field.
"""

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field, Relationship, SQLModel

from digest.db import UTCDateTime, utcnow


class Comparison(SQLModel, table=True):
    __tablename__ = "comparison"

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(sa_column=sa.Column(sa.String(120), nullable=False, unique=True))
    title: str = Field(sa_column=sa.Column(sa.String(300), nullable=False))
    summary: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    published_at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False, index=True))
    url: str = Field(sa_column=sa.Column(sa.String(2000), nullable=False))
    content_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    source: str = Field(sa_column=sa.Column(sa.String(2000), nullable=False))
    created_at: dt.datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime, nullable=False)
    )
    updated_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))

    tools: list["Tool"] = Relationship(
        back_populates="comparison",
        sa_relationship_kwargs={
            "order_by": "Tool.position",
            "cascade": "all, delete-orphan",
            "lazy": "selectin",
        },
    )


class Tool(SQLModel, table=True):
    __tablename__ = "tool"
    __table_args__ = (sa.UniqueConstraint("comparison_id", "slug"),)

    id: int | None = Field(default=None, primary_key=True)
    comparison_id: int | None = Field(
        default=None,
        sa_column=sa.Column(
            sa.ForeignKey("comparison.id", ondelete="CASCADE"), nullable=False, index=True
        ),
    )
    position: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    slug: str = Field(sa_column=sa.Column(sa.String(120), nullable=False))
    name: str = Field(sa_column=sa.Column(sa.String(120), nullable=False))
    category: str = Field(sa_column=sa.Column(sa.String(60), nullable=False, index=True))
    tagline: str = Field(sa_column=sa.Column(sa.String(200), nullable=False))
    description: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    pricing: str = Field(sa_column=sa.Column(sa.String(300), nullable=False))
    entry_price: str = Field(sa_column=sa.Column(sa.String(40), nullable=False))
    url: str | None = Field(default=None, sa_column=sa.Column(sa.String(2000)))
    community_up: int | None = Field(default=None, sa_column=sa.Column(sa.Integer))
    community_down: int | None = Field(default=None, sa_column=sa.Column(sa.Integer))

    comparison: Comparison | None = Relationship(back_populates="tools")
    reviews: list["Review"] = Relationship(
        back_populates="tool",
        sa_relationship_kwargs={
            "order_by": "Review.position",
            "cascade": "all, delete-orphan",
            "lazy": "selectin",
        },
    )


class Review(SQLModel, table=True):
    __tablename__ = "review"
    __table_args__ = (sa.UniqueConstraint("tool_id", "persona"),)

    id: int | None = Field(default=None, primary_key=True)
    tool_id: int | None = Field(
        default=None,
        sa_column=sa.Column(
            sa.ForeignKey("tool.id", ondelete="CASCADE"), nullable=False, index=True
        ),
    )
    position: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    persona: str = Field(sa_column=sa.Column(sa.String(40), nullable=False))
    score: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    verdict: str = Field(sa_column=sa.Column(sa.String(4), nullable=False))
    text: str = Field(sa_column=sa.Column(sa.Text, nullable=False))

    tool: Tool | None = Relationship(back_populates="reviews")
