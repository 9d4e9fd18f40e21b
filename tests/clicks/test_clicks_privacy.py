"""A subscriber's link hits are personal data: export-data lists them, erase deletes them (and
only theirs)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from clicks_support import Tracked, add_subscriber
from sqlalchemy.engine import Engine

from digest import privacy
from digest.clicks import store
from digest.clicks.models import ClickHit
from digest.clicks.store import RawHit
from digest.db import immediate_transaction

AT = dt.datetime(2026, 11, 23, 9, 30, tzinfo=dt.UTC)


def test_export_and_erase_cover_link_hits(tracked: Tracked, engine: Engine) -> None:
    other = add_subscriber(engine, "bob@example.com")
    with immediate_transaction(engine) as connection:
        store.record(
            connection,
            [
                RawHit(tracked.edition_id, tracked.subscriber_id, 1, AT, "GET", "ua", "1.2.3.0/24"),
                RawHit(tracked.edition_id, tracked.subscriber_id, 2, AT, "HEAD", "ua", ""),
                RawHit(tracked.edition_id, other, 1, AT, "GET", "ua", ""),
            ],
        )
    with engine.connect() as connection:
        data = privacy.export_data(connection, "ada@example.com")
    assert [(h["week"], h["link"], h["method"]) for h in data["link_hits"]] == [
        ("2026-W47", 1, "GET"),
        ("2026-W47", 2, "HEAD"),
    ]
    assert data["link_hits"][0]["network"] == "1.2.3.0/24"
    with immediate_transaction(engine) as connection:
        erased = privacy.erase(connection, "ada@example.com", actor="test")
    assert erased.link_hits == 2
    with engine.connect() as connection:
        left = connection.execute(sa.select(ClickHit.subscriber_id)).scalars().all()  # type: ignore[call-overload]
    assert left == [other]


def test_old_hits_become_daily_counts_that_keep_their_verdicts(
    tracked: Tracked, engine: Engine
) -> None:
    from digest.clicks.models import ClickDaily
    from digest.config import Settings
    from digest.delivery.report import edition_report, retire_old_hits

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        database_url=str(engine.url.render_as_string(hide_password=False)),
        secret_key="x" * 40,  # type: ignore[arg-type]
        click_retention_days=180,
    )
    browser = "Mozilla/5.0 Firefox/133.0"
    old = AT - dt.timedelta(days=1)
    with immediate_transaction(engine) as connection:
        store.record(
            connection,
            [
                RawHit(tracked.edition_id, tracked.subscriber_id, 1, old, "GET", browser, ""),
                RawHit(tracked.edition_id, tracked.subscriber_id, 2, old, "HEAD", browser, ""),
                RawHit(tracked.edition_id, tracked.subscriber_id, 3, AT, "GET", browser, ""),
            ],
        )
    before = edition_report(engine, settings, tracked.edition_id)
    assert (before.human, before.automated) == (2, 1)
    # 180 days after the first two hits: they are folded, the third stays raw.
    folded = retire_old_hits(engine, settings, old + dt.timedelta(days=180, hours=1))
    assert folded == 2
    with engine.connect() as connection:
        raw = connection.execute(sa.select(sa.func.count()).select_from(ClickHit)).scalar_one()
        daily = connection.execute(sa.select(sa.func.count()).select_from(ClickDaily)).scalar_one()
    assert (raw, daily) == (1, 2)
    after = edition_report(engine, settings, tracked.edition_id)
    assert (after.human, after.automated) == (2, 1)
    assert after.removed["head"] == 1
