"""vote tally index: count a comparison's votes from the index alone

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_vote_tally", "vote", ["comparison_id", "tool_slug", "choice", "updated_at"]
    )
    op.drop_index("ix_vote_comparison_id", table_name="vote")


def downgrade() -> None:
    op.create_index("ix_vote_comparison_id", "vote", ["comparison_id"])
    op.drop_index("ix_vote_tally", table_name="vote")
