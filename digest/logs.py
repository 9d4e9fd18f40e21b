"""One structured log line per step: ``event=<name> key=value ...`` (logfmt).

Values with spaces, quotes or ``=`` are JSON-quoted so the line stays machine-readable;
datetimes are written in ISO 8601. The scheduler's modules log through ``log_event`` only,
which keeps every line greppable by ``event=``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from typing import Any

_BARE = re.compile(r"^[A-Za-z0-9_.:/@+-]+$")


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
    """Log one structured line at ``level`` (with the traceback when ``exc_info``)."""
    if logger.isEnabledFor(level):
        logger.log(level, logfmt(event, **fields), exc_info=exc_info)
