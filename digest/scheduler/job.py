"""The weekly job: from new comparisons to an edition in every inbox, one logged step at a time.

Steps, in order (each logs one ``event=job_step`` line with its outcome):

1. **import**: pull new comparisons from ``settings.content_url`` (retried with backoff on
   connection errors, 408/425/429 and 5xx) and/or ``settings.content_dir``. A source that
   cannot be read at all fails the job (the week's content is unknown); single documents that
   fail validation are reported and the others imported.
2. **week**: the last complete ISO week in ``settings.zone`` at ``now`` (in UTC+14 in local-time
   delivery, where the job fires on the delivery day: ``digest.scheduler.cron.job_zone``).
3. **edition**: ``digest.delivery.run.open_for_sending`` creates the week's edition once (a
   unique key makes a second run harmless) or finds it, and says whether it is still to be
   sent (fewer than ``settings.min_new_comparisons`` new comparisons skips the week).
4. **hold**: wait for the send window and the pause switch (``digest.delivery.guards``). The
   claims obey the same guards whoever sends; waiting here keeps the job's report readable.
5. **send**: ``digest.delivery.run.run_edition``, the same use case as ``digest send``:
   complete the ledger, render each content variant once, send at the configured pace,
   waiting for deferred rows. Held or paused meanwhile brings the job back to step 4; a stop
   (SIGTERM) gives the rows in hand back and ends the job.

A failing step ends the job with ``status="failed"``: the report carries the error, the
traceback is logged, and the edition (if any) stays as it was — sending with its ledger —
so the next run or any ``digest worker`` resumes it. The report of every run is stored in
``ServiceState["scheduler_last_run"]``.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from sqlalchemy.engine import Engine

from digest.config import Settings
from digest.content.importer import URL_TIMEOUT, ImportReport, import_paths
from digest.content.weeks import IsoWeek
from digest.db import utcnow
from digest.delivery.flow import backoff_delay
from digest.delivery.guards import (
    HOLD_STEP_SECONDS,
    MAX_HOLD,
    Clock,
    Guards,
    HoldOutcome,
    Sleep,
    hold,
)
from digest.delivery.run import Outcome, Run, SendReport, open_for_sending, run_edition
from digest.editions.models import Edition
from digest.logs import log_event
from digest.scheduler.cron import job_zone
from digest.scheduler.heartbeat import iso, write_last_run
from digest.scheduler.leader import process_identity

log = logging.getLogger(__name__)

JOB_FUNC = "digest.scheduler.job:run_scheduled"  # what APScheduler stores (a picklable reference)
FETCH_ATTEMPTS = 4
FETCH_RETRY_BASE = 2.0
FETCH_RETRY_CAP = 30.0
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class JobStatus(enum.StrEnum):
    SENT = "sent"  # the edition has gone out to every recipient
    SCHEDULED = "scheduled"  # local-time delivery: the rest go out as they come due
    ALREADY_SENT = "already_sent"  # an earlier run sent it: nothing to do
    SKIPPED = "skipped"  # no edition this week (too few new comparisons, or cancelled)
    HELD = "held"  # still paused or outside the window when the hold ran out; resumable
    STOPPED = "stopped"  # the service is stopping; resumable
    FAILED = "failed"  # a step failed; the report says which and why


class StepStatus(enum.StrEnum):
    OK = "ok"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass
class StepReport:
    name: str
    status: StepStatus
    seconds: float
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": str(self.status),
            "seconds": round(self.seconds, 3),
            **self.detail,
        }


@dataclass
class JobReport:
    """What one run of the weekly job did."""

    trigger: str
    started_at: dt.datetime
    status: JobStatus = JobStatus.FAILED
    week: str | None = None
    edition_id: int | None = None
    reason: str = ""
    error: str | None = None
    sent: dict[str, int] = field(default_factory=dict)
    steps: list[StepReport] = field(default_factory=list)
    finished_at: dt.datetime | None = None

    @property
    def ok(self) -> bool:
        return self.status is not JobStatus.FAILED

    def step(self, name: str) -> StepReport | None:
        return next((step for step in self.steps if step.name == name), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "trigger": self.trigger,
            "status": str(self.status),
            "week": self.week,
            "edition_id": self.edition_id,
            "reason": self.reason,
            "error": self.error,
            "sent": self.sent,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "process": process_identity(),
            "steps": [step.as_dict() for step in self.steps],
        }


class _StepFailed(Exception):
    """Raised inside a step after it was recorded as failed; ends the job."""


class SendEdition(Protocol):
    """Sends an edition until it is done, held, paused, cancelled or stopped."""

    def __call__(
        self, engine: Engine, settings: Settings, edition: Edition, *, stop: threading.Event
    ) -> SendReport: ...


def deliver_edition(
    engine: Engine, settings: Settings, edition: Edition, *, stop: threading.Event
) -> SendReport:
    """The real send: ``digest.delivery.run.run_edition``, as ``digest send`` does it."""
    return run_edition(
        engine, settings, IsoWeek.parse(edition.week), run=Run(stop=stop), on_delivery_day=True
    )


# -- fetching content with retries ------------------------------------------------------------


class RetryTransport(httpx.BaseTransport):
    """Retries a request on connection errors and on 408/425/429/5xx answers, with exponential
    backoff and full jitter (``Retry-After`` honoured up to the cap)."""

    def __init__(
        self,
        inner: httpx.BaseTransport,
        *,
        attempts: int = FETCH_ATTEMPTS,
        base: float = FETCH_RETRY_BASE,
        cap: float = FETCH_RETRY_CAP,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.inner = inner
        self.attempts = max(1, attempts)
        self.base = base
        self.cap = cap
        self.sleep = sleep

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for attempt in range(1, self.attempts + 1):
            delay = backoff_delay(attempt, base=self.base, cap=self.cap)
            try:
                response = self.inner.handle_request(request)
            except httpx.TransportError as exc:
                if attempt == self.attempts:
                    raise
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code not in RETRY_STATUSES or attempt == self.attempts:
                    return response
                problem = f"HTTP {response.status_code}"
                delay = max(delay, _retry_after(response, self.cap))
                response.close()
            log_event(
                log,
                "fetch_retry",
                level=logging.WARNING,
                url=str(request.url),
                attempt=attempt,
                problem=problem,
                delay_seconds=round(delay, 2),
            )
            self.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        self.inner.close()


def _retry_after(response: httpx.Response, cap: float) -> float:
    value = response.headers.get("Retry-After", "")
    return min(cap, float(value)) if value.isdigit() else 0.0


def retrying_client(
    transport: httpx.BaseTransport | None = None,
    *,
    attempts: int = FETCH_ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
) -> httpx.Client:
    """An HTTP client for fetching content that retries transient failures."""
    return httpx.Client(
        transport=RetryTransport(
            transport or httpx.HTTPTransport(), attempts=attempts, sleep=sleep
        ),
        timeout=URL_TIMEOUT,
        follow_redirects=False,
    )


def import_content(
    engine: Engine, settings: Settings, *, client: httpx.Client | None = None
) -> ImportReport | None:
    """Import from ``settings.content_url`` and ``settings.content_dir`` (None if neither is
    set). Raises the source's ``ContentError`` when a whole source could not be read."""
    targets = [str(target) for target in (settings.content_url, settings.content_dir) if target]
    if not targets:
        return None
    own_client = client is None and settings.content_url is not None
    http = retrying_client() if own_client else client
    try:
        report = import_paths(engine, targets, client=http)
    finally:
        if own_client and http is not None:
            http.close()
    for error in report.rejected:
        if error.source in targets:
            raise error
    return report


