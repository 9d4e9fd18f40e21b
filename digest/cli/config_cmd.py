"""``digest config``: show the effective settings; make a secret key."""

from __future__ import annotations

import typer

from digest.cli import common
from digest.secret_key import new_secret

app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)


@app.command("show")
def show(json_output: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Print every setting with its effective value; secrets are masked."""
    values = common.settings().masked()
    if json_output:
        common.print_json(values)
        return
    width = max(len(name) for name in values)
    for name, value in values.items():
        shown = "" if value is None else value
        typer.echo(f"DIGEST_{name.upper():<{width}}  {shown}")


@app.command("new-secret")
def new_secret_command() -> None:
    """Print a new random DIGEST_SECRET_KEY (64 characters); changing it voids every link
    already sent."""
    typer.echo(new_secret())
