"""``digest subscribers``: add, list, import, export, unsubscribe, remove and audit subscribers.

A thin layer over the ``subscribers`` package. Commands act as an administrator (audit actor
``cli``); unlike the public signup form they say plainly what state an address is in.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from digest.cli import common
from digest.errors import InputError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from digest.config import Settings
    from subscribers.models import AuditEntry, Status, Subscriber

app = typer.Typer(
    help="Subscribers: add, import, export, unsubscribe, audit.", no_args_is_help=True
)

ACTOR = "cli"
_SEND_CHUNK = 1000


def _status(value: str | None) -> Status | None:
    from subscribers.models import Status

    if value is None:
        return None
    try:
        return Status(value.lower())
    except ValueError:
        known = ", ".join(status.value for status in Status)
        raise InputError(f"unknown status {value!r} (one of {known})") from None


@contextmanager
def _backend(settings: Settings) -> Iterator[Any]:
    from digest.backends.registry import get_backend

    backend = get_backend(settings)
    try:
        yield backend
    finally:
        backend.close()


def _send_confirmations(settings: Settings, engine: Engine, ids: Sequence[int]) -> int:
    """Send the confirmation email to each pending subscriber of ``ids``; returns how many."""
    from subscribers.confirmation import send_confirmations

    accepted = 0
    with _backend(settings) as backend:
        for start in range(0, len(ids), _SEND_CHUNK):
            results = send_confirmations(
                engine, settings, backend, ids[start : start + _SEND_CHUNK]
            )
            accepted += sum(1 for result in results if result.accepted)
    return accepted


def subscriber_json(subscriber: Subscriber) -> dict[str, Any]:
    return {
        "id": subscriber.id,
        "email": subscriber.email,
        "name": subscriber.name,
        "status": str(subscriber.status),
        "paused": subscriber.paused,
        "timezone": subscriber.timezone,
        "categories": list(subscriber.categories),
        "source": subscriber.source,
        "created_at": subscriber.created_at.isoformat(),
        "confirmed_at": subscriber.confirmed_at.isoformat() if subscriber.confirmed_at else None,
        "unsubscribed_at": (
            subscriber.unsubscribed_at.isoformat() if subscriber.unsubscribed_at else None
        ),
    }


def audit_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "at": entry.at.isoformat(),
        "action": entry.action,
        "cause": entry.cause,
        "actor": entry.actor,
        "old_status": entry.old_status,
        "new_status": entry.new_status,
        "subscriber_id": entry.subscriber_id,
        "detail": entry.detail,
    }


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [len(header) for header in headers]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    for line in (headers, *rows):
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))


@app.command("add")
def add_command(
    email: str = typer.Argument(..., help="The address to subscribe."),
    *,
    name: str = typer.Option("", "--name", help="Display name."),
    timezone: str = typer.Option("UTC", "--timezone", help="IANA timezone, e.g. Europe/Berlin."),
    category: list[str] = typer.Option(
        [], "--category", "-c", help="A category to follow (repeat; none means all)."
    ),
    confirmed: bool = typer.Option(
        False,
        "--confirmed",
        help="Consent is already on record: activate now instead of sending a confirmation.",
    ),
    source: str = typer.Option("cli", "--source", help="Where the consent came from."),
) -> None:
    """Subscribe an address: pending with a confirmation email, or active with --confirmed."""
    from digest.db import immediate_session
    from subscribers import lifecycle

    settings = common.settings()
    if not confirmed:
        settings.require_signing_key()  # the confirmation email carries a signed link
    engine = common.engine(settings)
    with immediate_session(engine) as session:
        outcome = lifecycle.signup(
            session,
            email,
            name=name,
            timezone=timezone,
            categories=category,
            source=source,
            actor=ACTOR,
            confirmed=confirmed,
        )
        subscriber = outcome.subscriber
        subscriber_id = subscriber.id if subscriber else None
        shown = subscriber.email if subscriber else email.strip()
        status = str(subscriber.status) if subscriber else "suppressed"
    if outcome.should_send_confirmation and subscriber_id is not None:
        sent = _send_confirmations(settings, engine, [subscriber_id])
        note = "confirmation email sent" if sent else "confirmation email NOT sent"
        typer.echo(f"{shown}: {status}, {note}")
    elif outcome.created:
        typer.echo(f"{shown}: {status}")
    elif subscriber is None:
        typer.echo(f"{shown}: on the suppression list, not subscribed")
    else:
        typer.echo(f"{shown}: already {status}, nothing changed")


@app.command("list")
def list_command(
    status: str | None = typer.Option(None, "--status", help="Only this status."),
    json_output: bool = typer.Option(False, "--json", help="Print a JSON array."),
) -> None:
    """List subscribers, oldest first."""
    from sqlmodel import Session, col, select

    from subscribers.models import Subscriber

    wanted = _status(status)
    with Session(common.engine()) as session:
        statement = select(Subscriber).order_by(col(Subscriber.id))
        if wanted is not None:
            statement = statement.where(Subscriber.status == str(wanted))
        subscribers = session.exec(statement).all()
    if json_output:
        common.print_json([subscriber_json(subscriber) for subscriber in subscribers])
        return
    _table(
        ("EMAIL", "STATUS", "NAME", "TIMEZONE", "CATEGORIES", "CREATED"),
        [
            (
                subscriber.email,
                str(subscriber.status) + (" (paused)" if subscriber.paused else ""),
                subscriber.name,
                subscriber.timezone,
                "; ".join(subscriber.categories) or "(all)",
                f"{subscriber.created_at:%Y-%m-%d %H:%M}",
            )
            for subscriber in subscribers
        ],
    )
    typer.echo(f"{len(subscribers)} subscriber(s)")


@app.command("import")
def import_command(
    path: Path = typer.Argument(..., help="CSV with the header email,name,timezone,categories."),
    confirmed: bool = typer.Option(
        False,
        "--confirmed",
        help="Consent is on record: import as active, no confirmation emails.",
    ),
    source: str | None = typer.Option(
        None, "--source", help="Where the consent came from (default: import:<file name>)."
    ),
) -> None:
    """Import subscribers from CSV; new ones get a confirmation email unless --confirmed.

    Every bad row is reported with its line number and the good rows are imported. The exit
    status is 1 when any row was rejected.
    """
    from digest.db import immediate_session
    from subscribers import csvio

    settings = common.settings()
    if not confirmed:
        settings.require_signing_key()  # confirmation emails carry signed links
    engine = common.engine(settings)
    with immediate_session(engine) as session:
        report = csvio.import_csv(
            session, path, confirmed=confirmed, actor=ACTOR, consent_source=source
        )
    for rejected in report.rejected:
        common.echo_err(f"{path}: {rejected}")
    typer.echo(report.summary())
    if report.imported_ids and not confirmed:
        sent = _send_confirmations(settings, engine, report.imported_ids)
        typer.echo(f"confirmation emails sent: {sent}")
    if report.rejected:
        raise typer.Exit(1)


@app.command("export")
def export_command(
    path: str = typer.Argument(..., help="Where to write the CSV ('-' for standard output)."),
    status: str | None = typer.Option(None, "--status", help="Only this status."),
) -> None:
    """Export subscribers as CSV (email,name,timezone,categories,status), formula-safe."""
    from sqlmodel import Session

    from subscribers import csvio

    wanted = _status(status)
    with Session(common.engine()) as session:
        if path == "-":
            csvio.export_csv(session, sys.stdout, status=wanted)
            return
        count = csvio.export_csv(session, Path(path), status=wanted)
    common.echo_err(f"exported {count} subscriber(s) to {path}")


@app.command("unsubscribe")
def unsubscribe_command(email: str = typer.Argument(..., help="The address.")) -> None:
    """Unsubscribe an address (audited as an administrator's action) and suppress it."""
    from digest.db import immediate_session
    from subscribers import lifecycle

    with immediate_session(common.engine()) as session:
        subscriber = lifecycle.admin_unsubscribe(session, email, actor=ACTOR)
        shown, status = subscriber.email, str(subscriber.status)
    typer.echo(f"{shown}: {status}")


@app.command("remove")
def remove_command(email: str = typer.Argument(..., help="The address.")) -> None:
    """Delete a subscriber. Its suppression (if any) and its audit trail are kept."""
    from digest.db import immediate_session
    from subscribers import lifecycle, suppression

    with immediate_session(common.engine()) as session:
        subscriber = lifecycle.remove(session, email, actor=ACTOR)
        shown = subscriber.email
        suppressed = suppression.is_suppressed(session, subscriber.email_key)
    note = " (still suppressed)" if suppressed else ""
    typer.echo(f"{shown}: removed{note}")


@app.command("export-data")
def export_data_command(
    email: str = typer.Argument(..., help="The address."),
    out: Path | None = typer.Option(None, "--out", help="Write the JSON here instead of stdout."),
) -> None:
    """Everything stored about an address, as JSON: subscriber row, audit trail, suppression,
    ledger rows, provider events, votes, link hits and open pixel fetches."""
    import orjson

    from digest import privacy

    with common.engine().connect() as connection:
        data = privacy.export_data(connection, email)
    text = orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
        common.echo_err(f"{email}: personal data written to {out}")


@app.command("erase")
def erase_command(
    email: str = typer.Argument(..., help="The address."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
) -> None:
    """Erase an address's personal data: its subscriber row, votes, link hits and open pixel
    fetches, provider events, and the address in its ledger rows. The audit trail and the
    suppression entry stay."""
    from digest import privacy
    from digest.db import immediate_transaction

    if not yes and not typer.confirm(f"Erase everything stored about {email}?"):
        raise typer.Exit(1)
    with immediate_transaction(common.engine()) as connection:
        erased = privacy.erase(connection, email, actor=ACTOR)
    typer.echo(
        f"{erased.email}: erased (votes {erased.votes}, vote presses {erased.vote_presses}, "
        f"provider events {erased.provider_events}, ledger rows {erased.ledger_rows}, "
        f"link hits {erased.link_hits}, open pixel fetches {erased.open_hits}); "
        "audit trail and suppression kept"
    )


@app.command("log")
def log_command(
    email: str = typer.Argument(..., help="The address."),
    json_output: bool = typer.Option(False, "--json", help="Print a JSON array."),
) -> None:
    """Show the audit trail of an address: every change, when, why and by whom."""
    from sqlmodel import Session

    from subscribers import audit
    from subscribers.normalize import normalize_email

    key = normalize_email(email).key
    with Session(common.engine()) as session:
        entries = audit.trail(session, key)
    if json_output:
        common.print_json([audit_json(entry) for entry in entries])
        return
    if not entries:
        typer.echo(f"no audit entries for {email.strip()}")
        return
    _table(
        ("AT", "ACTION", "CAUSE", "ACTOR", "STATUS", "DETAIL"),
        [
            (
                f"{entry.at:%Y-%m-%d %H:%M:%S}",
                entry.action,
                entry.cause,
                entry.actor,
                _status_change(entry),
                ", ".join(f"{k}={v}" for k, v in entry.detail.items()),
            )
            for entry in entries
        ],
    )


def _status_change(entry: AuditEntry) -> str:
    if entry.old_status == entry.new_status:
        return entry.new_status or ""
    return f"{entry.old_status or '-'} -> {entry.new_status or '-'}"


@app.command("suppressions")
def suppressions_command(
    json_output: bool = typer.Option(False, "--json", help="Print a JSON array."),
) -> None:
    """List suppressed addresses (never mailed, whatever their subscriber row says)."""
    from sqlmodel import Session

    from subscribers import suppression
    from subscribers.models import Suppression

    with Session(common.engine()) as session:
        entries: list[Suppression] = suppression.list_suppressions(session)
    if json_output:
        common.print_json(
            [
                {
                    "email_key": entry.email_key,
                    "reason": entry.reason,
                    "detail": entry.detail,
                    "created_at": entry.created_at.isoformat(),
                }
                for entry in entries
            ]
        )
        return
    _table(
        ("ADDRESS", "REASON", "SINCE", "DETAIL"),
        [
            (entry.email_key, entry.reason, f"{entry.created_at:%Y-%m-%d %H:%M}", entry.detail)
            for entry in entries
        ],
    )
    typer.echo(f"{len(entries)} suppressed address(es)")


@app.command("unsuppress")
def unsuppress_command(email: str = typer.Argument(..., help="The address.")) -> None:
    """Lift the suppression of an address (audited). Its subscriber status is not changed."""
    from digest.db import immediate_session
    from subscribers import suppression

    with immediate_session(common.engine()) as session:
        entry = suppression.remove(session, email, actor=ACTOR)
        reason = entry.reason
    typer.echo(f"{email.strip()}: no longer suppressed (was {reason})")
