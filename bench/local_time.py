"""Local-time delivery at 100,000 subscribers over 400 timezones, against at-once delivery.

Usage: ``python bench/local_time.py [SUBSCRIBERS] [ZONES]`` (default 100,000 and 400). Each
mode runs in a fresh process on a fresh SQLite file (PostgreSQL as well when
``DIGEST_TEST_DATABASE_URL`` is set, in a schema of its own): the W47 comparisons imported,
the subscribers inserted (zones taken in turn from tzdata's list, the seven of the tests among
them, every 50th subscriber with no zone), then

- **schedule build**: the edition and its ledger of the whole list (``complete_ledger``, as
  the weekly job does it; local-time adds each row's ``not_before`` and ``zone``), seconds;
- **claims**: with the clock after every send time, the whole ledger claimed in batches of
  500 (``claim_batch``: guards, lease expiry, the zone-change pass of local-time, the update,
  the re-check join), after 1% of the subscribers changed zone; microseconds per row and the
  ratio local-time / at-once (the overhead of the zone-change pass);
- **peak RSS** of the process, MB.

The machine may be shared: each mode runs ``BENCH_REPEAT`` times (default 3), alternating,
and the best run of each is reported.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FIXTURES = ROOT.parent / "shared" / "fixtures" / "comparisons"
if not FIXTURES.is_dir():
    FIXTURES = ROOT / "examples" / "comparisons"
WEEK = "2026-W47"
NAMED = (
    "Pacific/Kiritimati",
    "Pacific/Auckland",
    "Asia/Kolkata",
    "Europe/London",
    "America/St_Johns",
    "America/Los_Angeles",
    "Pacific/Pago_Pago",
)
AFTER_EVERY_SEND_TIME = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)
BATCH = 500
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))


def zones(count: int) -> list[str]:
    from digest.timezones import known_zones

    rest = sorted(set(known_zones()) - set(NAMED))
    return [*NAMED, *rest[: max(0, count - len(NAMED))]]


def measure(mode: str, url: str, subscribers: int, zone_count: int) -> dict[str, Any]:
    import sqlalchemy as sa

    import digest.models
    from digest.config import Settings
    from digest.content.importer import import_paths
    from digest.content.weeks import IsoWeek
    from digest.db import create_engine, immediate_session, utcnow
    from digest.delivery.ledger import claim_batch, mark_started, record_results
    from digest.delivery.prepare import complete_ledger
    from digest.editions.service import open_edition
    from digest.render.edition import subject_for
    from subscribers.models import Subscriber

    settings = Settings(
        _env_file=None,
        environment="test",
        database_url=url,
        secret_key="bench-secret-0123456789abcdef",
        delivery_mode=mode,
        timezone="Europe/Berlin",
    )
    engine = create_engine(url)
    digest.models.metadata.create_all(engine)
    import_paths(engine, [str(FIXTURES)])
    table = cast(sa.Table, sa.inspect(Subscriber).local_table)
    names = zones(zone_count)
    now = utcnow()
    with engine.begin() as connection:
        for start in range(0, subscribers, 10_000):
            connection.execute(
                sa.insert(table),
                [
                    {
                        "email": f"reader{i}@example.com",
                        "email_key": f"reader{i}@example.com",
                        "name": f"Reader {i}",
                        "timezone": "" if i % 50 == 0 else names[i % len(names)],
                        "categories": [],
                        "status": "active",
                        "paused": False,
                        "source": "bench",
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in range(start, min(subscribers, start + 10_000))
                ],
            )
    week = IsoWeek.parse(WEEK)
    started = time.perf_counter()
    opened = open_edition(engine, settings, week, subject_for=subject_for(settings, week))
    assert opened.edition is not None
    rows = complete_ledger(engine, settings, opened.edition, on_delivery_day=True)
    build = time.perf_counter() - started
    with engine.begin() as connection:  # 1% of the list moves before the claims
        connection.execute(
            sa.update(table).where(table.c.id % 100 == 7).values(timezone="Asia/Kathmandu")
        )
    claimed = 0
    claims = 0.0
    while True:
        started = time.perf_counter()
        claim = claim_batch(
            engine, worker="bench", limit=BATCH, lease_seconds=3600, now=AFTER_EVERY_SEND_TIME
        )
        claims += time.perf_counter() - started
        if not claim.rows:
            break
        claimed += len(claim.rows)
        # Recorded sent, as a worker does (not timed): claimed rows do not pile up.
        ids = [row.id for row in claim.rows]
        with immediate_session(engine) as session:
            mark_started(session, ids, worker=claim.holder, lease_seconds=3600)
            record_results(
                session,
                sent=[(f"p{row_id}", row_id) for row_id in ids],
                rejected=[],
                holder=claim.holder,
            )
    engine.dispose()
    assert claimed == rows, (claimed, rows)
    return {
        "mode": mode,
        "rows": rows,
        "zones": len(names),
        "build_s": round(build, 3),
        "claim_us_per_row": round(claims / claimed * 1e6, 1),
        "claims_s": round(claims, 3),
        "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def postgres_url(base_url: str, schema: str) -> str:
    separator = "&" if "?" in base_url else "?"
    return f"{base_url}{separator}options=-csearch_path%3D{schema}"


def child(mode: str, database: str, subscribers: int, zone_count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db" if database == "sqlite" else database
        print(json.dumps(measure(mode, url, subscribers, zone_count)))


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest figures of several runs of one mode (each figure its own minimum)."""
    return runs[0] | {
        name: min(run[name] for run in runs)
        for name in ("build_s", "claim_us_per_row", "claims_s", "rss_mb")
    }


