"""How long ``digest`` takes to start: wall time per command and the biggest imports.

Usage: ``python bench/startup.py [RUNS]``. Each command runs RUNS times (default 7) in a fresh
interpreter, with this checkout's code, in a temporary directory with two migrated SQLite
databases: a fresh one, and one with an edition sent (the bundled comparisons and subscribers
imported, ``digest send`` to the file outbox). The best time counts (the least disturbed by
other load), with its CPU time beside it. Printed against two baselines measured in the same
run: the bare interpreter (``python -c pass``), and ``digest --version`` with every command's
libraries imported up front, as the CLI did before it imported them lazily. Then what the
libraries ``digest status`` cannot do without cost by themselves (the floor under it), and where
the import time of ``digest status`` goes, per package, from ``python -X importtime``.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EAGER = (
    "import digest.web.app, digest.delivery.prepare, digest.delivery.sender, "
    "digest.editions.preview, digest.scheduler.service, digest.content.importer, "
    "subscribers.csvio, rich.progress, uvicorn; "
)
CLI = "import sys; from digest.cli import main; sys.argv = ['digest', *sys.argv[1:]]; main()"
COMMANDS = (
    ("fresh", ["--version"]),
    ("fresh", ["--help"]),
    ("fresh", ["send", "--help"]),
    ("fresh", ["status"]),
    ("fresh", ["status", "--json"]),
    ("edition", ["status"]),
    ("edition", ["status", "--json"]),
)
# The libraries `digest status` needs, imported alone: what no laziness of ours can remove.
FLOORS = (
    ("typer (the CLI)", "import typer.main"),
    ("pydantic-settings (the settings)", "import pydantic_settings"),
    ("sqlalchemy (Core)", "import sqlalchemy"),
    ("all three", "import typer.main, pydantic_settings, sqlalchemy"),
    ("psycopg (PostgreSQL's driver)", "import psycopg"),
)


def best_of(argv: list[str], runs: int, env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """The best wall time and the best CPU time (user + system) of ``runs`` runs: on a
    loaded machine the CPU time moves much less than the wall time."""
    best_wall = best_cpu = float("inf")
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(argv, env=env, cwd=cwd, capture_output=True, check=False)
        best_wall = min(best_wall, time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        best_cpu = min(best_cpu, cpu)
    return best_wall, best_cpu


def imports_by_package(
    argv: list[str], env: dict[str, str], cwd: Path, count: int = 12
) -> list[str]:
    """Where the import time of a command goes: ``python -X importtime``'s own time of every
    module (without the modules it imports), summed per top-level package, largest first."""
    process = subprocess.run(
        [sys.executable, "-X", "importtime", *argv],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    totals: dict[str, int] = {}
    for line in process.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        own, _cumulative, name = (part.strip() for part in line[12:].split("|"))
        package = name.partition(".")[0]
        totals[package] = totals.get(package, 0) + int(own)
    rows = sorted(totals.items(), key=lambda item: -item[1])
    lines = [f"{micros / 1000:8.1f} ms  {package}" for package, micros in rows[:count]]
    rest = sum(micros for _package, micros in rows[count:])
    lines.append(f"{rest / 1000:8.1f} ms  {len(rows) - count} other packages")
    lines.append(f"{sum(totals.values()) / 1000:8.1f} ms  in all")
    return lines


def examples() -> tuple[Path, Path]:
    """The comparisons and subscribers to fill the database with."""
    for folder in (REPO.parent / "shared" / "fixtures", REPO / "examples"):
        if any((folder / "comparisons").glob("*.json")) and (folder / "subscribers.csv").is_file():
            return folder / "comparisons", folder / "subscribers.csv"
    raise SystemExit("no comparisons and subscribers.csv (../shared/fixtures or examples/)")


def databases(folder: Path) -> dict[str, dict[str, str]]:
    """The environment of each database: ``fresh`` (migrated, empty) and ``edition`` (the
    week 2026-W47 sent to every subscriber through the file outbox)."""
    base = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(REPO),
        "DIGEST_ENVIRONMENT": "development",
        "DIGEST_OUTBOX_DIR": str(folder / "outbox"),
    }
    found = {
        name: base | {"DIGEST_DATABASE_URL": f"sqlite:///{folder / name}.db"}
        for name in ("fresh", "edition")
    }
    comparisons, subscribers = examples()
    steps = {
        "fresh": [["db", "upgrade"]],
        "edition": [
            ["db", "upgrade"],
            ["comparisons", "import", str(comparisons)],
            ["subscribers", "import", "--confirmed", str(subscribers)],
            ["send", "--week", "2026-W47"],
        ],
    }
    for name, commands in steps.items():
        for args in commands:
            subprocess.run(
                [sys.executable, "-c", CLI, *args],
                env=found[name],
                cwd=folder,
                check=True,
                capture_output=True,
            )
    return found


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    with tempfile.TemporaryDirectory(prefix="digest-startup-") as name:
        cwd = Path(name)
        envs = databases(cwd)
        python = sys.executable
        bare, bare_cpu = best_of([python, "-c", "pass"], runs, envs["fresh"], cwd)
        eager, eager_cpu = best_of(
            [python, "-c", EAGER + CLI, "--version"], runs, envs["fresh"], cwd
        )
        print(
            f"best of {runs} runs; bare interpreter {bare * 1000:.0f} ms "
            f"(cpu {bare_cpu * 1000:.0f} ms), --version with every library imported up front "
            f"{eager * 1000:.0f} ms (cpu {eager_cpu * 1000:.0f} ms)"
        )
        print(
            f"{'command':<22} {'database':<8} {'wall':>8} {'cpu':>8} {'x bare':>7} {'x eager':>8}"
        )
        for database, args in COMMANDS:
            took, cpu = best_of([python, "-c", CLI, *args], runs, envs[database], cwd)
            print(
                f"digest {' '.join(args):<15} {database:<8} {took * 1000:6.0f} ms "
                f"{cpu * 1000:5.0f} ms {took / bare:7.1f} {took / eager:8.2f}"
            )
        print("the libraries alone (python -c 'import ...'):")
        for label, code in FLOORS:
            took, cpu = best_of([python, "-c", code], runs, envs["fresh"], cwd)
            print(f"  {label:<34} {took * 1000:6.0f} ms {cpu * 1000:5.0f} ms")
        print(
            "import time of `digest status` per package (-X importtime, database with an edition):"
        )
        for line in imports_by_package(["-c", CLI, "status"], envs["edition"], cwd):
            print(" ", line)


if __name__ == "__main__":
    main()
