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
    from digest.db import current_revision, upgrade

    settings = common.settings()
    upgrade(settings.database_url, revision)
    engine = common.engine(settings)
    typer.echo(f"database at revision {current_revision(engine)}")


@app.command("current")
def current_command() -> None:
    """Show the database's revision and whether it is up to date."""
    from digest.db import current_revision, head_revision

    settings = common.settings()
    engine = common.engine(settings)
    current, head = current_revision(engine), head_revision(settings.database_url)
    state = (
        "up to date" if current == head else f"behind (latest is {head}; run `digest db upgrade`)"
    )
    typer.echo(f"revision {current or 'none'}: {state}")
