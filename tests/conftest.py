"""Shared fixtures: settings on a throw-away database, on SQLite always and PostgreSQL when asked.

Set ``DIGEST_TEST_DATABASE_URL`` (``.ci/run`` does) to run every ``db_url``-based test a second
time on PostgreSQL. Each PostgreSQL test gets its own schema, so parallel runs never collide.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

import digest.models
from digest.config import Settings
from digest.db import create_engine

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_FIXTURES = REPO_ROOT.parent / "shared" / "fixtures"
BUNDLED_EXAMPLES = REPO_ROOT / "examples"
PG_URL = os.environ.get("DIGEST_TEST_DATABASE_URL")
TEST_SECRET = "test-secret-key-0123456789abcdef"


def _fixtures_dir() -> Path:
    return SHARED_FIXTURES if SHARED_FIXTURES.is_dir() else BUNDLED_EXAMPLES


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """``../shared/fixtures`` when present, else the examples bundled with the project."""
    return _fixtures_dir()


@pytest.fixture(scope="session")
def comparisons_dir(fixtures_dir: Path) -> Path:
    return fixtures_dir / "comparisons"


def _pg_schema_url(base: str, schema: str) -> str:
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database: a fresh SQLite file, or a fresh schema on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'digest.db'}"
        return
    if not PG_URL:
        pytest.skip("PostgreSQL tests need DIGEST_TEST_DATABASE_URL (see .ci/run)")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield _pg_schema_url(PG_URL, schema)
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    """Settings of a test process: its own database and outbox, a fixed secret."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        database_url=db_url,
        secret_key=TEST_SECRET,  # type: ignore[arg-type]
        base_url="https://verdicts.example.com",
        outbox_dir=tmp_path / "outbox",
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    """An engine on the test database with every table created from the models."""
    engine = create_engine(settings.database_url)
    digest.models.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session
