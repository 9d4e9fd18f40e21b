"""Log lines of every digest process, in one format: the CLI, the web app, the worker, the
scheduler, and the lines of the libraries they run on (uvicorn, APScheduler, SQLAlchemy).

``configure`` installs one handler on the root logger, once per process; every logger,
ours or a library's, propagates to it. Two formats, chosen by ``DIGEST_LOG_FORMAT``:

- ``text`` (the default): one logfmt line per record, ``ts=… level=… logger=… event=… k=v``
  (or ``msg="…"`` for a line that is not one of our events); values with spaces, quotes or
  ``=`` are JSON-quoted, so the line stays machine-readable and greppable;
- ``json``: one JSON object per line with the same keys.

Our own code logs an event with fields through ``log_event``; the fields stay structured
(``record.fields``) for the JSON format, and the message is the logfmt text for the rest.
A traceback goes into the ``exc`` field, on the same line.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import sys
from typing import IO, Any, Literal

LogFormat = Literal["text", "json"]
FORMAT_VARIABLE = "DIGEST_LOG_FORMAT"
FORMATS: tuple[LogFormat, ...] = ("text", "json")

_BARE = re.compile(r"^[A-Za-z0-9_.:/@+-]+$")
_HANDLER_NAME = "digest"


def _value(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.isoformat()
    text = str(value)
    return text if _BARE.match(text) else json.dumps(text, ensure_ascii=False)


def logfmt(event: str, **fields: object) -> str:
    """``event=<event> k1=v1 k2=v2`` with values quoted where needed."""
    parts = [f"event={_value(event)}"]
    parts += [f"{key}={_value(value)}" for key, value in fields.items()]
    return " ".join(parts)


def log_event(
    logger: logging.Logger,
    event: str,
    *,
    level: int = logging.INFO,
    exc_info: bool = False,
    **fields: Any,
) -> None:
    """Log the event ``event`` with ``fields`` at ``level`` (with the traceback when
    ``exc_info``): ``event=<event> k=v …`` as text, the same keys in JSON."""
    if logger.isEnabledFor(level):
        logger.log(
            level,
            logfmt(event, **fields),
            exc_info=exc_info,
            extra={"fields": {"event": event, **fields}},
        )


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The keys of one line: time, level, logger, then the event's fields or the message."""
    at = dt.datetime.fromtimestamp(record.created, dt.UTC)
    fields: dict[str, Any] = {
        "ts": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": record.levelname.lower(),
        "logger": record.name,
    }
    own = getattr(record, "fields", None)
    if isinstance(own, dict):
        fields.update(own)
    elif _is_access_line(record):
        assert isinstance(record.args, tuple)
        client, method, path, http_version, status = record.args
        fields.update(event="http_request", client=client, method=method, path=path, status=status)
        fields["http"] = http_version
    else:
        fields["msg"] = record.getMessage()
    if record.exc_info:
        fields["exc"] = logging.Formatter().formatException(record.exc_info)
    return fields


def _is_access_line(record: logging.LogRecord) -> bool:
    """uvicorn's access line: ``(client, method, path, http version, status)`` as its args."""
    return (
        record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5
    )


class TextFormatter(logging.Formatter):
    """One logfmt line per record."""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={_value(value)}" for key, value in record_fields(record).items())


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(record_fields(record), ensure_ascii=False, default=str)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record comes, not the one of when logging
    was configured (a test runner or a CLI test harness swaps it, and closes the old one)."""

    @property
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def chosen_format(value: str | None = None) -> LogFormat:
    """``value``, else ``DIGEST_LOG_FORMAT``, else ``text``; an unknown name is ``text`` (the
    settings refuse it with a clear line; logging must work before they are read)."""
    name = (value or os.environ.get(FORMAT_VARIABLE) or "text").strip().lower()
    return "json" if name == "json" else "text"


def configure(
    *, level: int = logging.WARNING, log_format: str | None = None, stream: IO[str] | None = None
) -> None:
    """Send every logger's records to ``stream`` (stderr) in the chosen format, at ``level``
    and above.

    Safe to call again (a service lowers the level once its settings are read): the one
    handler is replaced, never added twice.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.set_name(_HANDLER_NAME)
    formatter = JsonFormatter() if chosen_format(log_format) == "json" else TextFormatter()
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(level)


def configure_service(log_format: str | None = None) -> None:
    """For a long-running service (web, worker, scheduler): INFO and above, or whatever lower
    level ``--debug`` already set, in the format of its settings."""
    current = logging.getLogger().level
    level = logging.INFO if current in (logging.NOTSET, 0) else min(current, logging.INFO)
    configure(level=level, log_format=log_format)
