"""The ``digest`` command: a thin layer over the library, one sub-module per group of commands.

Errors the user can act on (``DigestError``) are printed as one line on stderr with a non-zero
exit code (``DigestError.exit_code``); ``--debug`` shows the traceback instead, with the same
exit code.
"""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Annotated

import typer

from digest import __version__
from digest.cli import (
    comparisons,
    config_cmd,
    db_cmd,
    delivery,
    preview,
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
)
app.add_typer(comparisons.app, name="comparisons")
app.add_typer(db_cmd.app, name="db")
app.add_typer(config_cmd.app, name="config")
app.add_typer(subscribers.app, name="subscribers")
app.add_typer(votes.app, name="votes")
app.command("serve")(serve.serve)
app.command("preview")(preview.preview)
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
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


def main() -> None:
    """Console entry point."""
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
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # click usage errors and the unexpected
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if _Options.debug:
            raise
        typer.echo(f"error: {type(exc).__name__}: {exc} (run with --debug for details)", err=True)
        sys.exit(1)
    sys.exit(result if isinstance(result, int) else 0)
