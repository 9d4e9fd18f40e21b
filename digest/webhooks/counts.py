"""Provider events of an edition, counted by type, for ``digest status`` and the edition
report.

Read with SQLAlchemy Core through a table clause naming the two columns it needs (the table
itself is the ``WebhookEvent`` model; a test holds the two together), so that ``digest status``
starts without loading the ORM and the models.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from digest.delivery.table import DELIVERY_COLUMNS

WEBHOOK_EVENT_COLUMNS = sa.table(
    "webhook_event",
    sa.column("event_type", sa.String(32)),
    sa.column("delivery_id", sa.Integer),
)


def webhook_counts(connection: Connection, edition_id: int) -> dict[str, int]:
    """Provider events (delivered, bounced, ...) matched to this edition's rows, by type."""
    event, delivery = WEBHOOK_EVENT_COLUMNS, DELIVERY_COLUMNS
    rows = connection.execute(
        sa.select(event.c.event_type, sa.func.count())
        .select_from(event.join(delivery, delivery.c.id == event.c.delivery_id))
        .where(delivery.c.edition_id == edition_id)
        .group_by(event.c.event_type)
    )
    return {str(event_type): int(count) for event_type, count in rows}
