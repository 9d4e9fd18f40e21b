"""Shared fixtures: settings on a throw-away database, on SQLite always and PostgreSQL when asked.

Set ``DIGEST_TEST_DATABASE_URL`` (``.ci/run`` does) to run every ``db_url``-based test a second
time on PostgreSQL. Each test run gets its own schemas (each worker of a ``pytest -n`` run, too:
session fixtures are per worker process), so parallel runs never collide.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
import uvicorn
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.applications import Starlette

import digest.models
from digest.config import Settings, get_settings
from digest.db import create_engine

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_FIXTURES = REPO_ROOT.parent / "shared" / "fixtures"
BUNDLED_EXAMPLES = REPO_ROOT / "examples"
PG_URL = os.environ.get("DIGEST_TEST_DATABASE_URL")
TEST_SECRET = "Jt7fQm2VxR9kLp4WzN8cYd3HbG6sKe1TqA5uXo0iMv"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the ``slow`` tests first, then the ``browser`` ones, each group in collection order.

    The slow ones mostly wait (a provider outage, a stopped SMTP server, pacing, processes
    killed and resumed): started first under ``pytest -n`` (``make test``), their waits overlap
    the CPU-bound rest of the suite instead of ending it on one busy worker.
    """

    def rank(item: pytest.Item) -> int:
        if item.get_closest_marker("slow"):
            return 0
        return 1 if item.get_closest_marker("browser") else 2

    items.sort(key=rank)  # stable: collection order within each group


@pytest.fixture(autouse=True)
def _development_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Production is the default of a real process; tests that want it say so. A test (or a
    command it runs) that sets nothing is a development process."""
    if "DIGEST_ENVIRONMENT" not in os.environ:
        monkeypatch.setenv("DIGEST_ENVIRONMENT", "development")


@pytest.fixture(autouse=True)
def _fresh_process_settings() -> Iterator[None]:
    """Commands run in-process read this test's environment, not the settings a previous
    test's command cached for the process (``get_settings`` is cached)."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


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


@contextmanager
def _pg_schema(*, with_tables: bool) -> Iterator[str]:
    """A new schema on the test PostgreSQL (dropped afterwards); its URL."""
    assert PG_URL
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = _pg_schema_url(PG_URL, schema)
    try:
        if with_tables:
            engine = create_engine(url)
            digest.models.create_schema(engine)
            engine.dispose()
        yield url
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_shared_url() -> Iterator[str]:
    """One schema with every table, shared by this run's PostgreSQL tests and emptied before
    each one: creating fourteen tables per test would dominate the suite's time."""
    if not PG_URL:
        pytest.skip("PostgreSQL tests need DIGEST_TEST_DATABASE_URL (see .ci/run)")
    with _pg_schema(with_tables=True) as url:
        yield url


def _empty_tables(url: str) -> None:
    engine = create_engine(url)
    tables = ", ".join(f'"{table.name}"' for table in digest.models.metadata.sorted_tables)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("SET LOCAL lock_timeout = '20s'"))
            connection.execute(sa.text("DROP TABLE IF EXISTS apscheduler_jobs"))
            connection.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of a database with every table and no rows: a fresh SQLite file, or the shared
    PostgreSQL schema emptied for this test."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'digest.db'}"
        engine = create_engine(url)
        digest.models.create_schema(engine)
        engine.dispose()
        yield url
        return
    url = request.getfixturevalue("pg_shared_url")
    _empty_tables(url)
    yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of a database without any table (for migrations): a new file or a new schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    if not PG_URL:
        pytest.skip("PostgreSQL tests need DIGEST_TEST_DATABASE_URL (see .ci/run)")
    with _pg_schema(with_tables=False) as url:
        yield url


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
    """An engine on the test database (every table there, no rows)."""
    engine = create_engine(settings.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session


@pytest.fixture
def live_server() -> Iterator[Callable[[Callable[[str], Starlette]], str]]:
    """Start uvicorn on 127.0.0.1 with an ephemeral port; returns the server's base URL.

    The app factory receives that URL first, so that links in emails point at the server.
    """
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(make_app: Callable[[str], Starlette]) -> str:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(make_app(base_url), log_level="warning", lifespan="on")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        servers.append((server, thread))
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return base_url

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)
