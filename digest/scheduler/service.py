"""``digest scheduler``: the weekly job fired on ``settings.schedule`` by APScheduler 3.

- **One leader** (``digest.scheduler.leader``): the service takes the lead before it starts
  APScheduler; on PostgreSQL the others wait for it, on SQLite a second one refuses to start.
  Each run of the job also holds the job lock, shared with ``digest scheduler --once``.
- **Job store** in the application database (``SQLAlchemyJobStore``, table
  ``apscheduler_jobs``): the next run time survives restarts. The job is registered under a
  stable id with ``replace_existing=True``; its stored next run time is kept as long as the
  schedule is unchanged, so a run missed while the service was down is still seen as missed.
- **Misfires**: ``misfire_grace_time`` is ``settings.misfire_grace_hours``. A run missed by
  less than that runs once at start-up (``coalesce=True`` folds several missed runs into one);
  a run missed by more is skipped, logged (``event=job_missed``) and recorded as the last run —
  an edition is never sent days late.
- **Stopping**: SIGTERM/SIGINT set the stop event shared with the job and the delivery engine,
  which finishes or releases the batch in hand; the service then shuts APScheduler down,
  waiting for the job, and gives up the lead.
- **Continuing**: every ``continue_seconds`` (30) the leader also sends whatever any sending
  edition has due (``digest.delivery.run.run_worker`` once): an edition held by the window,
  paused and then resumed, or with deferred rows goes on without a worker. Workers only add
  throughput (and scale out on PostgreSQL).
- **Heartbeat** every ``heartbeat_seconds`` (``digest.scheduler.heartbeat``), which also
  checks the lead is still held and stops the service (exit code 1) if it is not.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.engine import Engine

from digest.config import Settings
from digest.db import utcnow
from digest.logs import log_event
from digest.scheduler.cron import weekly_trigger
from digest.scheduler.heartbeat import DEFAULT_INTERVAL, JOB_ID, Heartbeat, iso, write_last_run
from digest.scheduler.job import (
    JOB_FUNC,
    JobReport,
    JobStatus,
    run_weekly_job,
    set_scheduled_runner,
)
from digest.scheduler.leader import (
    Leadership,
    acquire,
    job_lock_for,
    leadership_for,
    process_identity,
)

log = logging.getLogger(__name__)

LEADER_RETRY_SECONDS = 10.0
CONTINUE_SECONDS = 30.0
CONTINUE_ID = "digest-continue-sending"
RETENTION_ID = "digest-click-retention"
RETENTION_HOURS = 24

Job = Callable[[threading.Event], object]


def _default_job(settings: Settings, engine: Engine) -> Job:
    def job(stop: threading.Event) -> JobReport:
        return run_weekly_job(settings, engine, trigger="schedule", stop=stop)

    return job


def _continue_sending(settings: Settings, engine: Engine) -> Job:
    def job(stop: threading.Event) -> object:
        from digest.delivery.run import Run, run_worker

        report = run_worker(engine, settings, once=True, run=Run(stop=stop))
        stats = report.stats
        if stats.get("sent") or stats.get("failed") or stats.get("deferred"):
            log_event(
                log,
                "continued",
                outcome=str(report.outcome),
                sent=stats.get("sent", 0),
                failed=stats.get("failed", 0),
                deferred=stats.get("deferred", 0),
            )
        return report

    return job


class SchedulerService:
    """The long-lived scheduler. ``run`` blocks until ``request_stop`` (or a signal, when run
    under ``handle_signals``) and returns the process exit code."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        heartbeat_seconds: float = DEFAULT_INTERVAL,
        leader_retry_seconds: float = LEADER_RETRY_SECONDS,
        job: Job | None = None,
        continue_job: Job | None = None,
        continue_seconds: float = CONTINUE_SECONDS,
        leadership: Leadership | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.trigger = weekly_trigger(settings)  # refuse a bad one now
        self.heartbeat_seconds = heartbeat_seconds
        self.leader_retry_seconds = leader_retry_seconds
        self.job = job or _default_job(settings, engine)
        # A service given its own weekly job (tests) continues nothing unless told to.
        self.continue_job = continue_job or (
            _continue_sending(settings, engine) if job is None else None
        )
        self.continue_seconds = continue_seconds
        self.leadership = leadership or leadership_for(engine, settings.newsletter)
        self.stop = stop or threading.Event()
        self.grace_seconds = int(settings.misfire_grace_hours * 3600)
        self.exit_code = 0
        self.started = threading.Event()  # set once APScheduler runs (for tests and status)
        self.scheduler: BackgroundScheduler | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def run(self) -> int:
        try:
            if not acquire(
                self.leadership,
                stop=self.stop,
                wait=None,
                retry_seconds=self.leader_retry_seconds,
            ):
                return self.exit_code
            heartbeat = Heartbeat(
                self.engine,
                interval=self.heartbeat_seconds,
                leadership=self.leadership,
                next_run=self.next_run_time,
                on_lost=self._lost_lead,
            )
            set_scheduled_runner(self._run_job)
            try:
                self.scheduler = self._start_scheduler()
                heartbeat.start()
                self.started.set()
                log_event(
                    log,
                    "scheduler_started",
                    process=process_identity(),
                    schedule=self.settings.schedule,
                    timezone=self.settings.timezone,
                    next_run=self.next_run_time(),
                    misfire_grace_hours=self.settings.misfire_grace_hours,
                )
                while not self.stop.wait(1.0):
                    pass
            finally:
                log_event(log, "scheduler_stopping")
                heartbeat.stop()
                if self.scheduler is not None and self.scheduler.running:
                    self.scheduler.shutdown(wait=True)
                set_scheduled_runner(None)
        finally:
            self.leadership.close()
        log_event(log, "scheduler_stopped", exit_code=self.exit_code)
        return self.exit_code

    def request_stop(self, reason: str = "requested") -> None:
        if not self.stop.is_set():
            log_event(log, "stop_requested", reason=reason)
        self.stop.set()

    def _lost_lead(self) -> None:
        self.exit_code = 1
        self.request_stop("leadership lost")

    # -- APScheduler ---------------------------------------------------------------------------

    def _start_scheduler(self) -> BackgroundScheduler:
        scheduler = BackgroundScheduler(
            jobstores={
                "default": SQLAlchemyJobStore(engine=self.engine),
                "memory": MemoryJobStore(),
            },
            executors={
                "default": ThreadPoolExecutor(max_workers=1),
                "continue": ThreadPoolExecutor(max_workers=1),
            },
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": self.grace_seconds,
            },
            timezone=self.settings.zone,
        )
        scheduler.add_listener(self._on_event, EVENT_JOB_MISSED | EVENT_JOB_ERROR)
        scheduler.start(paused=True)
        stored = scheduler.get_job(JOB_ID)
        keep: dict[str, Any] = {}
        if stored is not None and stored.next_run_time is not None:
            if repr(stored.trigger) == repr(self.trigger):
                # Re-adding would recompute the next run from now and forget a missed run.
                keep["next_run_time"] = stored.next_run_time
            else:
                log_event(log, "schedule_changed", old=str(stored.trigger), new=str(self.trigger))
        scheduler.add_job(
            JOB_FUNC,
            trigger=self.trigger,
            id=JOB_ID,
            name="weekly edition",
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=self.grace_seconds,
            **keep,
        )
        if self.continue_job is not None:
            scheduler.add_job(
                self._continue,
                trigger="interval",
                seconds=self.continue_seconds,
                id=CONTINUE_ID,
                name="continue sending",
                jobstore="memory",
                executor="continue",
                coalesce=True,
                max_instances=1,
                next_run_time=utcnow() + dt.timedelta(seconds=min(5.0, self.continue_seconds)),
            )
        if self.continue_job is not None:  # the real service, not a test's own job
            scheduler.add_job(
                self._retire_hits,
                trigger="interval",
                hours=RETENTION_HOURS,
                id=RETENTION_ID,
                name="click retention",
                jobstore="memory",
                executor="continue",
                coalesce=True,
                max_instances=1,
                next_run_time=utcnow() + dt.timedelta(minutes=5),
            )
        scheduler.resume()
        return scheduler

    def _retire_hits(self) -> None:
        """Raw link hits and open pixel fetches older than DIGEST_CLICK_RETENTION_DAYS become
        daily counts."""
        from digest.delivery.report import retire_old_hits

        folded = retire_old_hits(self.engine, self.settings, utcnow())
        if folded:
            log_event(log, "click_hits_folded", hits=folded)

    def next_run_time(self) -> dt.datetime | None:
        scheduler = self.scheduler
        if scheduler is None or not scheduler.running:
            return None
        job = scheduler.get_job(JOB_ID)
        moment = getattr(job, "next_run_time", None)
        return moment if isinstance(moment, dt.datetime) else None

    def _run_job(self) -> None:
        # A `digest scheduler --once` may be running the job right now: wait for it.
        lock = job_lock_for(self.engine, self.settings.newsletter)
        try:
            if not acquire(lock, stop=self.stop, wait=None, retry_seconds=5.0):
                return
            self.job(self.stop)
        finally:
            lock.close()

    def _continue(self) -> None:
        if self.continue_job is not None and not self.stop.is_set():
            self.continue_job(self.stop)

    def _on_event(self, event: JobExecutionEvent) -> None:
        if event.job_id != JOB_ID:
            if event.code == EVENT_JOB_ERROR:
                log_event(log, "continue_error", level=logging.ERROR, error=str(event.exception))
            return
        scheduled = event.scheduled_run_time
        if event.code == EVENT_JOB_MISSED:
            late = utcnow() - scheduled
            reason = (
                f"missed by {late} (more than the {self.settings.misfire_grace_hours:g}h "
                "grace, DIGEST_MISFIRE_GRACE_HOURS); skipped"
            )
            log_event(
                log, "job_missed", level=logging.WARNING, scheduled_for=scheduled, reason=reason
            )
            try:
                write_last_run(
                    self.engine,
                    {
                        "trigger": "schedule",
                        "status": "missed",
                        "scheduled_for": iso(scheduled),
                        "reason": reason,
                        "finished_at": iso(utcnow()),
                        "process": process_identity(),
                    },
                )
            except Exception:
                log_event(log, "last_run_not_recorded", level=logging.WARNING, exc_info=True)
        elif event.code == EVENT_JOB_ERROR:
            log_event(
                log,
                "job_error",
                level=logging.ERROR,
                scheduled_for=scheduled,
                error=f"{type(event.exception).__name__}: {event.exception}",
            )


