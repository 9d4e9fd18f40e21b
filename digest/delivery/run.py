"""Sending an edition, as one use case: what ``digest send``, ``digest worker`` and the
scheduler's weekly job all call. They keep only their arguments, printing and exit codes.

``run_edition`` (``digest send``, the weekly job): open the week's edition (created once),
ask the guards, complete its ledger, send until nothing is left, waiting for deferred rows.
``run_worker`` (``digest worker``): complete any unfinished ledger, then send whatever any
sending edition has due, once or until stopped. Both return a ``SendReport`` whose ``outcome``
is one ``Outcome``:

- ``sent``: every row is done and nothing failed; ``sent_with_failures``: done, but rows are
  ``failed`` or ``unknown`` (``digest resend``);
- ``held`` (outside the send window; ``hold.until`` says when it opens) or ``paused`` (the
  pause switch; ``hold.by``/``hold.at``): nothing more was claimed;
- ``cancelled``; ``stopped`` (SIGTERM/SIGINT: rows in hand were given back);
- ``no_edition``: the week has too few new comparisons (``reason``);
- ``idle``: a worker run that found nothing to claim now (``worker --once``);
- ``scheduled``: local-time delivery, the rows due now are sent and the rest are due later
  (``next_due``, ``scheduled`` rows); the scheduler or a worker sends them as they come due,
  or ``wait_for_schedule`` (``digest send --wait``) keeps this run going until they are.

In local-time mode (``settings.delivery_mode``) the ledger's rows are due at the send time in
each subscriber's zone (``digest.delivery.local_time``): on the edition's delivery day when
the weekly job builds it (``on_delivery_day``), at the next one from now for a manual send.

The guards are enforced at the claim itself (``digest.delivery.ledger``), whatever calls this;
``run_edition`` also asks them before building the ledger so a held send says so at once.
``ignore_window`` (``digest send --now``) overrides the window for this run only, and the
override is recorded.
"""

from __future__ import annotations

import datetime as dt
import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from digest.backends.base import EmailBackend
from digest.config import Settings
from digest.content.weeks import IsoWeek
from digest.db import session_scope, utcnow
from digest.delivery.guards import Guards, Hold, HoldReason, current_hold, record_override
from digest.delivery.ledger import edition_counts, sending_edition_ids, upcoming
from digest.delivery.prepare import (
    complete_ledger,
    complete_ledgers,
    edition_schedule,
    message_factories,
)
from digest.delivery.sender import DeliveryEngine, OnWait, RunOutcome, RunReport, SendStats
from digest.editions.models import Edition, EditionStatus
from digest.editions.service import open_edition
from digest.render.edition import subject_for


class Outcome(enum.StrEnum):
    SENT = "sent"
    SENT_WITH_FAILURES = "sent_with_failures"
    HELD = "held"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    STOPPED = "stopped"
    NO_EDITION = "no_edition"
    IDLE = "idle"
    SCHEDULED = "scheduled"


@dataclass(frozen=True, slots=True)
class SendReport:
    """What one run did: the outcome, the edition (``run_edition``), its ledger counts then,
    what this process sent (``stats``), the hold in force and, for ``no_edition``, why."""

    outcome: Outcome
    edition: Edition | None = None
    created: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)
    hold: Hold | None = None
    reason: str = ""
    recipients: int = 0
    scheduled: int = 0
    next_due: dt.datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "scheduled": self.scheduled,
            "next_due": None if self.next_due is None else self.next_due.isoformat(),
            "outcome": str(self.outcome),
            "edition": None if self.edition is None else self.edition.id,
            "week": None if self.edition is None else self.edition.week,
            "counts": self.counts,
            "stats": self.stats,
            "hold": None if self.hold is None else self.hold.as_dict(),
            "reason": self.reason,
        }


Progress = Callable[[SendStats], None]
BackendFactory = Callable[[Settings], EmailBackend]


def _default_backend(settings: Settings) -> EmailBackend:
    from digest.backends.registry import get_backend

    return get_backend(settings)


@dataclass
class Run:
    """The pieces of one run that callers may replace (tests, the CLI's progress bar)."""

    stop: threading.Event = field(default_factory=threading.Event)
    on_progress: Progress | None = None
    on_wait: OnWait | None = None
    backend: BackendFactory = _default_backend
    poll: float = 5.0
    on_idle: Callable[[], object] | None = None


@dataclass(frozen=True, slots=True)
class Opened:
    """The week's edition (None when there is none), whether this call created it, and
    ``final``: the report to give when there is nothing to send (no edition, sent already,
    cancelled), else None."""

    edition: Edition | None
    created: bool
    final: SendReport | None


def open_for_sending(engine: Engine, settings: Settings, week: IsoWeek) -> Opened:
    """Open (create once) the edition of ``week`` and decide whether it is still to be sent:
    the one place that knows that a sent or cancelled edition sends nothing more."""
    opened = open_edition(engine, settings, week, subject_for=subject_for(settings, week))
    edition = opened.edition
    if edition is None:
        return Opened(None, False, SendReport(Outcome.NO_EDITION, reason=opened.reason))
    assert edition.id is not None
    if edition.status == EditionStatus.CANCELLED:
        return Opened(edition, opened.created, _finish(engine, Outcome.CANCELLED, edition, False))
    if edition.status == EditionStatus.SENT:
        counts = edition_counts(engine, edition.id)
        trouble = counts["failed"] + counts["unknown"]
        outcome = Outcome.SENT_WITH_FAILURES if trouble else Outcome.SENT
        return Opened(edition, False, SendReport(outcome, edition, False, counts))
    return Opened(edition, opened.created, None)


