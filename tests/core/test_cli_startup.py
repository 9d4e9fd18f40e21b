"""Start-up: ``digest --version`` and every ``--help`` import no heavy library, and
``digest status`` reads the database with SQLAlchemy Core alone.

The command modules import their libraries inside the commands (see ``digest/cli/common.py``),
so the commands that need none start in a fraction of the time. ``digest status`` reads through
table clauses (``digest.delivery.table``, ``digest.editions.table``, ``digest.state``), without
the ORM, SQLModel or the models. Asserted on ``sys.modules`` in a fresh interpreter rather than
on wall time, which depends on the machine's load; ``bench/startup.py`` prints the times.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from digest.db import create_engine
from digest.delivery.local_time import LocalSchedule, state_key
from digest.state import write_state

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
    """The exit code of ``digest ARGS`` and the top-level packages it imported."""
    code, modules = _all_modules_after(args, **env)
    return code, {name.partition(".")[0] for name in modules}


def _all_modules_after(args: list[str], **env: str) -> tuple[int, set[str]]:
    process = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(args)],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "100", **env},
    )
    report = json.loads(process.stdout.strip().splitlines()[-1])
    return report["code"], set(report["modules"])


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


# What `digest status` must not load: the ORM and the models, nor any library of another command.
NOT_FOR_STATUS = (
    "sqlmodel",
    "sqlalchemy.orm",
    "alembic",
    "digest.models",
    "digest.delivery.models",
    "digest.delivery.ledger",
    "digest.editions.models",
    "digest.editions.service",
    "digest.webhooks.models",
    "digest.webhooks.process",
    "digest.content",
    "digest.render",
    "subscribers",
    "mjml",
    "jinja2",
    "httpx",
    "starlette",
    "uvicorn",
    "apscheduler",
    "cryptography",
    "rich",
)


def _with_an_edition_going_out(url: str) -> None:
    """A sending edition with sent, pending and deferred rows, a provider event and a local-time
    schedule: every query of the report has rows to read."""
    now = dt.datetime.now(dt.UTC)
    engine = create_engine(url)
    edition = sa.table(
        "edition",
        *(sa.column(name) for name in ("id", "newsletter", "week", "status", "subject")),
        *(sa.column(name) for name in ("ledger_complete", "created_at")),
    )
    delivery = sa.table(
        "delivery",
        *(sa.column(name) for name in ("id", "edition_id", "email", "variant", "state")),
        *(sa.column(name) for name in ("attempts", "message_id", "zone", "not_before")),
        *(sa.column(name) for name in ("sent_at", "created_at", "updated_at")),
    )
    event = sa.table(
        "webhook_event",
        *(sa.column(name) for name in ("provider", "event_key", "event_type", "delivery_id")),
        *(sa.column(name) for name in ("received_at", "description", "raw")),
    )
    rows = [
        {"id": 1, "state": "sent", "zone": "Europe/Berlin", "not_before": None, "sent_at": now},
        {"id": 2, "state": "pending", "zone": "Asia/Tokyo", "not_before": None, "sent_at": None},
        {"id": 3, "state": "deferred", "zone": None, "not_before": now, "sent_at": None},
    ]
    with engine.begin() as connection:
        connection.execute(
            sa.insert(edition).values(
                id=1,
                newsletter="weekly",
                week="2026-W47",
                status="sending",
                subject="Ship or skip",
                ledger_complete=True,
                created_at=now,
            )
        )
        connection.execute(
            sa.insert(delivery),
            [
                row
                | {
                    "edition_id": 1,
                    "email": f"reader{row['id']}@example.com",
                    "variant": "all",
                    "attempts": 1,
                    "message_id": f"<{row['id']}@example.com>",
                    "created_at": now,
                    "updated_at": now,
                }
                for row in rows
            ],
        )
        connection.execute(
            sa.insert(event).values(
                provider="postmark",
                event_key="e1",
                event_type="delivered",
                delivery_id=1,
                received_at=now,
                description="",
                raw="{}",
            )
        )
        schedule = LocalSchedule(dt.time(8), ZoneInfo("UTC"), now, now.date())
        write_state(connection, state_key(1), schedule.as_dict())
    engine.dispose()


@pytest.mark.parametrize("args", [["status"], ["status", "--json"]])
@pytest.mark.parametrize("edition", [False, True], ids=["fresh", "with-an-edition"])
def test_status_reads_with_sqlalchemy_core_alone(
    db_url: str, args: list[str], edition: bool
) -> None:
    """`digest status` needs SQLAlchemy Core, the settings and the database driver: not the ORM,
    SQLModel or the models, nor the renderer, the web stack, HTTP clients or the scheduler."""
    if edition:
        _with_an_edition_going_out(db_url)
    code, modules = _all_modules_after(
        args, DIGEST_DATABASE_URL=db_url, DIGEST_ENVIRONMENT="development"
    )
    assert code == 0
    assert {"sqlalchemy", "pydantic_settings", "digest.delivery.status"} <= modules
    loaded = {
        name
        for name in modules
        for heavy in NOT_FOR_STATUS
        if name == heavy or name.startswith(heavy + ".")
    }
    assert sorted(loaded) == []
