"""``digest send``, ``status``, ``resend``, ``cancel`` and ``worker``: sending editions and
watching them go out. A thin layer over ``digest.delivery``.

Exit codes of ``send``: 0 when the edition is out (nothing pending, nothing failed or unknown)
or, in local-time delivery, when what is due is sent and the rest is scheduled (one line says
when the next rows are due), 1 when rows failed or are unknown (see ``digest resend``) or the
edition was cancelled, 66 when the week has no edition (too few new comparisons: the preview of
such a week exits 66 too; the dry run as well), 69 when the provider refused the request for
good (bad credentials: nothing of that batch was sent), 75 when sending is paused or outside
the send window (one line says until when), 130/143 after SIGINT/SIGTERM (the calls in flight
are finished, the rest given back; running ``send`` again resumes).

``worker`` exits 0 when stopped by SIGTERM/SIGINT (a normal stop: work in hand is given back),
and 1 when rows it sent failed or are unknown.
"""

from __future__ import annotations

import getpass
import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from digest.cli import common
from digest.errors import ConflictError, DigestError, NotFoundError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from digest.config import Settings
    from digest.delivery.run import SendReport
    from digest.delivery.sender import SendStats
    from digest.editions.models import Edition

app = typer.Typer(help="Send editions and follow their delivery.", no_args_is_help=True)
log = logging.getLogger("digest.delivery")

EXIT_INCOMPLETE = 1
EXIT_TEMPFAIL = 75  # EX_TEMPFAIL: paused or outside the window, try again later
PROGRESS_LOG_SECONDS = 5.0

EditionOption = Annotated[int, typer.Option("--edition", help="Edition id (see `digest status`).")]


def _operator() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


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
    now: Annotated[
        bool,
        typer.Option(
            "--now",
            help="Send even outside DIGEST_SEND_WINDOW (recorded, with who asked). The pause "
            "switch still holds.",
        ),
    ] = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="Local-time delivery: keep running until every subscriber's send time has "
            "come and gone (default: send what is due, then say when the rest are due).",
        ),
    ] = False,
) -> None:
    """Create (or resume) the week's edition and send it to every subscriber (in local-time
    delivery: to those whose send time has come; the scheduler sends the rest)."""
    from digest.backends.registry import get_backend
    from digest.delivery.prepare import send_test_copy
    from digest.delivery.run import Run, run_edition

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

    if not sys.stderr.isatty():  # a long job (cron, a unit): its progress goes to the log
        common.service_logging(settings)
    stop = threading.Event()
    with _stop_on_signals(stop) as received, _progress() as on_progress:
        report = run_edition(
            engine,
            settings,
            selected,
            ignore_window=now,
            operator=_operator(),
            run=Run(stop=stop, on_progress=on_progress, on_wait=_waiting_line()),
            wait_for_schedule=wait,
        )
    _finish_send(engine, report, received)


def _print_plan(engine: Engine, settings: Settings, week: Any) -> None:
    from digest.delivery.prepare import plan_send

    plan = plan_send(engine, settings, week)
    if plan.edition is None and plan.reason:
        raise NotFoundError(plan.reason)  # 66, as the preview of such a week
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
    _print_left_out(engine, plan.documents)


def _print_left_out(engine: Engine, comparisons: Sequence[Any]) -> None:
    """The active subscribers who get nothing this week and why (``digest.delivery.audience``)."""
    from digest.db import session_scope
    from digest.delivery.audience import left_out

    with session_scope(engine) as session:
        line = left_out(session, comparisons).describe()
    if line:
        typer.echo(line)


def _finish_send(engine: Engine, report: SendReport, received: list[int]) -> None:
    """Print where the edition stands and exit with the code the module docstring lists."""
    from digest.delivery.run import Outcome

    edition = report.edition
    if report.outcome is Outcome.NO_EDITION:
        raise NotFoundError(report.reason)  # 66, as the preview of such a week
    assert edition is not None
    verb = "created" if report.created else "resuming"
    typer.echo(f"edition {edition.id} ({edition.week}) {verb}: {edition.subject}")
    _print_left_out(engine, _edition_comparisons(engine, edition))
    counts = report.counts
    typer.echo(_counts_line(counts))
    if report.outcome is Outcome.STOPPED:
        name = signal.Signals(received[0]).name if received else "a stop"
        common.echo_err(f"stopped by {name}; calls in progress were finished, the rest given back")
        common.echo_err("run `digest send` again to resume")
        raise typer.Exit(128 + (received[0] if received else signal.SIGTERM))
    if report.outcome in (Outcome.HELD, Outcome.PAUSED):
        assert report.hold is not None
        if report.outcome is Outcome.HELD:
            common.echo_err(
                f"outside the send window: {report.hold.describe()}; "
                "`digest send --now` sends anyway"
            )
        else:
            common.echo_err(
                f"sending is {report.hold.describe()}; run `digest send` again once resumed"
            )
        raise typer.Exit(EXIT_TEMPFAIL)
    if report.outcome is Outcome.CANCELLED:
        if not report.stats:
            raise ConflictError(f"edition {edition.id} ({edition.week}) is cancelled")
        common.echo_err(f"edition {edition.id} was cancelled")
        raise typer.Exit(EXIT_INCOMPLETE)
    if report.outcome is Outcome.SCHEDULED:
        due = "-" if report.next_due is None else _when(report.next_due)
        typer.echo(
            f"{report.scheduled} rows wait for their subscribers' local send time; the next are "
            f"due at {due}. `digest scheduler` (or `digest worker`) sends them as they come "
            f"due; `digest send --week {edition.week} --wait` waits for them here."
        )
        return
    trouble = counts["failed"] + counts["unknown"]
    if trouble:
        common.echo_err(
            f"{counts['failed']} failed, {counts['unknown']} unknown: see `digest status "
            f"--edition {edition.id}`, then `digest resend --edition {edition.id} "
            "--failed-only`"
        )
        raise typer.Exit(EXIT_INCOMPLETE)
    typer.echo(f"edition {edition.id} ({edition.week}) is sent")


