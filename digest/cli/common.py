"""Helpers shared by the CLI modules: settings, engine, week arguments, JSON output.

The command modules import only this module, typer and the standard library at their top:
everything heavier (SQLAlchemy, the renderer, the web stack, HTTP clients) is imported inside
the command that needs it, so that ``digest --help``, ``--version`` and the light commands
start fast. ``tests/core/test_cli_startup.py`` holds that line.
"""

from __future__ import annotations

import datetime as dt
import sys
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from digest.config import Settings
    from digest.content.weeks import IsoWeek


def settings() -> Settings:
    """The process's settings; the rules they switch for the whole process (reserved test
    domains) are applied here, as ``digest.web.app.create_app`` does for the web app."""
    from digest.config import get_settings

    current = get_settings()
    # Off is email-validator's default: no need to load it (and idna) for every command.
    if current.allow_test_domains or "email_validator" in sys.modules:
        from subscribers.normalize import allow_test_domains

        allow_test_domains(current.allow_test_domains)
    return current


def engine(current: Settings | None = None) -> Engine:
    """The engine of the configured database, once it is known to have the latest schema
    (otherwise one line, ``database … has no schema: run `digest db upgrade```, exit 78)."""
    from digest.db import engine_from_settings, require_schema

    result = engine_from_settings(current or settings())
    require_schema(result)
    return result


def resolve_week(week: str | None, current: Settings, now: dt.datetime | None = None) -> IsoWeek:
    """``--week`` parsed, or the last complete week in the configured timezone."""
    from digest.content.weeks import IsoWeek

    if week:
        return IsoWeek.parse(week)
    return IsoWeek.last_complete(now or dt.datetime.now(dt.UTC), current.zone)


def service_logging(current: Settings) -> None:
    """Log lines of a long-running command (web, worker, scheduler) at INFO, in the format of
    ``DIGEST_LOG_FORMAT`` (``digest.logs``)."""
    from digest import logs

    logs.configure_service(current.log_format)


def require_free_port(host: str, port: int) -> None:
    """Refuse in one line (exit 78) an address a server cannot listen on (in use, not this
    machine's, a privileged port), before uvicorn would log its own lines and exit 3."""
    import socket

    from digest.errors import ConfigError

    try:
        family, kind, proto, _name, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM
        )[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind(address)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(
            f"cannot listen on {host}:{port}: {reason.lower()} (choose another --port or --host)"
        ) from None


def print_json(value: Any) -> None:
    import orjson

    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def echo_err(message: str) -> None:
    typer.echo(message, err=True)
