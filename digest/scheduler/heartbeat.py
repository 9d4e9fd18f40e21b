"""What the scheduler writes down for others to read: its heartbeat and its last run.

Both live in ``ServiceState``:

- ``"scheduler_heartbeat"``: ``{"at", "host", "pid", "started_at", "interval_seconds",
  "next_run"}``, written by the leading scheduler every ``interval_seconds`` (30 by default);
- ``"scheduler_last_run"``: the report of the last weekly job (``JobReport.as_dict``), or of a
  run that was skipped because it was missed by more than the grace time.

``scheduler_status`` reads them back, together with the next run time from APScheduler's job
store and the pause switch, for ``digest status`` and ``GET /healthz``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from digest.db import utcnow
from digest.delivery.guards import PAUSE_KEY
from digest.logs import log_event
from digest.scheduler.leader import Leadership
from digest.state import read_state, write_state

log = logging.getLogger(__name__)

HEARTBEAT_KEY = "scheduler_heartbeat"
LAST_RUN_KEY = "scheduler_last_run"
JOB_ID = "digest-weekly-edition"  # the stable id of the job in APScheduler's job store
JOBS_TABLE = "apscheduler_jobs"
DEFAULT_INTERVAL = 30.0
STALE_AFTER_BEATS = 3  # a heartbeat older than three intervals means the scheduler is gone


def iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(dt.UTC).isoformat()


def write_heartbeat(
    engine: Engine,
    *,
    interval: float,
    started_at: dt.datetime,
    next_run: dt.datetime | None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "at": iso(now or utcnow()),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started_at": iso(started_at),
        "interval_seconds": interval,
        "next_run": iso(next_run),
    }
    with engine.begin() as connection:
        write_state(connection, HEARTBEAT_KEY, value)
    return value


def write_last_run(engine: Engine, report: dict[str, Any]) -> None:
    with engine.begin() as connection:
        write_state(connection, LAST_RUN_KEY, report)


class Heartbeat:
    """A daemon thread that checks the lead is still ours and writes the heartbeat.

    ``on_lost`` is called (once) when the leadership lock is gone, e.g. the database dropped
    the connection that held it: another scheduler may lead by now, so this one must stop.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        interval: float = DEFAULT_INTERVAL,
        leadership: Leadership | None = None,
        next_run: Callable[[], dt.datetime | None] = lambda: None,
        on_lost: Callable[[], None] = lambda: None,
    ) -> None:
        if interval <= 0:
            raise ValueError("heartbeat interval must be positive")
        self.engine = engine
        self.interval = interval
        self.leadership = leadership
        self.next_run = next_run
        self.on_lost = on_lost
        self.started_at = utcnow()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> bool:
        """One heartbeat; False if the lead was lost."""
        if self.leadership is not None and not self.leadership.still_held():
            log_event(log, "leader_lost", level=logging.ERROR)
            self.on_lost()
            return False
        try:
            write_heartbeat(
                self.engine,
                interval=self.interval,
                started_at=self.started_at,
                next_run=self.next_run(),
            )
        except Exception:
            # A database hiccup must not kill the scheduler; the next beat tries again.
            log_event(log, "heartbeat_failed", level=logging.WARNING, exc_info=True)
        return True

    def _loop(self) -> None:
        while self.beat() and not self._stop.wait(self.interval):
            pass

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)


def stored_next_run(connection: Connection) -> dt.datetime | None:
    """The next run time of the weekly job as APScheduler's job store has it."""
    if not sa.inspect(connection).has_table(JOBS_TABLE):
        return None
    jobs = sa.table(JOBS_TABLE, sa.column("id"), sa.column("next_run_time"))
    value = connection.execute(sa.select(jobs.c.next_run_time).where(jobs.c.id == JOB_ID)).scalar()
    if value is None:
        return None
    return dt.datetime.fromtimestamp(float(value), dt.UTC)


def scheduler_status(engine: Engine, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """The scheduler as others see it, as plain JSON-ready data.

    ::

        {"alive": bool,                  # a heartbeat younger than three intervals
         "heartbeat": {...} | None,      # as stored (at, host, pid, started_at, ...)
         "heartbeat_age_seconds": float | None,
         "next_run": "ISO 8601" | None,  # from the job store, else from the heartbeat
         "last_run": {...} | None,       # the last job report (or missed run)
         "paused": bool, "pause": {...} | None}
    """
    now = now or utcnow()
    with engine.connect() as connection:
        heartbeat = read_state(connection, HEARTBEAT_KEY)
        last_run = read_state(connection, LAST_RUN_KEY)
        pause = read_state(connection, PAUSE_KEY)
        stored = stored_next_run(connection)
    age: float | None = None
    alive = False
    if heartbeat and heartbeat.get("at"):
        age = (now - dt.datetime.fromisoformat(heartbeat["at"])).total_seconds()
        interval = float(heartbeat.get("interval_seconds") or DEFAULT_INTERVAL)
        alive = age <= STALE_AFTER_BEATS * interval
    next_run = iso(stored)
    if next_run is None and heartbeat:
        next_run = heartbeat.get("next_run")
    return {
        "alive": alive,
        "heartbeat": heartbeat,
        "heartbeat_age_seconds": None if age is None else round(age, 1),
        "next_run": next_run,
        "last_run": last_run,
        "paused": bool(pause and pause.get("paused")),
        "pause": pause,
    }