def _when(moment: Any) -> str:
    """An instant as UTC and as local time in DIGEST_TIMEZONE."""
    settings = common.settings()
    local = moment.astimezone(settings.zone)
    return f"{moment:%Y-%m-%d %H:%M} UTC ({local:%a %H:%M} {settings.timezone})"


def _edition_comparisons(engine: Engine, edition: Edition) -> list[Any]:
    from digest.db import session_scope
    from digest.editions.service import edition_documents

    assert edition.id is not None
    with session_scope(engine) as session:
        return list(edition_documents(session, edition.id))


def _counts_line(counts: dict[str, int]) -> str:
    return " ".join(f"{state}={count}" for state, count in counts.items())


def _waiting_line() -> Callable[[int, Any], None]:
    """``digest send`` waiting for deferred rows: one line whenever the next retry changes."""
    from digest.db import utcnow

    last: list[Any] = [None]

    def say(deferred: int, due: Any) -> None:
        if due == last[0]:
            return
        last[0] = due
        seconds = max(0.0, (due - utcnow()).total_seconds()) if due is not None else 0.0
        at = due.isoformat(timespec="seconds").replace("+00:00", "Z") if due else "?"
        common.echo_err(
            f"waiting: {deferred} deferred row(s), next retry at {at} (in {seconds:.0f} s);"
            " Ctrl-C stops, `digest send` resumes"
        )

    return say


