"""How long ``digest`` takes to start: wall time per command and the biggest imports.

Usage: ``python bench/startup.py [RUNS]``. Each command runs RUNS times (default 7) in a fresh
interpreter, in a temporary directory with a migrated SQLite database; the best time counts
(the least disturbed by other load). Printed against two baselines measured in the same run:
the bare interpreter (``python -c pass``), and ``digest --version`` with every command's
libraries imported up front, as the CLI did before it imported them lazily. Then the ten
largest cumulative imports of ``digest status`` from ``python -X importtime``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EAGER = (
    "import digest.web.app, digest.delivery.prepare, digest.delivery.sender, "
    "digest.editions.preview, digest.scheduler.service, digest.content.importer, "
    "subscribers.csvio, rich.progress, uvicorn; "
)
CLI = "import sys; from digest.cli import main; sys.argv = ['digest', *sys.argv[1:]]; main()"


def best_of(argv: list[str], runs: int, env: dict[str, str], cwd: Path) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, env=env, cwd=cwd, capture_output=True, check=False)
        best = min(best, time.perf_counter() - started)
    return best


def top_imports(argv: list[str], env: dict[str, str], cwd: Path, count: int = 10) -> list[str]:
    process = subprocess.run(
        [sys.executable, "-X", "importtime", *argv],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    rows = []
    for line in process.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self, cumulative, name = (part.strip() for part in line[12:].split("|"))
        rows.append((int(cumulative), name))
    rows.sort(reverse=True)
    return [f"{micros / 1000:8.1f} ms  {name}" for micros, name in rows[:count]]


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    with tempfile.TemporaryDirectory(prefix="digest-startup-") as folder:
        cwd = Path(folder)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "DIGEST_ENVIRONMENT": "development",
            "DIGEST_DATABASE_URL": f"sqlite:///{cwd / 'digest.db'}",
        }
        python = sys.executable
        subprocess.run(
            [python, "-c", CLI, "db", "upgrade"], env=env, cwd=cwd, check=True, capture_output=True
        )
        bare = best_of([python, "-c", "pass"], runs, env, cwd)
        eager = best_of([python, "-c", EAGER + CLI, "--version"], runs, env, cwd)
        print(
            f"best of {runs} runs; bare interpreter {bare * 1000:.0f} ms, "
            f"--version with every library imported up front {eager * 1000:.0f} ms"
        )
        print(f"{'command':<22} {'wall':>8} {'x bare':>7} {'x eager':>8}")
        for args in (["--version"], ["--help"], ["status"], ["send", "--help"]):
            took = best_of([python, "-c", CLI, *args], runs, env, cwd)
            print(
                f"digest {' '.join(args):<15} {took * 1000:6.0f} ms {took / bare:7.1f} "
                f"{took / eager:8.2f}"
            )
        print("largest cumulative imports of `digest status`:")
        for line in top_imports(["-c", CLI, "status"], env, cwd):
            print(" ", line)


if __name__ == "__main__":
    main()
