"""Local-time delivery under real crashes, on SQLite and PostgreSQL: ``digest send --wait``
processes killed with SIGKILL while the send times of eight groups of subscribers come due one
after another, then resumed. Nobody is mailed before their time, nobody twice, nobody lost
(only rows in flight at a kill may be ``unknown``).

The ledger is built as a manual local-time send builds it; its rows' send times are then
brought forward to the next few seconds, one zone after another, so that a day's schedule
plays out in about twelve seconds of real time.
"""

from __future__ import annotations

import datetime as dt
import random
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from delivery_support import (
    DELIVERY,
    SUBSCRIBER,
    W47,
    FakePostmark,
    add_subscribers,
    digest_env,
    ledger,
    start_digest,
)
from sqlalchemy.engine import Engine

from digest.config import Settings
from digest.db import utcnow
from digest.delivery.prepare import prepare_edition

ZONES = (
    "Pacific/Kiritimati",
    "Pacific/Auckland",
    "Asia/Kolkata",
    "Europe/London",
    "America/St_Johns",
    "America/Los_Angeles",
    "Pacific/Pago_Pago",
    "UTC",
)
RECIPIENTS = 2000
STEP = dt.timedelta(seconds=1.5)
KILLS = 3


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_killed_local_time_sends_resume_without_early_lost_or_twice(
    loaded: Engine, send_settings: Settings, postmark: FakePostmark, tmp_path: Path
) -> None:
    ids = add_subscribers(loaded, RECIPIENTS, categories=([],))
    with loaded.begin() as connection:
        for index, zone in enumerate(ZONES):
            connection.execute(
                sa.update(SUBSCRIBER)
                .where(SUBSCRIBER.c.id.in_(ids[index :: len(ZONES)]))
                .values(timezone=zone)
            )
    local = send_settings.model_copy(update={"delivery_mode": "local-time"})
    outcome = prepare_edition(loaded, local, W47)
    assert outcome.edition is not None
    start = utcnow() + dt.timedelta(seconds=2)
    due: dict[str, dt.datetime] = {}
    with loaded.begin() as connection:
        for index, zone in enumerate(ZONES):
            due[zone] = start + index * STEP
            connection.execute(
                sa.update(DELIVERY).where(DELIVERY.c.zone == zone).values(not_before=due[zone])
            )
    due_of = {row.id: due[str(row.zone)] for row in ledger(loaded)}
    assert len(due_of) == RECIPIENTS

    env = digest_env(
        local.database_url,
        postmark,
        delivery_mode="local-time",
        send_batch_size="100",
        send_concurrency="2",
        lease_seconds="10",
    )
    log = tmp_path / "send.log"
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    kills = 0
    for _ in range(KILLS):
        process = start_digest(["send", "--week", str(W47), "--wait"], env, log)
        time.sleep(rng.uniform(1.0, 4.0))
        if process.poll() is not None:
            break
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
    assert kills >= 1  # the schedule spans 12 s: every process was killed mid-day
    final = start_digest(["send", "--week", str(W47), "--wait"], env, log)
    final.wait(timeout=180)

    rows = ledger(loaded)
    accepted = postmark.message_ids()
    by_state = Counter(row.state for row in rows)
    context = f"seed={seed} kills={kills} states={dict(by_state)}\n{log.read_text()[-3000:]}"
    assert len(rows) == RECIPIENTS, context
    assert set(by_state) <= {"sent", "unknown"}, context
    assert max(accepted.values()) == 1, context  # nobody twice
    sent = {row.message_id for row in rows if row.state == "sent"}
    unknown = {row.message_id for row in rows if row.state == "unknown"}
    assert sent <= set(accepted), context
    assert set(accepted) - sent <= unknown, context
    assert len(unknown) <= kills * 2 * 100, context
    # Nobody before their time: each row was recorded sent after it came due.
    early = [row.id for row in rows if row.sent_at and row.sent_at < due_of[row.id]]
    assert not early, context
