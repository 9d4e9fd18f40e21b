"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import digest.models
from digest.db import create_engine, current_revision, head_revision, upgrade
from digest.models import include_object


def test_upgrade_matches_models(empty_db_url: str) -> None:
    upgrade(empty_db_url)
    engine = create_engine(empty_db_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"include_object": include_object, "compare_type": True}
            )
            differences = compare_metadata(context, digest.models.metadata)
        assert differences == []
        assert current_revision(engine) == head_revision(empty_db_url)
        tables = set(sa.inspect(engine).get_table_names())
        assert {"comparison", "subscriber", "delivery", "edition", "webhook_event"} <= tables
    finally:
        engine.dispose()


def test_upgrade_is_idempotent(empty_db_url: str) -> None:
    upgrade(empty_db_url)
    upgrade(empty_db_url)
    engine = create_engine(empty_db_url)
    assert current_revision(engine) == head_revision(empty_db_url)
    engine.dispose()


def test_sqlite_pragmas(tmp_path: object) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/p.db")
    with engine.connect() as connection:
        pragma = {
            name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")
        }
    assert pragma == {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "busy_timeout": 30000,
        "synchronous": 1,
    }
    engine.dispose()