# -- the job ----------------------------------------------------------------------------------


class _WeeklyRun:
    """One run of the job: its options, its report, and each step timed and recorded."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        report: JobReport,
        *,
        send_edition: SendEdition,
        stop: threading.Event,
        clock: Clock,
        sleep: Sleep | None,
        client: httpx.Client | None,
        max_hold: dt.timedelta,
        hold_step: float,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.report = report
        self.send_edition = send_edition
        self.stop = stop
        self.clock = clock
        self.sleep = sleep
        self.client = client
        self.max_hold = max_hold
        self.hold_step = hold_step

    @contextmanager
    def step(self, name: str) -> Iterator[dict[str, Any]]:
        detail: dict[str, Any] = {}
        started = time.perf_counter()
        try:
            yield detail
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            self._record(name, StepStatus.FAILED, started, {**detail, "error": error})
            self.report.status, self.report.error = JobStatus.FAILED, error
            log_event(
                log,
                "job_step",
                level=logging.ERROR,
                exc_info=True,
                step=name,
                status=StepStatus.FAILED,
                week=self.report.week,
                error=error,
            )
            raise _StepFailed(name) from exc
        status = detail.pop("_status", StepStatus.OK)
        self._record(name, status, started, detail)
        log_event(log, "job_step", step=name, status=status, week=self.report.week, **detail)

    def _record(
        self, name: str, status: StepStatus, started: float, detail: dict[str, Any]
    ) -> None:
        self.report.steps.append(
            StepReport(name, status, time.perf_counter() - started, dict(detail))
        )

    def run(self) -> None:
        """The steps in order; returns early when there is nothing (more) to do."""
        self.import_content()
        week = self.select_week()
        edition = self.open_edition(week)
        if edition is None:
            return
        deadline = self.clock() + self.max_hold
        while self.hold(deadline) and self.send(edition, week) in (Outcome.PAUSED, Outcome.HELD):
            pass  # held or paused while sending: back to the hold, until clear or the deadline

    def import_content(self) -> None:
        with self.step("import") as detail:
            imported = import_content(self.engine, self.settings, client=self.client)
            if imported is None:
                detail.update(_status=StepStatus.SKIPPED, reason="no content source configured")
                return
            detail.update(
                imported=len(imported.imported),
                updated=len(imported.updated),
                unchanged=len(imported.unchanged),
                rejected=len(imported.rejected),
            )
            for error in imported.rejected:
                log_event(log, "content_rejected", level=logging.WARNING, problem=str(error))

    def select_week(self) -> IsoWeek:
        with self.step("week") as detail:
            week = IsoWeek.last_complete(self.report.started_at, job_zone(self.settings))
            self.report.week = str(week)
            detail.update(timezone=self.settings.timezone)
        return week

    def open_edition(self, week: IsoWeek) -> Edition | None:
        """The week's edition if it is to be sent; None (with the report's status set) if not."""
        report = self.report
        with self.step("edition") as detail:
            opened = open_for_sending(self.engine, self.settings, week)
            edition = opened.edition
            report.edition_id = None if edition is None else edition.id
            final = opened.final
            if edition is not None:
                detail.update(
                    edition=edition.id, created=opened.created, edition_status=str(edition.status)
                )
            if final is None:
                return edition
            if final.outcome in (Outcome.SENT, Outcome.SENT_WITH_FAILURES):
                report.status = JobStatus.ALREADY_SENT
                report.reason = f"the edition of {week} was sent already"
                return None
            report.status = JobStatus.SKIPPED
            report.reason = final.reason or f"the edition of {week} is {final.outcome}"
            detail.update(_status=StepStatus.SKIPPED, reason=report.reason)
        return None

    def hold(self, deadline: dt.datetime) -> bool:
        """Wait for the guards; True when sending may start."""
        with self.step("hold") as detail:
            held = hold(
                self.engine,
                Guards.of(self.settings),
                stop=self.stop,
                clock=self.clock,
                sleep=self.sleep,
                step=self.hold_step,
                max_hold=max(dt.timedelta(0), deadline - self.clock()),
            )
            detail.update(
                outcome=str(held.outcome),
                waited_seconds=round(held.waited_seconds, 1),
                held_by=held.reason or None,
            )
        if held.outcome is HoldOutcome.STOPPED:
            self.report.status = JobStatus.STOPPED
            self.report.reason = "stopped before sending; the edition waits"
            return False
        if held.outcome is HoldOutcome.EXPIRED:
            self.report.status = JobStatus.HELD
            self.report.reason = (
                f"still held ({held.reason}) after {self.max_hold}; the edition waits"
            )
            return False
        return True

    def send(self, edition: Edition, week: IsoWeek) -> Outcome:
        """Send through ``digest.delivery.run``; its outcome (``sent``, ``paused``, ...)."""
        report = self.report
        with self.step("send") as detail:
            sent = self.send_edition(self.engine, self.settings, edition, stop=self.stop)
            for name, count in sent.stats.items():
                report.sent[name] = report.sent.get(name, 0) + count
            detail.update(outcome=str(sent.outcome), recipients=sent.recipients, **sent.stats)
            if sent.hold is not None:
                detail.update(held_by=str(sent.hold.reason))
        report.status, report.reason = {
            Outcome.SENT: (JobStatus.SENT, ""),
            Outcome.SENT_WITH_FAILURES: (JobStatus.SENT, "some rows failed: see `digest status`"),
            Outcome.SCHEDULED: (
                JobStatus.SCHEDULED,
                f"{sent.scheduled} rows are due later, the first at "
                f"{sent.next_due.isoformat() if sent.next_due else '-'}; sent as they come due",
            ),
            Outcome.PAUSED: (JobStatus.HELD, "paused while sending"),
            Outcome.HELD: (JobStatus.HELD, "the send window closed while sending"),
            Outcome.CANCELLED: (
                JobStatus.SKIPPED,
                f"the edition of {week} was cancelled while sending",
            ),
            Outcome.STOPPED: (
                JobStatus.STOPPED,
                "stopped while sending; the rows in hand were released",
            ),
        }.get(sent.outcome, (JobStatus.HELD, f"delivery ended {sent.outcome}"))
        return sent.outcome


def run_weekly_job(
    settings: Settings,
    engine: Engine,
    *,
    now: dt.datetime | None = None,
    trigger: str = "manual",
    send_edition: SendEdition = deliver_edition,
    stop: threading.Event | None = None,
    clock: Clock = utcnow,
    sleep: Sleep | None = None,
    client: httpx.Client | None = None,
    max_hold: dt.timedelta = MAX_HOLD,
    hold_step: float = HOLD_STEP_SECONDS,
) -> JobReport:
    """Run the weekly job once (see the module docstring); never raises for a failed step.

    ``now`` picks the week (default: the clock); ``clock`` and ``sleep`` drive the hold;
    ``client`` fetches ``settings.content_url``; ``send_edition`` is the delivery engine.
    """
    report = JobReport(trigger=trigger, started_at=now or clock())
    run = _WeeklyRun(
        settings,
        engine,
        report,
        send_edition=send_edition,
        stop=stop or threading.Event(),
        clock=clock,
        sleep=sleep,
        client=client,
        max_hold=max_hold,
        hold_step=hold_step,
    )
    log_event(log, "job_started", trigger=trigger, at=report.started_at)
    with suppress(_StepFailed):
        run.run()
    report.finished_at = clock()
    counts: dict[str, Any] = dict(report.sent)
    log_event(
        log,
        "job_finished",
        level=logging.ERROR if report.status is JobStatus.FAILED else logging.INFO,
        trigger=trigger,
        status=report.status,
        week=report.week,
        edition=report.edition_id,
        reason=report.reason or None,
        error=report.error,
        **counts,
    )
    try:
        write_last_run(engine, report.as_dict())
    except Exception:
        log_event(log, "last_run_not_recorded", level=logging.WARNING, exc_info=True)
    return report


# -- the function APScheduler stores ----------------------------------------------------------

_scheduled_runner: Callable[[], object] | None = None


def set_scheduled_runner(runner: Callable[[], object] | None) -> None:
    """Hand ``run_scheduled`` the running service's job (settings, engine and stop event
    included). APScheduler pickles a reference to ``run_scheduled``, not a closure, so the
    live objects travel through this slot."""
    global _scheduled_runner  # noqa: PLW0603 - one scheduler per process, by design
    _scheduled_runner = runner


def run_scheduled() -> None:
    """What the scheduler fires (``JOB_FUNC``)."""
    runner = _scheduled_runner
    if runner is not None:
        runner()
        return
    from digest.config import get_settings
    from digest.db import engine_from_settings

    settings = get_settings()
    engine = engine_from_settings(settings)
    try:
        run_weekly_job(settings, engine, trigger="schedule")
    finally:
        engine.dispose()
