"""The delivery ledger read with SQLAlchemy Core, without the ORM: the states a ledger row can
be in, and a table clause naming the columns that read-only reports select.

``digest status`` counts the ledger through this module, so that it starts without loading
the ORM and the models. The table itself is the ``Delivery`` model
(``digest.delivery.models``), and ``digest.delivery.ledger`` remains the only module that
changes a row; a test holds the clause and the model together.
"""

from __future__ import annotations

import enum

import sqlalchemy as sa

from digest.db import UTCDateTime


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"
    SKIPPED = "skipped"
    DEFERRED = "deferred"


DELIVERY_COLUMNS = sa.table(
    "delivery",
    sa.column("id", sa.Integer),
    sa.column("edition_id", sa.Integer),
    sa.column("state", sa.String(16)),
    sa.column("zone", sa.String(64)),
    sa.column("not_before", UTCDateTime),
    sa.column("sent_at", UTCDateTime),
)
