"""Import a generated 100,000-row subscriber CSV into a fresh database and print the time.

Usage: ``python bench/csv_import.py [ROWS]``. Runs on a fresh SQLite file, and also on
PostgreSQL when ``DIGEST_TEST_DATABASE_URL`` is set (in a schema of its own, dropped
afterwards). Each run reports rows/s for the whole import (parsing and validation, bulk
lookups, inserts of subscribers and their audit entries, commit) and splits it into the
validation (``parse_csv`` on its own, timed separately) and the database work (the rest).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from _subscriber_csv import write_csv
from sqlmodel import Session

import digest.models
from digest.db import create_engine
from subscribers.csvio import import_csv, parse_csv


@contextmanager
def postgres_schema(base_url: str) -> Iterator[str]:
    """The URL of a fresh schema on ``base_url``'s database, dropped on the way out."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in base_url else "?"
    try:
        yield f"{base_url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def run(label: str, url: str, csv_path: Path, rows: int) -> None:
    """Import ``csv_path`` into the empty database at ``url`` and print the figures."""
    validation_started = time.perf_counter()
    parse_csv(csv_path)
    validation = time.perf_counter() - validation_started

    engine = create_engine(url)
    try:
        digest.models.metadata.create_all(engine)
        started, cpu_started = time.perf_counter(), time.process_time()
        with Session(engine) as session:
            report = import_csv(session, csv_path, confirmed=True, actor="bench")
            session.commit()
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    finally:
        engine.dispose()
    assert report.imported == rows and report.ok, report.summary()
    print(
        f"csv import ({label}): {rows} rows in {elapsed:.2f} s = {rows / elapsed:,.0f} rows/s; "
        f"validation {validation:.2f} s, database {max(elapsed - validation, 0):.2f} s "
        f"({cpu:.2f} s CPU in this process)"
    )


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "subscribers.csv"
        write_csv(csv_path, rows)
        run("SQLite", f"sqlite:///{tmp}/bench.db", csv_path, rows)
        pg_url = os.environ.get("DIGEST_TEST_DATABASE_URL")
        if pg_url:
            with postgres_schema(pg_url) as url:
                run("PostgreSQL", url, csv_path, rows)
        else:
            print("csv import (PostgreSQL): skipped; set DIGEST_TEST_DATABASE_URL to run it")


if __name__ == "__main__":
    main()
