"""``digest report``: what readers did with an edition (``digest.delivery.report``).

``--edition N`` or ``--week 2026-W47`` picks the edition (default: the latest); ``--json``
prints the report as JSON, with a top-level ``"clicks": {"human": n, "automated": n}`` and
``"opens"`` (``"reliable": false`` always; figures only with ``DIGEST_TRACK_OPENS``);
``--html FILE`` also writes it as a self-contained page with charts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from digest.cli import common
from digest.errors import InputError, NotFoundError


def report(
    edition_id: Annotated[
        int | None, typer.Option("--edition", help="Edition id (see `digest status`).")
    ] = None,
    week: Annotated[
        str | None, typer.Option("--week", help="The edition of this ISO week, e.g. 2026-W47.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    html: Annotated[
        Path | None,
        typer.Option("--html", help="Also write the report with its charts to this HTML file."),
    ] = None,
) -> None:
    """Clicks (people only: link scanners removed), CTR, deliveries, unsubscribes and votes of
    an edition, per comparison and tool, with the trend of the last 12 editions; opens, marked
    unreliable, when DIGEST_TRACK_OPENS measures them."""
    from digest.content.weeks import IsoWeek
    from digest.db import session_scope
    from digest.delivery.report import edition_report, report_text
    from digest.editions.service import find_edition, latest_edition
    from digest.webhooks.counts import webhook_counts

    if edition_id is not None and week is not None:
        raise InputError("choose one of --edition and --week")
    settings = common.settings()
    engine = common.engine(settings)
    with session_scope(engine) as session:
        if edition_id is None:
            edition = (
                find_edition(session, settings.newsletter, IsoWeek.parse(week))
                if week is not None
                else latest_edition(session, settings.newsletter)
            )
            if edition is None or edition.id is None:
                raise NotFoundError(f"no edition for {week or 'any week'}")
            edition_id = edition.id
        webhook = webhook_counts(session.connection(), edition_id)
    result = edition_report(engine, settings, edition_id, webhook=webhook)
    if html is not None:
        from digest.delivery.report_html import report_html

        try:
            html.write_text(report_html(result, settings.site_name), encoding="utf-8")
        except OSError as exc:
            raise InputError(f"--html: cannot write {html}: {exc.strerror}") from None
    if as_json:
        common.print_json(result.as_json())
    else:
        typer.echo(report_text(result))
