"""Start-up: ``digest --version`` and every ``--help`` import no heavy library.

The command modules import their libraries inside the commands (see ``digest/cli/common.py``),
so the commands that need none start in a fraction of the time. Asserted on ``sys.modules`` in
a fresh interpreter rather than on wall time, which depends on the machine's load;
``bench/startup.py`` prints the times.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from digest.db import upgrade

HEAVY = (
    "sqlalchemy",
    "sqlmodel",
    "pydantic_settings",
    "alembic",
    "psycopg",
    "mjml",
    "jinja2",
    "httpx",
    "starlette",
    "uvicorn",
    "apscheduler",
    "cryptography",
    "orjson",
)

_PROBE = """
import json, sys
from digest.cli import main
sys.argv = ["digest", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit as exc:
    code = exc.code
print("\\n" + json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _modules_after(args: list[str], **env: str) -> tuple[int, set[str]]:
    process = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(args)],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "100", **env},
    )
    report = json.loads(process.stdout.strip().splitlines()[-1])
    return report["code"], {name.partition(".")[0] for name in report["modules"]}


@pytest.mark.parametrize(
    "args",
    [
        ["--version"],
        ["--help"],
        ["send", "--help"],
        ["status", "--help"],
        ["preview", "--help"],
        ["subscribers", "add", "--help"],
        ["comparisons", "import", "--help"],
        ["scheduler", "--help"],
        ["serve", "--help"],
        ["db", "upgrade", "--help"],
    ],
)
def test_help_and_version_import_no_heavy_library(args: list[str]) -> None:
    code, modules = _modules_after(args)
    assert code in (0, None)
    assert sorted(modules & set(HEAVY)) == []


def test_version_loads_neither_rich_nor_pydantic() -> None:
    """Typer itself loads rich and pydantic to print a command's help; not for --version."""
    _code, modules = _modules_after(["--version"])
    assert {"rich", "pydantic"}.isdisjoint(modules)


def test_status_loads_the_database_layer_only(tmp_path: Path) -> None:
    """`digest status` needs SQLAlchemy and the settings, not the renderer, the web stack,
    HTTP clients, the scheduler or alembic."""
    url = f"sqlite:///{tmp_path / 'digest.db'}"
    upgrade(url)
    code, modules = _modules_after(
        ["status"], DIGEST_DATABASE_URL=url, DIGEST_ENVIRONMENT="development"
    )
    assert code == 0
    assert "sqlalchemy" in modules
    unwanted = {"mjml", "jinja2", "httpx", "starlette", "uvicorn", "apscheduler", "alembic"}
    assert sorted(modules & (unwanted | {"rich"})) == []
