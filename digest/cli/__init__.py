"""The ``digest`` command: a thin layer over the library, one sub-module per group of commands.

Errors the user can act on (``DigestError``) are printed as one line on stderr with a non-zero
exit code (``DigestError.exit_code``); ``--debug`` shows the traceback instead, with the same
exit code.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from typing import Annotated

import typer

# typer (0.29 and later) carries its own copy of click; its exceptions are the ones raised here.
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

from digest import __version__, logs
from digest.cli import (
    comparisons,
    config_cmd,
    db_cmd,
    delivery,
    preview,
    report,
    scheduler,
    serve,
    subscribers,
    votes,
)
from digest.errors import DigestError

app = typer.Typer(
    name="digest",
    help="Weekly AI tool verdicts: import comparisons, manage subscribers, send editions.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
app.add_typer(comparisons.app, name="comparisons")
app.add_typer(db_cmd.app, name="db")
app.add_typer(config_cmd.app, name="config")
app.add_typer(subscribers.app, name="subscribers")
app.add_typer(votes.app, name="votes")
app.command("serve")(serve.serve)
app.command("preview")(preview.preview)
app.command("report")(report.report)
# send, status, resend, cancel, worker; scheduler, pause, resume: top-level commands.
app.registered_commands.extend(delivery.app.registered_commands)
app.registered_commands.extend(scheduler.app.registered_commands)


class _Options:
    """Global options of the current invocation (read by ``main`` after the command ran)."""

    debug = False


def _version(value: bool) -> None:
    if value:
        typer.echo(f"digest {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    _Options.debug = debug
    logs.configure(level=logging.DEBUG if debug else logging.WARNING)


EX_USAGE = 64  # sysexits.h: the command was used incorrectly
EX_IOERR = 74  # sysexits.h: an error while reading or writing a file


def _usage_line(exc: ClickException) -> str:
    """A usage error as one line in the form of every other error: ``error: <what> (see
    `<command> --help`)``, without the exception's class name or click's usage block."""
    message = " ".join(exc.format_message().split())  # one line
    message = message.replace("Value error, ", "")  # from typer's pydantic adapters
    message = message.rstrip(".")
    # pydantic's "Input should be ..." after the parameter's name
    message = re.sub(r"(: )([A-Z])(?=[a-z])", lambda m: m[1] + m[2].lower(), message)
    if isinstance(exc, UsageError) and exc.ctx is not None:
        message += f" (see `{exc.ctx.command_path} --help`)"
    return "error: " + message[:1].lower() + message[1:]


def main() -> None:
    """Console entry point: runs the command and turns every way it can end into an exit
    code, with at most one line on stderr (``--debug``: a traceback, and the same code)."""
    try:
        result = app(standalone_mode=False)
    except DigestError as exc:
        if _Options.debug:
            traceback.print_exc()  # the traceback, but still the error's own exit code
        else:
            typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except NoArgsIsHelpError as exc:  # `digest` or `digest db` alone: the help, as a usage error
        typer.echo(exc.format_message())
        sys.exit(EX_USAGE)
    except UsageError as exc:  # unknown command or option, bad or missing value
        typer.echo(_usage_line(exc), err=True)
        sys.exit(EX_USAGE)
    except ClickException as exc:  # e.g. a file argument that cannot be opened
        typer.echo(_usage_line(exc), err=True)
        sys.exit(exc.exit_code)
    except OSError as exc:  # a file that cannot be read or written, a network failure
        if _Options.debug:
            traceback.print_exc()
        else:
            where = f"{exc.filename}: " if exc.filename else ""
            reason = (exc.strerror or str(exc) or type(exc).__name__).strip()
            typer.echo(f"error: {where}{reason[:1].lower()}{reason[1:]}", err=True)
        sys.exit(EX_IOERR)
    except Exception as exc:  # a bug: say so in one line
        if _Options.debug:
            traceback.print_exc()
        else:
            first = (str(exc).strip().splitlines() or [""])[0]
            typer.echo(
                f"error: unexpected {type(exc).__name__}: {first} (run with --debug for the "
                "traceback)",
                err=True,
            )
        sys.exit(1)
    sys.exit(result if isinstance(result, int) else 0)