@contextmanager
def _stop_on_signals(stop: threading.Event, *, service: bool = False) -> Iterator[list[int]]:
    """SIGINT/SIGTERM set ``stop`` (the engine finishes or releases its batches); a second
    one interrupts at once. Yields the list the received signal numbers go to. A service
    (the worker) says so in its log; a command, on the terminal."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        name = signal.Signals(signum).name
        if service:
            from digest.logs import log_event

            log_event(log, "stop_requested", signal=name, then="finishing the current batch")
            return
        common.echo_err(f"\n{name}: finishing the current batch (again to abort)")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextmanager
def _progress() -> Iterator[Callable[[SendStats], None]]:
    """A progress display on a terminal; structured log lines (key=value) every few seconds
    otherwise."""
    started = time.monotonic()
    if sys.stderr.isatty():
        from rich.progress import BarColumn, Progress, TextColumn

        with Progress(
            TextColumn("sending"),
            BarColumn(),
            TextColumn("{task.completed} done, {task.fields[detail]}"),
            transient=False,
        ) as bar:
            task = bar.add_task("send", total=None, detail="")

            def update(stats: SendStats) -> None:
                done = stats.sent + stats.failed + stats.unknown + stats.skipped
                bar.update(
                    task,
                    completed=done,
                    detail=f"failed {stats.failed} unknown {stats.unknown} "
                    f"deferred {stats.deferred}",
                )

            yield update
        return

    from digest.logs import log_event

    last = [0.0]

    def log_line(stats: SendStats) -> None:
        now = time.monotonic()
        if now - last[0] < PROGRESS_LOG_SECONDS:
            return
        last[0] = now
        counts = stats.as_dict()
        rate = counts["sent"] / max(now - started, 1e-9)
        log_event(log, "send_progress", rate=round(rate, 1), **dict[str, Any](counts))

    yield log_line


# -- status, resend, cancel, worker ----------------------------------------------------------


@app.command("status")
def status_command(
    edition_id: Annotated[
        int | None,
        typer.Option(
            "--edition", help="Edition id (default: the one in progress, else the latest)."
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object (also on errors).")
    ] = False,
) -> None:
    """Where a send stands: held, paused, sending or sent; rows per state, deferred rows and
    the next retry, the rate over the last minute and the ETA while sending."""
    try:
        data, scheduler = _status(edition_id)
    except DigestError as exc:
        if json_output:
            common.print_json({"error": str(exc)})
            raise typer.Exit(exc.exit_code) from None
        raise
    if json_output:
        common.print_json(data | {"scheduler": scheduler})
        return
    if data["edition"] is None:
        typer.echo("no edition yet: `digest send` (or the scheduler) creates the first one")
        typer.echo(_scheduler_line(scheduler))
        return
    typer.echo(f"edition {data['edition']}  {data['week']}  {data['state']}  {data['subject']}")
    for state, count in data["counts"].items():
        typer.echo(f"  {state:<8} {count:>8}")
    typer.echo(f"  {'deferred':<8} {data['deferred']:>8}")
    if data["next_retry_at"]:
        typer.echo(f"  next retry at {data['next_retry_at']}")
    if data["state"] == "sending":
        eta = data["eta_seconds"]
        eta_text = "unknown" if eta is None else f"{eta:.0f} s"
        typer.echo(
            f"  rate {data['rate_per_second']:.1f} msg/s over the last minute; ETA {eta_text}"
        )
    if data["schedule"]:
        _print_schedule(data["schedule"])
    if data["webhook"]:
        events = ", ".join(f"{kind} {count}" for kind, count in sorted(data["webhook"].items()))
        typer.echo(f"  provider events: {events}")
    typer.echo(_scheduler_line(scheduler))


def _print_schedule(slots: list[dict[str, Any]]) -> None:
    """The local-time schedule as a small table: the instant in UTC and in DIGEST_TIMEZONE,
    the zones due then, rows still to go and sent."""
    import datetime as dt

    settings = common.settings()
    typer.echo(f"  schedule ({len(slots)} send times; local time in {settings.timezone})")
    typer.echo(f"    {'UTC':<16}  {'local':<9}  {'pending':>7}  {'sent':>7}  zones")
    for slot in slots:
        at = dt.datetime.fromisoformat(slot["at"].replace("Z", "+00:00"))
        local = at.astimezone(settings.zone)
        zones = ", ".join(slot["zones"][:3]) + (" ..." if len(slot["zones"]) > 3 else "")
        typer.echo(
            f"    {at:%Y-%m-%d %H:%M}  {local:%a %H:%M}  {slot['pending']:>7}  "
            f"{slot['sent']:>7}  {zones}"
        )


def _status(edition_id: int | None) -> tuple[dict[str, Any], dict[str, Any]]:
    # Core reads only (no ORM, no models): this command is run often, by hand and by probes.
    from digest.delivery.guards import Guards
    from digest.delivery.status import edition_to_show, status_report
    from digest.editions.table import edition_row
    from digest.scheduler.heartbeat import scheduler_status
    from digest.webhooks.counts import webhook_counts

    settings = common.settings()
    engine = common.engine(settings)
    with engine.connect() as connection:
        if edition_id is None:
            edition = edition_to_show(connection, settings.newsletter)
        else:
            edition = edition_row(connection, edition_id)
        webhook = {} if edition is None else webhook_counts(connection, edition.id)
        report = status_report(connection, edition, guards=Guards.of(settings), webhook=webhook)
        data = report.as_json()
    return data, scheduler_status(engine)


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
    if not failed_only:
        raise typer.BadParameter(
            "resend only ever resends rows that were not delivered: pass --failed-only",
            param_hint="--failed-only",
        )
    from digest.delivery.ledger import resend

    engine = common.engine()
    count = resend(engine, edition_id, include_unknown=include_unknown)
    typer.echo(f"{count} row(s) of edition {edition_id} are pending again")


@app.command("cancel")
def cancel_command(edition_id: EditionOption) -> None:
    """Cancel an edition: nothing more is sent; rows already with the provider finish."""
    from digest.delivery.ledger import cancel

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
    heartbeat_file: Annotated[
        Path | None,
        typer.Option(
            "--heartbeat-file",
            help="Touch this file at every loop (at least every --poll seconds), for a health "
            "check that tests its age.",
        ),
    ] = None,
) -> None:
    """Send the batches of every sending edition, alongside any other workers.

    Obeys the send window and the pause switch (it logs why it holds and until when) and
    picks deferred rows up when they are due. SIGTERM or Ctrl-C is a normal stop: the calls
    in flight finish, the rest is given back, exit 0.
    """
    from digest.delivery.run import Outcome, Run, run_worker
    from digest.logs import log_event

    settings = common.settings()
    settings.require_signing_key()
    engine = common.engine(settings)
    common.service_logging(settings)
    stop = threading.Event()
    with _stop_on_signals(stop, service=True):
        report = run_worker(
            engine,
            settings,
            once=once,
            run=Run(
                stop=stop,
                poll=poll,
                on_progress=_beat(heartbeat_file),
                on_idle=_beat(heartbeat_file),
            ),
        )
    typer.echo(_counts_line(report.stats))
    if report.outcome is Outcome.STOPPED:
        log_event(log, "worker_stopped", sent=report.stats["sent"])
        return
    if report.stats["failed"] or report.stats["unknown"]:
        raise typer.Exit(EXIT_INCOMPLETE)


def _beat(path: Path | None) -> Callable[..., None] | None:
    if path is None:
        return None
    path.touch()

    def touch(*_args: object) -> None:
        path.touch()

    return touch
