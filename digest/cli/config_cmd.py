"""``digest config``: show the effective settings."""

from __future__ import annotations

import typer

from digest.cli import common

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
