"""Exactly one scheduler fires the weekly job per database, and one weekly job runs at a time.

Two locks, of the same two kinds:

- the **scheduler lock** (``leadership_for``), held for the whole life of a scheduler service:
  the leader fires the schedule, the others wait (PostgreSQL) or refuse to start (SQLite);
- the **job lock** (``job_lock_for``), held while the weekly job runs, by the scheduled run and
  by ``digest scheduler --once`` alike: a manual run next to a running service waits for (or
  refuses, without ``--wait``) a scheduled run in progress instead of racing it.

Kinds:

- **PostgreSQL**: a session-level advisory lock (``pg_try_advisory_lock``) taken on a dedicated
  connection (autocommit, outside the pool) and held as long as needed. If the holder dies, its
  session ends, PostgreSQL drops the lock, and a waiting process takes over at its next try.
  The key is derived from the schema, the newsletter and the lock's purpose, so deployments
  sharing a server (or parallel test schemas) never block each other.
- **SQLite**: an exclusive ``flock`` on ``<database file>.scheduler.lock`` (or ``.job.lock``),
  which names the holder's PID. SQLite deployments are single-host by nature, so a second
  scheduler does not wait: it refuses to start and says who holds the lock.

Editions are idempotent regardless (a unique ``(newsletter, week)`` key and a unique ledger
row per recipient): the locks keep the job from running twice, not the data from doubling.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import IO

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from digest.db import is_sqlite
from digest.errors import ConflictError
from digest.logs import log_event

log = logging.getLogger(__name__)

LOCK_NAMESPACE = "digest.scheduler"
SCHEDULER = "scheduler"
JOB = "job"
BUSY = {
    SCHEDULER: "another scheduler is running on this database",
    JOB: "the weekly job is running in another process",
}


class LeadershipTaken(ConflictError):
    """Another process holds the lock (a scheduler leads, or the weekly job runs); the message
    names it."""

    exit_code = 75  # EX_TEMPFAIL: try again when the other one has stopped


def process_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Leadership(ABC):
    """A lock held by one process until ``release``: the lead of the schedulers, or the right
    to run the weekly job."""

    purpose: str = SCHEDULER

    @abstractmethod
    def try_acquire(self) -> bool:
        """Take the lock if it is free; True if this process now holds it."""

    @abstractmethod
    def still_held(self) -> bool:
        """Whether the lock is still ours (False once the database dropped our session)."""

    @abstractmethod
    def release(self) -> None:
        """Give the lock back (idempotent)."""

    @abstractmethod
    def holder(self) -> str:
        """Who holds the lock now, as far as can be told, for messages."""

    @property
    def waits(self) -> bool:
        """Whether a process that finds the lock taken should wait for it (else refuse)."""
        return True

    @property
    def busy(self) -> str:
        """What it means that somebody else holds the lock, for messages."""
        return BUSY[self.purpose]

    def close(self) -> None:
        """Release and free whatever the lock holds on to."""
        self.release()


def _lock_ids(key: int) -> dict[str, int]:
    """How ``pg_locks`` shows a bigint advisory key: high and low 32 bits, unsigned."""
    return {"classid": (key >> 32) & 0xFFFFFFFF, "objid": key & 0xFFFFFFFF}


class PostgresLeadership(Leadership):
    """A session-level advisory lock on a connection of its own."""

    def __init__(self, engine: Engine, newsletter: str, *, purpose: str = SCHEDULER) -> None:
        self.purpose = purpose
        # Outside the pool: a pooled connection returned with the lock would keep holding it.
        self._engine = sa.create_engine(engine.url, poolclass=NullPool)
        self._newsletter = newsletter
        self._connection: Connection | None = None
        self._key: int | None = None

    def _lock_key(self, connection: Connection) -> int:
        schema = connection.execute(sa.text("SELECT current_schema()")).scalar_one()
        name = f"{LOCK_NAMESPACE}:{schema}:{self._newsletter}:{self.purpose}"
        digest = hashlib.sha256(name.encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)

    def _connect(self) -> Connection:
        connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        connection.execute(
            sa.text("SELECT set_config('application_name', :name, false)"),
            {"name": f"digest-{self.purpose} {process_identity()}"[:63]},
        )
        return connection

    def try_acquire(self) -> bool:
        if self._connection is not None:
            return self.still_held()
        connection = self._connect()
        try:
            key = self._lock_key(connection)
            taken = connection.execute(
                sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": key}
            ).scalar_one()
        except BaseException:
            connection.close()
            raise
        if not taken:
            connection.close()
            return False
        self._connection, self._key = connection, key
        return True

    def still_held(self) -> bool:
        if self._connection is None or self._key is None:
            return False
        try:
            held = self._connection.execute(
                sa.text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND pid = pg_backend_pid()"
                    " AND classid::bigint = :classid AND objid::bigint = :objid AND objsubid = 1"
                ),
                _lock_ids(self._key),
            ).scalar_one()
        except sa.exc.SQLAlchemyError:
            log_event(log, "leader_connection_lost", level=logging.ERROR)
            return False
        return bool(held)

    def release(self) -> None:
        connection, key = self._connection, self._key
        self._connection = self._key = None
        if connection is None:
            return
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            connection.close()

    def holder(self) -> str:
        with self._engine.connect() as connection:
            key = self._lock_key(connection)
            row = connection.execute(
                sa.text(
                    "SELECT a.application_name, a.client_addr, l.pid FROM pg_locks l"
                    " JOIN pg_stat_activity a ON a.pid = l.pid"
                    " WHERE l.locktype = 'advisory' AND l.granted"
                    " AND l.classid::bigint = :classid AND l.objid::bigint = :objid"
                    " AND l.objsubid = 1"
                ),
                _lock_ids(key),
            ).first()
        if row is None:
            return "nobody"
        name = row.application_name or "a client"
        return f"{name} (database backend pid {row.pid})"

    def close(self) -> None:
        self.release()
        self._engine.dispose()


class FileLeadership(Leadership):
    """An exclusive ``flock`` on a file beside the SQLite database."""

    def __init__(self, path: Path, *, purpose: str = SCHEDULER) -> None:
        self.path = path
        self.purpose = purpose
        self._file: IO[str] | None = None

    @property
    def waits(self) -> bool:
        # A second scheduler on one SQLite file refuses; a second job waits its turn.
        return self.purpose != SCHEDULER

    def try_acquire(self) -> bool:
        if self._file is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        self._file = handle
        return True

    def still_held(self) -> bool:
        return self._file is not None

    def release(self) -> None:
        handle, self._file = self._file, None
        if handle is None:
            return
        with contextlib.suppress(OSError):
            handle.seek(0)
            handle.truncate()
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()

    def holder(self) -> str:
        try:
            text = self.path.read_text(encoding="utf-8").strip()
        except OSError:
            text = ""
        return text or "another process"


class LocalLeadership(Leadership):
    """For an in-memory SQLite database, which no other process can see."""

    def __init__(self, *, purpose: str = SCHEDULER) -> None:
        self.purpose = purpose
        self._held = False

    def try_acquire(self) -> bool:
        self._held = True
        return True

    def still_held(self) -> bool:
        return self._held

    def release(self) -> None:
        self._held = False

    def holder(self) -> str:
        return "this process"


def _lock_for(engine: Engine, newsletter: str, purpose: str) -> Leadership:
    if is_sqlite(engine):
        database = engine.url.database
        if not database or database == ":memory:":
            return LocalLeadership(purpose=purpose)
        return FileLeadership(Path(f"{database}.{purpose}.lock").resolve(), purpose=purpose)
    return PostgresLeadership(engine, newsletter, purpose=purpose)


def leadership_for(engine: Engine, newsletter: str) -> Leadership:
    """The scheduler lock that fits the database behind ``engine``."""
    return _lock_for(engine, newsletter, SCHEDULER)


def job_lock_for(engine: Engine, newsletter: str) -> Leadership:
    """The lock a run of the weekly job holds (scheduled or ``--once``)."""
    return _lock_for(engine, newsletter, JOB)


def acquire(
    leadership: Leadership,
    *,
    stop: threading.Event,
    wait: float | None,
    retry_seconds: float = 10.0,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Take the lock. Waits up to ``wait`` seconds (``None``: until ``stop``) where the lock
    kind allows waiting; raises ``LeadershipTaken`` naming the holder when it gives up,
    returns False if ``stop`` was set meanwhile."""
    give_up = None if wait is None else clock() + wait
    announced = False
    while not stop.is_set():
        if leadership.try_acquire():
            log_event(log, "lock_acquired", lock=leadership.purpose, process=process_identity())
            return True
        holder = leadership.holder()
        if not leadership.waits:
            where = getattr(leadership, "path", "the lock")
            raise LeadershipTaken(f"{leadership.busy}: {holder} holds {where}; stop it first")
        if give_up is not None and clock() >= give_up:
            waited = f" (waited {wait:g}s)" if wait else " (use --wait SECONDS to wait for it)"
            raise LeadershipTaken(f"{leadership.busy}: {holder}{waited}")
        if not announced:
            log_event(
                log,
                "lock_waiting",
                lock=leadership.purpose,
                holder=holder,
                retry_seconds=retry_seconds,
            )
            announced = True
        pause = retry_seconds if give_up is None else min(retry_seconds, give_up - clock())
        stop.wait(max(0.05, pause))
    return False
