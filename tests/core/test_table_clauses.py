"""The table clauses that read without the ORM (``digest status``) name columns the models
declare, with the same types: the models stay the one definition of the schema."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

import digest.models
from digest.delivery.table import DELIVERY_COLUMNS, DeliveryState
from digest.editions.table import EDITION_COLUMNS, EditionStatus
from digest.state import SERVICE_STATE
from digest.webhooks.counts import WEBHOOK_EVENT_COLUMNS

CLAUSES = (SERVICE_STATE, EDITION_COLUMNS, DELIVERY_COLUMNS, WEBHOOK_EVENT_COLUMNS)


def _shape(column: sa.ColumnElement[object]) -> tuple[type, int | None]:
    return type(column.type), getattr(column.type, "length", None)


@pytest.mark.parametrize("clause", CLAUSES, ids=lambda clause: clause.name)
def test_a_table_clause_names_the_columns_of_its_model(clause: sa.TableClause) -> None:
    table = digest.models.metadata.tables[clause.name]
    for column in clause.columns:
        assert column.name in table.columns, f"{clause.name}.{column.name} is not in the model"
        declared = table.columns[column.name]
        assert _shape(column) == _shape(declared), f"{clause.name}.{column.name}"


def test_the_state_enums_are_the_models_own() -> None:
    """The models re-export the statuses from the light modules: one definition each."""
    assert digest.models.DeliveryState is DeliveryState
    assert digest.models.EditionStatus is EditionStatus
