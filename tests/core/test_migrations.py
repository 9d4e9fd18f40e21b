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


def test_email_keys_are_made_again_by_the_idna_2008_rule(empty_db_url: str) -> None:
    """Rows keyed by the old case-folding rule get the new keys; their suppression and audit
    rows follow; ASCII addresses are untouched."""
    upgrade(empty_db_url, "0002")
    engine = create_engine(empty_db_url)
    now = "2026-01-01 00:00:00"
    rows = [
        (1, "anna@straße.de", "anna@strasse.de"),
        (2, "a@σίσυφος.gr", "a@σίσυφοσ.gr"),
        (3, "Ada@Example.com", "ada@example.com"),
        (4, "ada@bücher.example", "ada@bücher.example"),
    ]
    try:
        with engine.begin() as connection:
            for subscriber_id, email, key in rows:
                connection.execute(
                    sa.text(
                        "INSERT INTO subscriber (id, email, email_key, name, timezone,"
                        " categories, status, paused, source, created_at, updated_at)"
                        " VALUES (:id, :email, :key, '', 'UTC', '[]', 'unsubscribed', false,"
                        " 'test', :now, :now)"
                    ),
                    {"id": subscriber_id, "email": email, "key": key, "now": now},
                )
                connection.execute(
                    sa.text(
                        "INSERT INTO audit_log (subscriber_id, email_key, at, action, cause,"
                        " actor, detail) VALUES (:id, :key, :now, 'unsubscribe', 'link', 't',"
                        " '{}')"
                    ),
                    {"id": subscriber_id, "key": key, "now": now},
                )
            connection.execute(
                sa.text(
                    "INSERT INTO suppression (email_key, reason, detail, created_at)"
                    " VALUES ('anna@strasse.de', 'unsubscribed', '', :now)"
                ),
                {"now": now},
            )
        upgrade(empty_db_url)
        with engine.connect() as connection:
            keys = dict(connection.execute(sa.text("SELECT id, email_key FROM subscriber")).all())
            audit = dict(
                connection.execute(sa.text("SELECT subscriber_id, email_key FROM audit_log")).all()
            )
            suppressed = connection.execute(sa.text("SELECT email_key FROM suppression")).all()
        expected = {
            1: "anna@straße.de",
            2: "a@σίσυφος.gr",
            3: "ada@example.com",
            4: "ada@bücher.example",
        }
        assert keys == expected and audit == expected
        assert suppressed == [("anna@straße.de",)]
    finally:
        engine.dispose()


def test_link_tables_frozen_before_open_tracking_get_their_pixel(empty_db_url: str) -> None:
    """An edition's table frozen under 0008 gains the open entry after its last link, once."""
    upgrade(empty_db_url, "0008")
    engine = create_engine(empty_db_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO edition (id, newsletter, week, status, subject, created_at,"
                    " ledger_complete) VALUES (5, 'n', '2026-W47', 'sent', 's',"
                    " '2026-11-23 08:00:00', true)"
                )
            )
            for link, kind, url in (
                (0, "honeypot", "https://verdicts.example.com/"),
                (1, "comparison", "https://verdicts.example.com/compare/a"),
                (2, "tool", "https://alpha.example"),
            ):
                connection.execute(
                    sa.text(
                        "INSERT INTO edition_link (edition_id, link, kind, url)"
                        " VALUES (5, :link, :kind, :url)"
                    ),
                    {"link": link, "kind": kind, "url": url},
                )
        upgrade(empty_db_url)
        upgrade(empty_db_url)
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text("SELECT link, kind, url FROM edition_link ORDER BY link")
            ).all()
        assert [tuple(row) for row in rows][-1] == (3, "open", "https://verdicts.example.com/")
        assert len(rows) == 4
    finally:
        engine.dispose()