def run_child(mode: str, database: str, subscribers: int, zone_count: int) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, __file__, "--child", mode, database, str(subscribers), str(zone_count)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout
    return cast(dict[str, Any], json.loads(output.strip().splitlines()[-1]))


def compare(label: str, database: str, subscribers: int, zone_count: int) -> None:
    runs: dict[str, list[dict[str, Any]]] = {"at-once": [], "local-time": []}
    for _ in range(REPEAT):
        for mode, results in runs.items():
            results.append(run_child(mode, database, subscribers, zone_count))
    at_once, local = best(runs["at-once"]), best(runs["local-time"])
    print(f"{label}: {local['rows']:,} rows, {local['zones']} zones, best of {REPEAT}")
    print(f"  {'':<12} {'build s':>8} {'claim us/row':>13} {'peak RSS MB':>12}")
    for figures in (at_once, local):
        print(
            f"  {figures['mode']:<12} {figures['build_s']:>8.2f} "
            f"{figures['claim_us_per_row']:>13.1f} {figures['rss_mb']:>12.1f}"
        )
    print(
        f"  local-time / at-once: build x{local['build_s'] / at_once['build_s']:.2f}, "
        f"claims x{local['claim_us_per_row'] / at_once['claim_us_per_row']:.2f} "
        f"(+{local['claim_us_per_row'] - at_once['claim_us_per_row']:.1f} us/row)"
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return
    subscribers = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    zone_count = int(sys.argv[2]) if len(sys.argv) > 2 else 400
    compare("SQLite", "sqlite", subscribers, zone_count)
    base = os.environ.get("DIGEST_TEST_DATABASE_URL")
    if base:
        import sqlalchemy as sa

        from digest.db import create_engine

        schema = f"bench_{uuid.uuid4().hex[:12]}"
        admin = create_engine(base)
        try:
            compare_pg(base, schema, admin, subscribers, zone_count)
        finally:
            with admin.begin() as connection:
                connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            admin.dispose()


def compare_pg(base: str, schema: str, admin: Any, subscribers: int, zone_count: int) -> None:
    """PostgreSQL: each mode in the same schema, emptied in between."""
    import sqlalchemy as sa

    runs: dict[str, list[dict[str, Any]]] = {"at-once": [], "local-time": []}
    for _ in range(REPEAT):
        for mode, results in runs.items():
            with admin.begin() as connection:
                connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
            results.append(run_child(mode, postgres_url(base, schema), subscribers, zone_count))
    at_once, local = best(runs["at-once"]), best(runs["local-time"])
    print(f"PostgreSQL: {local['rows']:,} rows, {local['zones']} zones, best of {REPEAT}")
    for figures in (at_once, local):
        print(
            f"  {figures['mode']:<12} {figures['build_s']:>8.2f} "
            f"{figures['claim_us_per_row']:>13.1f} {figures['rss_mb']:>12.1f}"
        )
    print(
        f"  local-time / at-once: build x{local['build_s'] / at_once['build_s']:.2f}, "
        f"claims x{local['claim_us_per_row'] / at_once['claim_us_per_row']:.2f}"
    )


if __name__ == "__main__":
    main()
