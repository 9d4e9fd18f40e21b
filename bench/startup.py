"""How long ``digest`` takes to start: wall time per command and the biggest imports.

Usage: ``python bench/startup.py [RUNS]``. Each command runs RUNS times (default 7) in a fresh
interpreter, in a temporary directory with a migrated SQLite database; the best time counts
(the least disturbed by other load), with its CPU time beside it. Printed against two
baselines measured in the same run: the bare interpreter (``python -c pass``), and
``digest --version`` with every command's libraries imported up front, as the CLI did before
it imported them lazily. Then the ten largest cumulative imports of ``digest status`` from
``python -X importtime``.
"""

from __future__ import annotations

import os
import resource
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
        bare, bare_cpu = best_of([python, "-c", "pass"], runs, env, cwd)
        eager, eager_cpu = best_of([python, "-c", EAGER + CLI, "--version"], runs, env, cwd)
        print(
            f"best of {runs} runs; bare interpreter {bare * 1000:.0f} ms "
            f"(cpu {bare_cpu * 1000:.0f} ms), --version with every library imported up front "
            f"{eager * 1000:.0f} ms (cpu {eager_cpu * 1000:.0f} ms)"
        )
        print(f"{'command':<22} {'wall':>8} {'cpu':>8} {'x bare':>7} {'x eager':>8}")
        for args in (["--version"], ["--help"], ["status"], ["send", "--help"]):
            took, cpu = best_of([python, "-c", CLI, *args], runs, env, cwd)
            print(
                f"digest {' '.join(args):<15} {took * 1000:6.0f} ms {cpu * 1000:5.0f} ms "
                f"{took / bare:7.1f} {took / eager:8.2f}"
            )
        print("largest cumulative imports of `digest status`:")
        for line in top_imports(["-c", CLI, "status"], env, cwd):
            print(" ", line)


if __name__ == "__main__":
    main()
