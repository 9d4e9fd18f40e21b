"""``digest send``, ``status``, ``resend``, ``cancel`` and ``worker``: sending editions and
watching them go out. A thin layer over ``digest.delivery``.

Exit codes of ``send`` and ``worker``: 0 when the edition is out (nothing pending, nothing
failed or unknown), 1 when rows failed or are unknown (see ``digest resend``), 69 when the
provider refused the request for good (bad credentials: nothing of that batch was sent),
75 when sending is paused, 130/143 after SIGINT/SIGTERM (the current batch is finished or
given back first; running ``send`` again resumes).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from digest.cli import common
from digest.errors import ConflictError, NotFoundError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from digest.config import Settings
    from digest.delivery.sender import RunReport, SendStats
    from digest.editions.models import Edition

app = typer.Typer(help="Send editions and follow their delivery.", no_args_is_help=True)
log = logging.getLogger("digest.delivery")

EXIT_INCOMPLETE = 1
EXIT_PAUSED = 75  # EX_TEMPFAIL: try again later
PROGRESS_LOG_SECONDS = 5.0

EditionOption = Annotated[int, typer.Option("--edition", help="Edition id (see `digest status`).")]


# -- send ----------------------------------------------------------------------------------------


@app.command("send")
def send_command(
    week: Annotated[
        str | None,
        typer.Option("--week", help="ISO week such as 2026-W47 (default: the last complete week)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be sent; change nothing.")
    ] = False,
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            metavar="ADDRESS",
            help="Send one test copy to ADDRESS (subject prefixed [TEST]); no ledger change.",
        ),
    ] = None,
) -> None:
    """Create (or resume) the week's edition and send it to every subscriber."""
    from digest.backends.registry import get_backend
    from digest.delivery.prepare import prepare_edition, send_test_copy
    from digest.editions.models import EditionStatus

    settings = common.settings()
    settings.require_signing_key()
    engine = common.engine(settings)
    selected = common.resolve_week(week, settings)
    if dry_run:
        _print_plan(engine, settings, selected)
        return
    if to:
        with get_backend(settings) as backend:
            result = send_test_copy(engine, settings, backend, selected, to)
        if not result.accepted:
            common.echo_err(f"test copy refused: {result.error}")
            raise typer.Exit(EXIT_INCOMPLETE)
        typer.echo(f"test copy of {selected} sent to {to.strip()} ({result.message_id})")
        return

    outcome = prepare_edition(engine, settings, selected)
    edition = outcome.edition
    if edition is None:
        typer.echo(outcome.reason)
        return
    assert edition.id is not None
    if edition.status == EditionStatus.CANCELLED:
        raise ConflictError(f"edition {edition.id} ({edition.week}) is cancelled")
    verb = "created" if outcome.created else "resuming"
    typer.echo(f"edition {edition.id} ({edition.week}) {verb}: {edition.subject}")
    report = _deliver(engine, settings, edition_ids=[edition.id], worker_mode=False)
    _finish(engine, edition.id, report)


def _print_plan(engine: Engine, settings: Settings, week: Any) -> None:
    from digest.delivery.prepare import plan_send

    plan = plan_send(engine, settings, week)
    if plan.edition is None and plan.reason:
        typer.echo(f"dry run: {plan.reason}")
        return
    if plan.edition is not None:
        edition = plan.edition
        typer.echo(f"dry run: edition {edition.id} ({edition.week}) exists, {edition.status}")
    else:
        typer.echo(f"dry run: would create the edition of {week}")
    typer.echo(f"subject: {plan.subject}")
    typer.echo(f"comparisons: {len(plan.titles)}")
    for title in plan.titles:
        typer.echo(f"  - {title}")
    if plan.documents:
        from digest.render.edition import size_report

        typer.echo(f"size: {size_report(settings, plan.documents, week=week)}")
    typer.echo(f"recipients: {plan.recipients} in {len(plan.variants)} variant(s)")
    for variant in plan.variants:
        typer.echo(
            f"  {variant.recipients:>8}  {variant.comparisons} comparison(s)  "
            f"[{variant.key}]  {variant.subject}"
        )