def run_once(
    settings: Settings,
    engine: Engine,
    *,
    wait: float = 0.0,
    stop: threading.Event | None = None,
    lock: Leadership | None = None,
    **job_options: Any,
) -> JobReport:
    """``digest scheduler --once``: run the weekly job now, as a scheduled run would.

    It holds the job lock meanwhile, so it never runs next to a scheduled run (or another
    ``--once``): if one is in progress it waits up to ``wait`` seconds, then raises
    ``LeadershipTaken`` naming the process running it."""
    weekly_trigger(settings)  # the same checks as the service
    stop = stop or threading.Event()
    lock = lock or job_lock_for(engine, settings.newsletter)
    try:
        if not acquire(lock, stop=stop, wait=wait, retry_seconds=1.0):
            return JobReport(
                trigger="once",
                started_at=utcnow(),
                status=JobStatus.STOPPED,
                reason="stopped while waiting for the job lock",
            )
        return run_weekly_job(settings, engine, trigger="once", stop=stop, **job_options)
    finally:
        lock.close()


@contextmanager
def handle_signals(on_stop: Callable[[str], None]) -> Iterator[None]:
    """While inside, SIGTERM and SIGINT call ``on_stop(<signal name>)`` instead of killing the
    process (main thread only; elsewhere this does nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        on_stop(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
