"""Two ``digest worker --once`` processes on one database at the same moment: disjoint claims
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), every recipient
accepted exactly once by the provider."""

from __future__ import annotations

from pathlib import Path

import pytest
from delivery_support import W47, FakePostmark, add_subscribers, digest_env, ledger, start_digest
from sqlalchemy.engine import Engine

from digest.config import Settings
from digest.delivery.prepare import prepare_edition


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_two_workers_share_an_edition_without_sending_anyone_twice(
    loaded: Engine,
    send_settings: Settings,
    postmark: FakePostmark,
    tmp_path: Path,
) -> None:
    add_subscribers(loaded, 3000, categories=[["Productivity"], ["Customer Support"], []])
    outcome = prepare_edition(loaded, send_settings, W47)
    assert outcome.edition is not None
    env = digest_env(send_settings.database_url, postmark, send_batch_size="50")
    log = tmp_path / "workers.log"
    workers = [start_digest(["worker", "--once", "--poll", "0.2"], env, log) for _ in range(2)]
    codes = [worker.wait(timeout=150) for worker in workers]
    output = log.read_text(errors="replace")
    assert codes == [0, 0], output
    rows = ledger(loaded)
    assert len(rows) == 3000 and {row.state for row in rows} == {"sent"}, output
    accepted = postmark.message_ids()
    assert max(accepted.values()) == 1
    assert set(accepted) == {row.message_id for row in rows}
    # Both took part (each claims batches of 50 until none is left).
    holders = {row.worker.split("#")[0] for row in rows}
    assert len(holders) == 2, holders
