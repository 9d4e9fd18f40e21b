"""``digest scheduler``, ``digest pause`` and ``digest resume``: the weekly service and its
kill switch, thin over ``digest.scheduler``."""

from __future__ import annotations

import getpass
import socket
import threading
from typing import TYPE_CHECKING, Annotated

import typer

from digest.cli import common

if TYPE_CHECKING:
    from digest.scheduler.job import JobReport, JobStatus

app = typer.Typer(help="The weekly scheduler and the pause switch.", no_args_is_help=True)

EXIT_TEMPFAIL = 75  # held or stopped: the edition is intact, run again later


def _exit_code(status: JobStatus) -> int:
    from digest.scheduler.job import JobStatus

    codes = {
        JobStatus.SENT: 0,
        JobStatus.SCHEDULED: 0,
        JobStatus.ALREADY_SENT: 0,
        JobStatus.SKIPPED: 0,
        JobStatus.HELD: EXIT_TEMPFAIL,
        JobStatus.STOPPED: EXIT_TEMPFAIL,
        JobStatus.FAILED: 1,
    }
    return codes[status]


def _operator() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _summary(report: JobReport) -> str:
    parts = [f"week {report.week or '?'}: {report.status}"]
    if report.edition_id is not None:
        parts.append(f"edition {report.edition_id}")
    if report.sent:
        parts.append(", ".join(f"{name} {count}" for name, count in report.sent.items() if count))
    if report.reason:
        parts.append(report.reason)
    if report.error:
        parts.append(f"error: {report.error}")
    return "; ".join(part for part in parts if part)


@app.command("scheduler")
def scheduler_command(
    once: Annotated[
        bool,
        typer.Option(
            "--once",
            help="Run the weekly job now, exactly as the schedule would (send window and "
            "pause switch included), then exit.",
        ),
    ] = False,
    wait: Annotated[
        float,
        typer.Option(
            "--wait",
            min=0,
            help="With --once: seconds to wait while the weekly job runs in another process "
            "(a scheduled run or another --once); 0 refuses at once.",
        ),
    ] = 0.0,
    heartbeat_seconds: Annotated[
        float | None,
        typer.Option(
            "--heartbeat-seconds",
            min=1,
            envvar="DIGEST_HEARTBEAT_SECONDS",
            help="How often the service writes its heartbeat to the database (default: 30).",
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="With --once: print the job report as JSON.")
    ] = False,
) -> None:
    """Run the weekly job on DIGEST_SCHEDULE (crontab, in DIGEST_TIMEZONE) until stopped.

    One scheduler leads per database: on PostgreSQL the others wait and take over if it dies;
    on SQLite a second one refuses to start. SIGTERM or Ctrl-C stops it cleanly (the batch in
    hand is finished or released). `digest status` shows its heartbeat and next run.
    """
    from digest.scheduler.heartbeat import DEFAULT_INTERVAL
    from digest.scheduler.service import SchedulerService, handle_signals, run_once

    settings = common.settings()
    settings.require_signing_key()
    engine = common.engine(settings)
    common.service_logging(settings)
    if once:
        stop = threading.Event()
        with handle_signals(lambda _name: stop.set()):
            report = run_once(settings, engine, wait=wait, stop=stop)
        if json_output:
            common.print_json(report.as_dict())
        else:
            typer.echo(_summary(report))
        raise typer.Exit(_exit_code(report.status))
    if heartbeat_seconds is None:
        heartbeat_seconds = DEFAULT_INTERVAL
    service = SchedulerService(settings, engine, heartbeat_seconds=heartbeat_seconds)
    with handle_signals(service.request_stop):
        code = service.run()
    raise typer.Exit(code)


@app.command("pause")
def pause_command(
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why, for whoever looks next.")
    ] = None,
    by: Annotated[str | None, typer.Option("--by", help="Who pauses (default: user@host).")] = None,
) -> None:
    """Pause all sending: workers stop after their current batch, the scheduler holds its send.

    The switch is stored in the database, so it reaches every process; `digest resume` lifts it.
    """
    from digest.delivery.guards import pause

    state = pause(common.engine(), by=by or _operator(), reason=reason)
    typer.echo(
        f"paused by {state['by']} at {state['at']}"
        + (f": {reason}" if reason else "")
        + "\nworkers stop after their current batch; `digest resume` continues"
    )


@app.command("resume")
def resume_command(
    reason: Annotated[str | None, typer.Option("--reason", help="Why, for the record.")] = None,
    by: Annotated[
        str | None, typer.Option("--by", help="Who resumes (default: user@host).")
    ] = None,
) -> None:
    """Lift the pause switch: held sends and workers continue where they stopped."""
    from digest.delivery.guards import resume

    state = resume(common.engine(), by=by or _operator(), reason=reason)
    typer.echo(f"resumed by {state['by']} at {state['at']}")
