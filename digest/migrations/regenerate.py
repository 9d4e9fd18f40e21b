"""Rewrite the initial migration from the models (only while no database has been deployed).

Run as ``python -m digest.migrations.regenerate``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from alembic import command

from digest.db import alembic_config

VERSIONS = Path(__file__).parent / "versions"


def main() -> None:
    for old in VERSIONS.glob("0001_*.py"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        config = alembic_config(f"sqlite:///{tmp}/empty.db")
        command.revision(config, message="initial schema", autogenerate=True, rev_id="0001")


if __name__ == "__main__":
    main()
