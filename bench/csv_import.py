"""Import a generated 100,000-row subscriber CSV into a fresh SQLite database and print the time.

Usage: ``python bench/csv_import.py [ROWS]``. Measures parsing and validation plus the
database work (bulk lookups, inserts of subscribers and their audit entries, commit).
"""

from __future__ import annotations

import csv
import sys
import tempfile
import time
from pathlib import Path

from sqlmodel import Session

import digest.models
from digest.db import create_engine
from subscribers.csvio import import_csv

TIMEZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney"]
CATEGORIES = ["Developer Tools", "Data & Analytics", "Image & Video", "Writing & Content"]
DOMAINS = ["example.com", "example.org", "example.net", "mail.example.com", "bücher.example"]


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name", "timezone", "categories"])
        for index in range(rows):
            writer.writerow(
                [
                    f"reader.{index}+news@{DOMAINS[index % len(DOMAINS)]}",
                    f"Reader Nº {index}",
                    TIMEZONES[index % len(TIMEZONES)],
                    ";".join(CATEGORIES[: index % (len(CATEGORIES) + 1)]),
                ]
            )


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "subscribers.csv"
        write_csv(csv_path, rows)
        engine = create_engine(f"sqlite:///{tmp}/bench.db")
        digest.models.metadata.create_all(engine)
        started, cpu_started = time.perf_counter(), time.process_time()
        with Session(engine) as session:
            report = import_csv(session, csv_path, confirmed=True, actor="bench")
            session.commit()
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        engine.dispose()
    assert report.imported == rows and report.ok, report.summary()
    print(
        f"csv import: {rows} rows in {elapsed:.2f} s = {rows / elapsed:,.0f} rows/s "
        f"(SQLite; {cpu:.2f} s CPU in this process)"
    )


if __name__ == "__main__":
    main()
