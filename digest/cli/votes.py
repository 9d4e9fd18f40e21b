"""``digest votes``: what readers answered to "Would you ship it?".

``export`` prints, per voted tool, the newsletter's ``ship`` and ``skip`` counts with the
community figure they make together with the imported votes; ``--per-vote`` prints one
anonymised row per current vote instead (a stable hash per subscriber, never an address, and
how many presses from how many networks led to it).
"""

from __future__ import annotations

import csv
import datetime as dt
import sys
from typing import Annotated, Any

import typer

from digest.cli import common
from digest.errors import InputError

app = typer.Typer(help="Reader votes: export the aggregates or the anonymised votes.")

EXPORT_HASH_CONTEXT = b"digest vote export"


def parse_since(value: str | None) -> dt.datetime | None:
    """``--since`` as an aware UTC datetime: a date (midnight UTC) or an ISO 8601 timestamp."""
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InputError(
            f"--since: not a date or ISO 8601 timestamp: {value!r} (e.g. 2026-11-30)"
        ) from None
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


@app.command("export")
def export_command(
    since: Annotated[
        str | None, typer.Option(help="Only votes cast or changed since this date or time (UTC).")
    ] = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV instead of JSON.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON (the default).")] = False,
    per_vote: Annotated[
        bool, typer.Option("--per-vote", help="One anonymised row per vote instead of totals.")
    ] = False,
) -> None:
    """Print the newsletter's votes per tool (or per vote, anonymised)."""
    import hashlib
    import hmac

    from digest.votes import store

    if as_csv and as_json:
        raise InputError("choose one of --csv and --json")
    settings = common.settings()
    start = parse_since(since)
    with common.engine(settings).connect() as connection:
        if per_vote:
            key = hmac.new(
                settings.secret_key.get_secret_value().encode(), EXPORT_HASH_CONTEXT, hashlib.sha256
            ).digest()
            rows = store.per_vote_rows(connection, key, since=start)
        else:
            rows = store.aggregate_rows(connection, since=start)
    if as_csv:
        _write_csv(rows)
    else:
        common.print_json(rows)


def _write_csv(rows: list[dict[str, Any]]) -> None:
    """Rows as CSV, every text cell safe from spreadsheet formulas (tool names are content)."""
    from subscribers.csvio import neutralize

    if not rows:
        return
    writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                key: neutralize(value) if isinstance(value, str) else value
                for key, value in row.items()
            }
        )
