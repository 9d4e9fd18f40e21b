"""click tracking: edition_link, click_hit, click_daily, subscriber.track_clicks

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import digest.db

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "edition_link",
        sa.Column("edition_id", sa.Integer(), nullable=False),
        sa.Column("link", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("comparison", sa.Integer(), nullable=True),
        sa.Column("tool", sa.String(length=120), nullable=True),
        sa.ForeignKeyConstraint(["edition_id"], ["edition.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("edition_id", "link"),
    )
    op.create_table(
        "click_hit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("edition_id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("link", sa.Integer(), nullable=False),
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
    op.create_index("ix_click_hit_edition_at", "click_hit", ["edition_id", "at"], unique=False)
    op.create_index(
        op.f("ix_click_hit_subscriber_id"), "click_hit", ["subscriber_id"], unique=False
    )
    op.create_table(
        "click_daily",
        sa.Column("edition_id", sa.Integer(), nullable=False),
        sa.Column("link", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("verdict", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["edition_id"], ["edition.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("edition_id", "link", "day", "verdict", "reason"),
    )
    # A plain ADD COLUMN (no batch copy of the table on SQLite: dropping the old copy would
    # set the audit log's subscriber ids to NULL through their ON DELETE SET NULL).
    op.add_column(
        "subscriber",
        sa.Column("track_clicks", sa.Boolean(), server_default=sa.true(), nullable=False),
    )


def downgrade() -> None:
    with op.batch_alter_table("subscriber") as batch:
        batch.drop_column("track_clicks")
    op.drop_table("click_daily")
    op.drop_index(op.f("ix_click_hit_subscriber_id"), table_name="click_hit")
    op.drop_index("ix_click_hit_edition_at", table_name="click_hit")
    op.drop_table("click_hit")
    op.drop_table("edition_link")
