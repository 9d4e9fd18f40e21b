"""Helpers shared by the CLI modules: settings, engine, week arguments, JSON output."""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

import orjson
import typer
from sqlalchemy.engine import Engine

from digest.config import Settings, get_settings
from digest.content.weeks import IsoWeek
from digest.db import engine_from_settings, utcnow


def settings() -> Settings:
    return get_settings()


def engine(current: Settings | None = None) -> Engine:
    return engine_from_settings(current or get_settings())


def resolve_week(week: str | None, current: Settings, now: dt.datetime | None = None) -> IsoWeek:
    """``--week`` parsed, or the last complete week in the configured timezone."""
    if week:
        return IsoWeek.parse(week)
    return IsoWeek.last_complete(now or utcnow(), current.zone)


def print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def echo_err(message: str) -> None:
    typer.echo(message, err=True)
