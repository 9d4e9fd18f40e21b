"""email keys: IDNA 2008 domains and lower() instead of casefold()

Keys made before this revision case-folded the whole address, which merged different domains
(``straße.de`` with ``strasse.de``, ``σίσυφος.gr`` with ``σίσυφοσ.gr``). Each subscriber's key
is made again from its stored address by ``subscribers.normalize``; the suppression and
audit-log rows that carried the subscriber's old key follow it. The new keys cannot collide:
every old key was a case-folded form, and a new key is either its row's old key or not
case-folded at all. Suppressions without a subscriber keep their key (the address they came
from is not stored), so such an address stays suppressed under its folded spelling only.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SUBSCRIBER = sa.table(
    "subscriber", sa.column("id", sa.Integer), sa.column("email"), sa.column("email_key")
)
_SUPPRESSION = sa.table("suppression", sa.column("email_key"))
_AUDIT = sa.table("audit_log", sa.column("subscriber_id", sa.Integer), sa.column("email_key"))


def upgrade() -> None:
    from digest.errors import InputError
    from subscribers.normalize import email_key

    connection = op.get_bind()
    rows = connection.execute(
        sa.select(_SUBSCRIBER.c.id, _SUBSCRIBER.c.email, _SUBSCRIBER.c.email_key)
    ).all()
    for subscriber_id, email, old_key in rows:
        if email.rpartition("@")[2].isascii():
            continue  # an ASCII domain's key is the same by either rule
        try:
            new_key = email_key(email)
        except InputError:
            continue
        if new_key == old_key:
            continue
        connection.execute(
            sa.update(_SUBSCRIBER).where(_SUBSCRIBER.c.id == subscriber_id).values(email_key=new_key)
        )
        connection.execute(
            sa.update(_SUPPRESSION)
            .where(_SUPPRESSION.c.email_key == old_key)
            .values(email_key=new_key)
        )
        connection.execute(
            sa.update(_AUDIT)
            .where(_AUDIT.c.subscriber_id == subscriber_id, _AUDIT.c.email_key == old_key)
            .values(email_key=new_key)
        )


def downgrade() -> None:
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(_SUBSCRIBER.c.id, _SUBSCRIBER.c.email_key)
    ).all()
    for subscriber_id, key in rows:
        folded = key.casefold()
        if folded != key:
            connection.execute(
                sa.update(_SUBSCRIBER).where(_SUBSCRIBER.c.id == subscriber_id).values(email_key=folded)
            )
            connection.execute(
                sa.update(_SUPPRESSION).where(_SUPPRESSION.c.email_key == key).values(email_key=folded)
            )
            connection.execute(
                sa.update(_AUDIT)
                .where(_AUDIT.c.subscriber_id == subscriber_id, _AUDIT.c.email_key == key)
                .values(email_key=folded)
            )
