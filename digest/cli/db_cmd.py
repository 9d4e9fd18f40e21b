"""``digest db``: schema migrations."""

from __future__ import annotations

import typer

from digest.cli import common

app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)


@app.command("upgrade")
def upgrade_command(
    revision: str = typer.Argument("head", help="Target revision (default: the latest)."),
) -> None:
    """Create or migrate the database schema to the latest revision."""
    from digest.db import current_revision, database_label, engine_from_settings, upgrade

    settings = common.settings()
    upgrade(settings.database_url, revision)
    engine = engine_from_settings(settings)
    typer.echo(f"database {database_label(engine.url)} at revision {current_revision(engine)}")


@app.command("current")
def current_command() -> None:
    """Show the database's revision and whether it is up to date (creates nothing)."""
    from digest.db import current_revision, engine_from_settings, head_revision, sqlite_path

    settings = common.settings()
    engine = engine_from_settings(settings)
    path = sqlite_path(engine.url)
    missing = path is not None and not path.is_file()
    current = None if missing else current_revision(engine)
    head = head_revision(settings.database_url)
    state = (
        "up to date" if current == head else f"behind (latest is {head}; run `digest db upgrade`)"
    )
    typer.echo(f"revision {current or 'none'}: {state}")
