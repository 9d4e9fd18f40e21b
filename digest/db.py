"""Database engines, sessions and migrations, the same way on SQLite and PostgreSQL.

SQLite is the embedded default: it is opened in WAL mode with foreign keys enforced, a busy
timeout and ``synchronous=NORMAL``. Python's sqlite3 module starts transactions lazily and
cannot issue ``BEGIN IMMEDIATE``; we take transaction control from it (the recipe in
SQLAlchemy's SQLite dialect docs) so that ``immediate_transaction`` can lock for writing up
front, which is what a worker claiming a batch needs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from digest.errors import ConfigError, DigestError

if TYPE_CHECKING:
    import ast

    from sqlmodel import Session

    from digest.config import Settings

SQLITE_BUSY_TIMEOUT_MS = 30_000
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class SchemaError(ConfigError):
    """The database has no schema or an older one: `digest db upgrade` brings it up to date."""


class DatabaseUnavailable(DigestError):
    """The database cannot be reached or opened (server down, wrong credentials, bad file)."""

    exit_code = 69  # EX_UNAVAILABLE


def utcnow() -> dt.datetime:
    """The current time, timezone-aware in UTC (the only kind of time the database stores)."""
    return dt.datetime.now(dt.UTC)


def aware(moment: dt.datetime | str) -> dt.datetime:
    """A timestamp read back from an aggregate as UTC: aggregates lose the column type, and
    SQLite then hands back a naive (or string) value."""
    if isinstance(moment, str):
        moment = dt.datetime.fromisoformat(moment)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


class UTCDateTime(sa.types.TypeDecorator[dt.datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    SQLite has no timezone type; PostgreSQL has ``timestamptz``. Normalizing on the way in and
    out means the code never meets a naive datetime, whichever database is behind it.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} cannot be stored; attach a timezone")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def is_sqlite(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "sqlite"


def create_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for ``url`` with the pragmas and pooling digest relies on."""
    if url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgres://")
    elif url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        return _sqlite_engine(url, echo=echo)
    return sa.create_engine(url, echo=echo, pool_pre_ping=True, future=True)