def _finish(engine: Engine, edition_id: int, report: RunReport) -> None:
    """Print where the edition stands and exit with the code the module docstring lists."""
    from digest.db import session_scope
    from digest.delivery.admin import state_counts
    from digest.delivery.sender import RunOutcome
    from digest.editions.models import EditionStatus
    from digest.editions.service import get_edition

    with session_scope(engine) as session:
        edition = get_edition(session, edition_id)
        counts = state_counts(session, edition_id)
    typer.echo(_counts_line(counts))
    if report.outcome is RunOutcome.STOPPED:
        return  # ``_deliver`` exits with the signal's code
    if report.outcome is RunOutcome.PAUSED:
        common.echo_err("sending is paused; run `digest send` again once it is resumed")
        raise typer.Exit(EXIT_PAUSED)
    if edition.status == EditionStatus.CANCELLED:
        common.echo_err(f"edition {edition_id} was cancelled")
        raise typer.Exit(EXIT_INCOMPLETE)
    trouble = counts["failed"] + counts["unknown"]
    if counts["pending"] or counts["claimed"] or trouble:
        if trouble:
            common.echo_err(
                f"{counts['failed']} failed, {counts['unknown']} unknown: see `digest status "
                f"--edition {edition_id}`, then `digest resend --edition {edition_id} "
                "--failed-only`"
            )
        raise typer.Exit(EXIT_INCOMPLETE)
    typer.echo(f"edition {edition_id} ({edition.week}) is sent")


def _counts_line(counts: dict[str, int]) -> str:
    return " ".join(f"{state}={count}" for state, count in counts.items())


# -- the engine, its progress and signals ----------------------------------------------------


def _deliver(
    engine: Engine,
    settings: Settings,
    *,
    edition_ids: list[int] | None,
    worker_mode: bool,
    once: bool = False,
    poll: float = 5.0,
) -> RunReport:
    from digest.backends.registry import get_backend
    from digest.db import session_scope
    from digest.delivery.admin import state_counts
    from digest.delivery.prepare import complete_ledgers, message_factories
    from digest.delivery.sender import DeliveryEngine, RunOutcome

    stop = threading.Event()
    with _stop_on_signals(stop) as received, get_backend(settings) as backend:
        total = _open_rows(engine, edition_ids) if edition_ids else None
        with _progress(total) as on_progress:
            sender = DeliveryEngine(
                engine,
                settings,
                backend,
                message_factories(engine, settings),
                stop=stop,
                on_progress=on_progress,
            )
            if worker_mode:
                report = sender.run(
                    None,
                    until_done=False,
                    forever=not once,
                    poll=poll,
                    on_idle=lambda: complete_ledgers(engine, settings),
                )
            else:
                report = sender.run(edition_ids, poll=poll)
    stats = report.stats
    log.info(
        "run outcome=%s sent=%d failed=%d unknown=%d skipped=%d",
        report.outcome,
        stats["sent"],
        stats["failed"],
        stats["unknown"],
        stats["skipped"],
    )
    if report.outcome is RunOutcome.STOPPED and received:
        signum = received[0]
        name = signal.Signals(signum).name
        common.echo_err(f"stopped by {name}; batches in progress were finished or given back")
        if edition_ids:
            with session_scope(engine) as session:
                common.echo_err(_counts_line(state_counts(session, edition_ids[0])))
            common.echo_err("run `digest send` again to resume")
        raise typer.Exit(128 + signum)
    return report


