"""Every table of digest, imported in one place so that ``SQLModel.metadata`` is complete.

Alembic's environment and the schema tests import this module; application code imports the
models from the package that owns them. ``ServiceState`` is declared here: ``digest.state``
reads and writes its table with Core alone, through a table clause that a test compares with
this model.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel

from digest.clicks.models import ClickDaily, ClickHit, EditionLink, OpenDaily, OpenHit
from digest.content.models import Comparison, Review, Tool
from digest.db import UTCDateTime, alembic_config, utcnow
from digest.delivery.models import Delivery, DeliveryState
from digest.editions.models import Edition, EditionComparison, EditionStatus
from digest.votes.models import Vote, VoteEvent
from digest.webhooks.models import WebhookEvent
from subscribers.models import AuditEntry, Subscriber, Suppression


class ServiceState(SQLModel, table=True):
    """The key-value facts of ``digest.state``."""

    __tablename__ = "service_state"

    key: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    value: dict[str, Any] = Field(
        default_factory=dict, sa_column=sa.Column(sa.JSON, nullable=False)
    )
    updated_at: dt.datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime, nullable=False)
    )


metadata = SQLModel.metadata

# Tables other libraries own (APScheduler's job store) are not ours to migrate or compare.
FOREIGN_TABLES = frozenset({"apscheduler_jobs"})


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Alembic filter: leave tables that belong to other libraries alone."""
    return not (type_ == "table" and name in FOREIGN_TABLES)


def create_schema(engine: Engine) -> None:
    """Every table at once, stamped with the latest revision: where ``digest db upgrade``
    arrives, only faster (tests and benchmarks build many databases). A test checks the
    migrations against these models, so both ways give the same schema."""
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    metadata.create_all(engine)
    script = ScriptDirectory.from_config(alembic_config(engine.url.render_as_string(False)))
    with engine.begin() as connection:
        MigrationContext.configure(connection).stamp(script, "heads")


__all__ = [
    "AuditEntry",
    "ClickDaily",
    "ClickHit",
    "Comparison",
    "Delivery",
    "DeliveryState",
    "Edition",
    "EditionComparison",
    "EditionLink",
    "EditionStatus",
    "OpenDaily",
    "OpenHit",
    "Review",
    "ServiceState",
    "Subscriber",
    "Suppression",
    "Tool",
    "Vote",
    "VoteEvent",
    "WebhookEvent",
    "include_object",
    "metadata",
]
