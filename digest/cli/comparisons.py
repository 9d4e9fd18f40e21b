"""``digest comparisons``: import comparison documents and list a week's selection."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from digest.cli import common

if TYPE_CHECKING:
    from digest.content.document import ComparisonDoc

app = typer.Typer(help="Comparison content: import and list.", no_args_is_help=True)


@app.command("import")
def import_command(
    paths: list[str] = typer.Argument(
        ..., help="JSON files, directories of them, or https:// URLs."
    ),
) -> None:
    """Validate and import comparisons (an upsert by slug; bad files are rejected whole)."""
    from digest.content.importer import import_paths

    engine = common.engine()
    report = import_paths(engine, paths)
    for warning in report.warnings:
        common.echo_err(f"warning: {warning}")
    for error in report.rejected:
        common.echo_err(str(error))
    typer.echo(report.summary())
    if not report.ok:
        raise typer.Exit(1)


def comparison_json(doc: ComparisonDoc) -> dict[str, Any]:
    from digest.content.verdicts import comparison_verdict

    verdict = comparison_verdict(doc)
    return {
        "slug": doc.slug,
        "title": doc.title,
        "published_at": doc.published_at.isoformat().replace("+00:00", "Z"),
        "url": doc.url,
        "recommended": verdict.recommended.slug if verdict.recommended else None,
        # The panel's pick only for a Ship or Mixed tool (digest.content.verdicts).
        "pick": verdict.pick.slug if verdict.pick else None,
        "outcome": verdict.outcome.value,
        "tools": [
            {
                "slug": tool.slug,
                "name": tool.name,
                "category": next(t.category for t in doc.tools if t.slug == tool.slug),
                "verdict": tool.label.value,
                "ship_percent": tool.ship_percent,
                "ship": tool.ship,
                "skip": tool.skip,
                "average_score": float(tool.average_score),
                "community": tool.community.label,
            }
            for tool in verdict.tools
        ],
    }


@app.command("list")
def list_command(
    week: str | None = typer.Option(
        None, "--week", help="ISO week such as 2026-W47 (default: the last complete week)."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print a JSON array."),
    only_new: bool = typer.Option(
        False, "--new", help="Only comparisons not yet carried by a sent edition."
    ),
) -> None:
    """Show the comparisons published in a week with their derived verdicts."""
    from sqlmodel import Session

    from digest.content.verdicts import comparison_verdict
    from digest.editions.selection import comparisons_for_week

    settings = common.settings()
    selected = common.resolve_week(week, settings)
    with Session(common.engine(settings)) as session:
        docs = comparisons_for_week(session, selected, settings.zone, only_new=only_new)
    if json_output:
        common.print_json([comparison_json(doc) for doc in docs])
        return
    typer.echo(f"{selected} ({settings.timezone}): {len(docs)} comparison(s)")
    for doc in docs:
        verdict = comparison_verdict(doc)
        typer.echo(f"\n{doc.published_at:%Y-%m-%d %H:%M} UTC  {doc.title}  [{doc.slug}]")
        for tool in verdict.tools:
            typer.echo(
                f"  {tool.name:<40} {tool.label.value:<5} {tool.ship_percent:>3}%  "
                f"{tool.ship} ship / {tool.skip} skip  avg {tool.average_score}"
            )
        typer.echo(f"  {verdict.headline}")