def _open_rows(engine: Engine, edition_ids: list[int]) -> int:
    from digest.db import session_scope
    from digest.delivery.admin import state_counts

    with session_scope(engine) as session:
        counts = state_counts(session, edition_ids[0])
    return counts["pending"] + counts["claimed"]


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[list[int]]:
    """SIGINT/SIGTERM set ``stop`` (the engine finishes or releases its batches); a second
    one interrupts at once. Yields the list the received signal numbers go to."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        common.echo_err(
            f"\n{signal.Signals(signum).name}: finishing the current batch (again to abort)"
        )

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextmanager
def _progress(total: int | None) -> Iterator[Callable[[SendStats], None]]:
    """A progress bar on a terminal; structured log lines (key=value) every few seconds
    otherwise."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    started = time.monotonic()
    if sys.stderr.isatty() and total:
        with Progress(
            TextColumn("sending"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeRemainingColumn(),
            transient=False,
        ) as bar:
            task = bar.add_task("send", total=total, detail="")

            def update(stats: SendStats) -> None:
                done = stats.sent + stats.failed + stats.unknown + stats.skipped
                bar.update(
                    task,
                    completed=done,
                    detail=f"failed {stats.failed} unknown {stats.unknown}",
                )

            yield update
        return

    last = [0.0]

    def log_line(stats: SendStats) -> None:
        now = time.monotonic()
        if now - last[0] < PROGRESS_LOG_SECONDS:
            return
        last[0] = now
        counts = stats.as_dict()
        rate = counts["sent"] / max(now - started, 1e-9)
        remaining = "" if total is None else f" total={total}"
        common.echo_err(f"progress {_counts_line(counts)} rate={rate:.1f}/s{remaining}")

    yield log_line


# -- status, resend, cancel, worker ----------------------------------------------------------


@app.command("status")
def status_command(
    edition_id: Annotated[
        int | None, typer.Option("--edition", help="Edition id (default: the latest).")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Where an edition stands: rows per state, the rate over the last minute, the ETA."""
    from digest.db import session_scope
    from digest.delivery.admin import status_report
    from digest.editions.service import get_edition, latest_edition
    from digest.scheduler.heartbeat import scheduler_status

    settings = common.settings()
    engine = common.engine(settings)
    with session_scope(engine) as session:
        edition: Edition | None
        if edition_id is None:
            edition = latest_edition(session, settings.newsletter)
            if edition is None:
                raise NotFoundError("no edition yet: `digest send` creates the first one")
        else:
            edition = get_edition(session, edition_id)
        report = status_report(session, edition)
    scheduler = scheduler_status(engine)
    if json_output:
        common.print_json(report.as_json() | {"scheduler": scheduler})
        return
    data = report.as_json()
    typer.echo(f"edition {data['edition']}  {data['week']}  {data['status']}  {data['subject']}")
    for state, count in data["counts"].items():
        typer.echo(f"  {state:<8} {count:>8}")
    eta = data["eta_seconds"]
    eta_text = "done" if report.remaining == 0 else ("unknown" if eta is None else f"{eta:.0f} s")
    typer.echo(f"  rate {data['rate_per_second']:.1f} msg/s over the last minute; ETA {eta_text}")
    if data["webhook"]:
        events = ", ".join(f"{kind} {count}" for kind, count in sorted(data["webhook"].items()))
        typer.echo(f"  provider events: {events}")
    typer.echo(_scheduler_line(scheduler))


def _scheduler_line(scheduler: dict[str, Any]) -> str:
    if scheduler.get("heartbeat") is None:
        service = "scheduler: not running (no heartbeat yet)"
    else:
        state = "alive" if scheduler.get("alive") else "stale"
        age = scheduler.get("heartbeat_age_seconds")
        service = f"scheduler: {state}, last heartbeat {age:.0f} s ago" if age is not None else ""
    next_run = scheduler.get("next_run") or "not scheduled"
    paused = "  PAUSED" if scheduler.get("paused") else ""
    return f"{service}; next run {next_run}{paused}"


@app.command("resend")
def resend_command(
    edition_id: EditionOption,
    failed_only: Annotated[
        bool, typer.Option("--failed-only", help="Put failed rows back to pending (required).")
    ] = False,
    include_unknown: Annotated[
        bool,
        typer.Option(
            "--include-unknown",
            help="Also resend rows whose outcome is unknown: those recipients may get it twice.",
        ),
    ] = False,
) -> None:
    """Queue the failed rows of an edition again; `digest send` or a worker sends them."""
    from digest.delivery.admin import resend

    if not failed_only:
        raise typer.BadParameter(
            "resend only ever resends rows that were not delivered: pass --failed-only",
            param_hint="--failed-only",
        )
    engine = common.engine()
    count = resend(engine, edition_id, include_unknown=include_unknown)
    typer.echo(f"{count} row(s) of edition {edition_id} are pending again")


@app.command("cancel")
def cancel_command(edition_id: EditionOption) -> None:
    """Cancel an edition: nothing more is sent; rows already with the provider finish."""
    from digest.delivery.admin import cancel

    engine = common.engine()
    count = cancel(engine, edition_id)
    typer.echo(f"edition {edition_id} cancelled; {count} row(s) will not be sent")


@app.command("worker")
def worker_command(
    once: Annotated[
        bool, typer.Option("--once", help="Send what can be claimed now, then exit.")
    ] = False,
    poll: Annotated[
        float, typer.Option("--poll", min=0.1, help="Seconds to sleep when there is nothing to do.")
    ] = 5.0,
) -> None:
    """Send the batches of every sending edition, alongside any other workers."""
    from digest.delivery.prepare import complete_ledgers

    settings = common.settings()
    settings.require_signing_key()
    engine = common.engine(settings)
    complete_ledgers(engine, settings)
    report = _deliver(engine, settings, edition_ids=None, worker_mode=True, once=once, poll=poll)
    typer.echo(_counts_line(report.stats))
    if report.stats["failed"] or report.stats["unknown"]:
        raise typer.Exit(EXIT_INCOMPLETE)
