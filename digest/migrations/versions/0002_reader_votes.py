"""reader votes: vote, vote_event, subscriber.vote_links

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import digest.db

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "vote",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("comparison_id", sa.Integer(), nullable=False),
        sa.Column("tool_slug", sa.String(length=120), nullable=False),
        sa.Column("edition_id", sa.Integer(), nullable=True),
        sa.Column("choice", sa.String(length=4), nullable=False),
        sa.Column("created_at", digest.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", digest.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["comparison_id"], ["comparison.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["edition_id"], ["edition.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscriber.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subscriber_id", "comparison_id", "tool_slug"),
    )
    op.create_index(op.f("ix_vote_comparison_id"), "vote", ["comparison_id"], unique=False)
    op.create_index(op.f("ix_vote_subscriber_id"), "vote", ["subscriber_id"], unique=False)
    op.create_index(op.f("ix_vote_updated_at"), "vote", ["updated_at"], unique=False)
    op.create_table(
        "vote_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("comparison_id", sa.Integer(), nullable=False),
        sa.Column("tool_slug", sa.String(length=120), nullable=False),
        sa.Column("edition_id", sa.Integer(), nullable=True),
        sa.Column("choice", sa.String(length=4), nullable=False),
        sa.Column("at", digest.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("network", sa.String(length=64), nullable=False),
        sa.Column("user_agent", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["comparison_id"], ["comparison.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["edition_id"], ["edition.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscriber.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_vote_event_subscriber_id"), "vote_event", ["subscriber_id"], unique=False
    )
    with op.batch_alter_table("subscriber") as batch:
        batch.add_column(
            sa.Column("vote_links", sa.Boolean(), server_default=sa.true(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("subscriber") as batch:
        batch.drop_column("vote_links")
    op.drop_index(op.f("ix_vote_event_subscriber_id"), table_name="vote_event")
    op.drop_table("vote_event")
    op.drop_index(op.f("ix_vote_updated_at"), table_name="vote")
    op.drop_index(op.f("ix_vote_subscriber_id"), table_name="vote")
    op.drop_index(op.f("ix_vote_comparison_id"), table_name="vote")
    op.drop_table("vote")
