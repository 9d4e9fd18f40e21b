"""open tracking: open_hit, open_daily, and the open pixel in every frozen link table

Revision ID: 0009
Revises: 0008

An edition's link table ends with its open pixel (``digest.render.links.link_table``); tables
frozen before it existed get it here, numbered after their last link, so that the renderer's
table and the stored one agree when such an edition is sent with open tracking on.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import digest.db

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "open_hit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("edition_id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("at", digest.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("user_agent", sa.String(length=200), nullable=False),
        sa.Column("network", sa.String(length=64), nullable=False),
        sa.Column("verdict", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.ForeignKeyConstraint(["edition_id"], ["edition.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscriber.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_open_hit_edition_at", "open_hit", ["edition_id", "at"], unique=False)
    op.create_index(op.f("ix_open_hit_subscriber_id"), "open_hit", ["subscriber_id"], unique=False)
    op.create_table(
        "open_daily",
        sa.Column("edition_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("verdict", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["edition_id"], ["edition.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("edition_id", "day", "verdict", "reason"),
    )
    op.execute(
        "INSERT INTO edition_link (edition_id, link, kind, url)"
        " SELECT pot.edition_id,"
        " (SELECT max(last.link) + 1 FROM edition_link last"
        " WHERE last.edition_id = pot.edition_id), 'open', pot.url"
        " FROM edition_link pot WHERE pot.link = 0 AND NOT EXISTS"
        " (SELECT 1 FROM edition_link o WHERE o.edition_id = pot.edition_id AND o.kind = 'open')"
    )


def downgrade() -> None:
    op.execute("DELETE FROM edition_link WHERE kind = 'open'")
    op.drop_table("open_daily")
    op.drop_index(op.f("ix_open_hit_subscriber_id"), table_name="open_hit")
    op.drop_index("ix_open_hit_edition_at", table_name="open_hit")
    op.drop_table("open_hit")
