"""Peak memory of ``digest subscribers import`` on a big CSV: it must stay flat (under 150 MB).

Writes a 440,000-row, ~50 MB subscriber CSV and one a tenth of its size, imports each with
the real command (``digest subscribers import FILE --confirmed``) into a fresh SQLite file in
a child process, and prints each child's peak resident set size (``ru_maxrss``) and the ratio
big/small: streaming keeps the big one near the small one.

    python bench/csv_memory.py [ROWS]
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _subscriber_csv import write_csv

LIMIT_MB = 150
# Longer than the import benchmark's rows: 440,000 of them make the ~50 MB file.
LONG_EMAIL = "reader.number.{index}+weekly-news@{domain}"
LONG_NAME = "Reader Nº {index} of the Weekly Verdicts"


def import_peak_mb(path: Path, workdir: Path) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of one import by the real command in a child process."""
    env = os.environ | {
        "DIGEST_ENVIRONMENT": "development",
        "DIGEST_DATABASE_URL": f"sqlite:///{workdir / (path.stem + '.db')}",
    }
    run = [sys.executable, "-m", "digest"]
    subprocess.run([*run, "db", "upgrade"], env=env, check=True, cwd=workdir)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    result = subprocess.run(
        [*run, "subscribers", "import", str(path), "--confirmed"],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"import failed: {result.stderr.strip()}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak <= before:
        print("  (this child's peak is at most an earlier child's: run the small file first)")
    return peak / 1024, elapsed


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 440_000
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        small, big = workdir / "small.csv", workdir / "big.csv"
        write_csv(small, rows // 10, email=LONG_EMAIL, name=LONG_NAME)
        write_csv(big, rows, email=LONG_EMAIL, name=LONG_NAME)
        small_mb, small_s = import_peak_mb(small, workdir)
        big_mb, big_s = import_peak_mb(big, workdir)
        size_mb = big.stat().st_size / 1e6
    print(f"subscribers import, peak RSS of the command (limit {LIMIT_MB} MB):")
    print(f"  {rows // 10:>9,} rows  {small_mb:7.1f} MB  {small_s:6.1f} s")
    print(f"  {rows:>9,} rows  {big_mb:7.1f} MB  {big_s:6.1f} s  ({size_mb:.0f} MB file)")
    verdict = "ok" if big_mb < LIMIT_MB else "OVER"
    print(f"  big/small peak ratio {big_mb / small_mb:.2f}  ({verdict})")


if __name__ == "__main__":
    main()