def run_edition(
    engine: Engine,
    settings: Settings,
    week: IsoWeek,
    *,
    ignore_window: bool = False,
    operator: str = "unknown",
    run: Run | None = None,
    on_delivery_day: bool = False,
    wait_for_schedule: bool = False,
) -> SendReport:
    """Send the edition of ``week`` until nothing is left, or it is held, paused, cancelled
    or stopped; in local-time delivery, until nothing more is due unless
    ``wait_for_schedule`` (see the module docstring)."""
    run = run or Run()
    opened = open_for_sending(engine, settings, week)
    edition = opened.edition
    if opened.final is not None:
        return opened.final
    assert edition is not None and edition.id is not None
    guards = Guards.of(settings, ignore_window=ignore_window)
    recipients = complete_ledger(engine, settings, edition, on_delivery_day=on_delivery_day)
    scheduled = edition_schedule(engine, edition.id) is not None
    held = current_hold(engine, guards)
    if held is not None:
        return _finish(engine, _held(held), edition, opened.created, hold=held)
    if ignore_window and Guards.of(settings).window_hold(utcnow()) is not None:
        record_override(
            engine,
            edition_id=edition.id,
            week=edition.week,
            by=operator,
            window=str(settings.send_window),
        )
    report = _engine_run(
        engine, settings, run, guards, [edition.id], until_done=wait_for_schedule or not scheduled
    )
    outcome = {
        RunOutcome.HELD: Outcome.HELD,
        RunOutcome.PAUSED: Outcome.PAUSED,
        RunOutcome.CANCELLED: Outcome.CANCELLED,
        RunOutcome.STOPPED: Outcome.STOPPED,
        RunOutcome.IDLE: Outcome.SCHEDULED,
    }.get(report.outcome)
    counts = edition_counts(engine, edition.id)
    later, next_due = upcoming(engine, edition.id)
    if outcome is None:
        trouble = counts["failed"] + counts["unknown"]
        outcome = Outcome.SENT_WITH_FAILURES if trouble else Outcome.SENT
    return SendReport(
        outcome,
        edition,
        opened.created,
        counts,
        report.stats,
        report.hold,
        recipients=recipients,
        scheduled=later,
        next_due=next_due,
    )


def run_worker(
    engine: Engine, settings: Settings, *, once: bool = False, run: Run | None = None
) -> SendReport:
    """Send the due rows of every sending edition: until nothing can be claimed (``once``),
    or until stopped, waiting out holds and idle spells ``run.poll`` seconds at a time."""
    run = run or Run()
    complete_ledgers(engine, settings)
    if once and not _anything_sending(engine):
        # The scheduler asks this every 30 s: no backend (an SES account lookup) for nothing.
        return SendReport(Outcome.IDLE, stats=SendStats().as_dict())
    report = _engine_run(
        engine,
        settings,
        run,
        Guards.of(settings),
        None,
        worker_mode=True,
        forever=not once,
        on_idle=lambda: _idle(engine, settings, run),
    )
    outcome = {
        RunOutcome.HELD: Outcome.HELD,
        RunOutcome.PAUSED: Outcome.PAUSED,
        RunOutcome.STOPPED: Outcome.STOPPED,
    }.get(report.outcome, Outcome.IDLE)
    if outcome is Outcome.IDLE and (report.stats["failed"] or report.stats["unknown"]):
        outcome = Outcome.SENT_WITH_FAILURES
    return SendReport(outcome, stats=report.stats, hold=report.hold)


def _engine_run(
    engine: Engine,
    settings: Settings,
    run: Run,
    guards: Guards,
    edition_ids: list[int] | None,
    *,
    worker_mode: bool = False,
    forever: bool = False,
    on_idle: Callable[[], object] | None = None,
    until_done: bool = True,
) -> RunReport:
    with run.backend(settings) as backend:
        sender = DeliveryEngine(
            engine,
            settings,
            backend,
            message_factories(engine, settings),
            stop=run.stop,
            on_progress=run.on_progress,
            on_wait=run.on_wait,
            guards=guards,
        )
        if worker_mode:
            return sender.run(
                None, until_done=False, forever=forever, poll=run.poll, on_idle=on_idle
            )
        return sender.run(edition_ids, until_done=until_done, poll=run.poll)


def _anything_sending(engine: Engine) -> bool:
    with session_scope(engine) as session:
        return bool(sending_edition_ids(session))


def _idle(engine: Engine, settings: Settings, run: Run) -> None:
    complete_ledgers(engine, settings)
    if run.on_idle is not None:
        run.on_idle()


def _held(hold: Hold) -> Outcome:
    return Outcome.PAUSED if hold.reason is HoldReason.PAUSED else Outcome.HELD


def _finish(
    engine: Engine,
    outcome: Outcome,
    edition: Edition,
    created: bool,
    *,
    hold: Hold | None = None,
) -> SendReport:
    assert edition.id is not None
    return SendReport(outcome, edition, created, edition_counts(engine, edition.id), hold=hold)