def _sqlite_engine(url: str, *, echo: bool) -> Engine:
    # No mkdir here: only `digest db upgrade` creates the database (see ``upgrade``), so that a
    # command pointed at a wrong path creates nothing and says so (``require_schema``).
    engine = sa.create_engine(
        url,
        echo=echo,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def engine_from_settings(settings: Settings) -> Engine:
    """The engine of ``DIGEST_DATABASE_URL``; a URL SQLAlchemy cannot use is a ``ConfigError``."""
    try:
        return create_engine(settings.database_url)
    except (sa.exc.ArgumentError, ImportError) as exc:
        masked = settings.masked()["database_url"]
        raise ConfigError(f"DIGEST_DATABASE_URL {masked}: {exc}") from None


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session committed on success and rolled back on any exception."""
    from sqlmodel import Session  # the ORM: not loaded by commands that read with Core alone

    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def core_connection(session: Session) -> Connection:
    """The connection of ``session``'s transaction, for Core statements that skip the ORM.

    Pending ORM changes are flushed first, as the session does before running a statement of
    its own (unless autoflush is off), so that the Core statements see them and come after
    them. Objects already loaded in the session are not updated by those statements.
    """
    if session.autoflush:
        session.flush()
    return session.connection()


@contextmanager
def immediate_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction committed on success and rolled back on any exception,
    with the write lock taken at BEGIN on SQLite (``BEGIN IMMEDIATE``).

    For Core statements only: no ``Session`` is built, which is what a write made on every
    request of a busy endpoint wants.
    """
    with engine.connect() as connection:
        if is_sqlite(engine):
            connection.execution_options(sqlite_begin="IMMEDIATE")
        with connection.begin():
            yield connection


@contextmanager
def immediate_session(engine: Engine) -> Iterator[Session]:
    """Like ``session_scope`` but takes the write lock at BEGIN on SQLite (``BEGIN IMMEDIATE``).

    On PostgreSQL this is an ordinary transaction; callers lock rows with
    ``FOR UPDATE SKIP LOCKED`` instead.
    """
    from sqlmodel import Session

    connection = engine.connect()
    if is_sqlite(engine):
        connection = connection.execution_options(sqlite_begin="IMMEDIATE")
    try:
        with Session(bind=connection, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
    finally:
        connection.close()


def alembic_config(database_url: str) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database at ``database_url`` to ``revision`` (creating it, and on SQLite the
    file's directory, if needed)."""
    from alembic import command

    path = sqlite_path(database_url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        command.upgrade(alembic_config(database_url), revision)
    except sa.exc.DBAPIError as exc:
        raise DatabaseUnavailable(
            f"database {database_label(database_url)} cannot be upgraded: {_reason(exc)}"
        ) from exc


def sqlite_path(url: str | sa.engine.URL) -> Path | None:
    """The absolute path of a SQLite database file; ``None`` for in-memory or other databases."""
    parsed = sa.engine.make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    if parsed.query.get("mode") == "memory":
        return None
    return Path(parsed.database).expanduser().resolve()


def database_label(url: str | sa.engine.URL) -> str:
    """How messages name a database: a SQLite file's absolute path, else the URL without its
    password."""
    path = sqlite_path(url)
    if path is not None:
        return str(path)
    return sa.engine.make_url(url).render_as_string(hide_password=True)


def require_schema(engine: Engine) -> None:
    """Refuse, in one line, a database that `digest db upgrade` has not brought to the latest
    revision: a missing SQLite file (not created by this check), an empty database or schema,
    an older revision, or a database that cannot be reached.

    Every command that uses the database calls this first, so none of them stops half-way
    with a driver's ``no such table``.
    """
    label = database_label(engine.url)
    advice = "run `digest db upgrade`"
    path = sqlite_path(engine.url)
    if path is not None and not path.is_file():
        raise SchemaError(f"database {label} has no schema: {advice}")
    try:
        with engine.connect() as connection:
            versions: set[str] = set()
            if sa.inspect(connection).has_table("alembic_version"):
                rows = connection.execute(sa.text("SELECT version_num FROM alembic_version"))
                versions = {str(row[0]) for row in rows}
    except sa.exc.DBAPIError as exc:
        raise DatabaseUnavailable(f"database {label} cannot be used: {_reason(exc)}") from exc
    if not versions:
        raise SchemaError(f"database {label} has no schema: {advice}")
    heads = set(_head_revisions())
    if versions != heads:
        at, latest = ", ".join(sorted(versions)), ", ".join(sorted(heads))
        raise SchemaError(
            f"database {label} is at revision {at}, not the latest ({latest}): {advice}"
        )


def _reason(exc: sa.exc.DBAPIError) -> str:
    """The driver's own message, first line only (SQLAlchemy appends the statement and a
    link)."""
    lines = str(exc.orig).strip().splitlines() if exc.orig is not None else []
    return lines[0] if lines else type(exc).__name__


@lru_cache(maxsize=1)
def _head_revisions() -> tuple[str, ...]:
    """The latest revision(s), read from the migration files' ``revision`` and
    ``down_revision`` assignments: alembic's script machinery costs every command about 0.1 s
    of start-up, for the same answer (a test compares the two)."""
    import ast

    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        for node in _revision_assignments(path.read_text(encoding="utf-8")):
            if isinstance(node, ast.AnnAssign | ast.Assign) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = {target.id for target in targets if isinstance(target, ast.Name)}
                value = (
                    ast.literal_eval(node.value) if names & {"revision", "down_revision"} else None
                )
                if "revision" in names and isinstance(value, str):
                    revisions.add(value)
                elif "down_revision" in names and value is not None:
                    parents.update([value] if isinstance(value, str) else value)
    return tuple(sorted(revisions - parents))


def _revision_assignments(source: str) -> list[ast.stmt]:
    """The module-level statements of a migration file that assign ``revision`` or
    ``down_revision``: their own lines are parsed (parsing every file whole cost each command
    some 10 ms), the whole file only when such an assignment runs over several lines."""
    import ast

    lines = [line for line in source.splitlines() if line.startswith(("revision", "down_revision"))]
    try:
        return ast.parse("\n".join(lines)).body
    except SyntaxError:
        return ast.parse(source).body


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(database_url: str) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
