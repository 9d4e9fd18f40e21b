"""Real ``digest send`` processes killed with SIGKILL at random moments of a 10,000-recipient
send, then resumed, against a fake Postmark that records every Message-ID it accepted.

What must hold at the end: every recipient is ``sent`` and was accepted exactly once, except
the rows in flight at each kill, which are ``unknown`` (the provider may or may not have them)
and were never sent a second time. Nobody is lost, nobody gets the edition twice.
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from delivery_support import (
    FakePostmark,
    add_subscribers,
    digest_env,
    ledger,
    start_digest,
)

from digest.backends.postmark import PostmarkBackend
from digest.content.importer import import_paths
from digest.db import create_engine, upgrade

RECIPIENTS = 10_000
KILLS = 4
BATCH = 200
CONCURRENCY = 2
# Mostly one-comparison variants (small messages), some with all six.
CATEGORIES = ([], ["Productivity"], ["Customer Support"], ["Productivity"], ["Customer Support"])


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_killed_sends_resume_without_losing_or_repeating_anyone(
    tmp_path: Path, comparisons_dir: Path, postmark: FakePostmark
) -> None:
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    upgrade(url)
    engine = create_engine(url)
    assert import_paths(engine, [str(comparisons_dir)]).ok
    add_subscribers(engine, RECIPIENTS, categories=CATEGORIES)
    env = digest_env(
        url,
        postmark,
        send_batch_size=str(BATCH),
        send_concurrency=str(CONCURRENCY),
        lease_seconds="10",
    )
    log = tmp_path / "send.log"
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)

    kills = 0
    for _cycle in range(KILLS):
        before = len(postmark.accepted)
        process = start_digest(["send", "--week", "2026-W47"], env, log)
        # Kill after a random number of acceptances, or at a random moment before the first
        # (while the ledger is built, or variants compiled), whichever comes first.
        wanted = rng.randrange(0, 2500)
        deadline = time.monotonic() + rng.uniform(1.0, 12.0)
        while process.poll() is None and time.monotonic() < deadline:
            if len(postmark.accepted) - before >= wanted:
                break
            time.sleep(0.01)
        if process.poll() is not None:
            break
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1

    final = start_digest(["send", "--week", "2026-W47"], env, log)
    final.wait(timeout=180)
    output = log.read_text(errors="replace")

    rows = ledger(engine)
    accepted = postmark.message_ids()
    by_state = Counter(row.state for row in rows)
    context = f"seed={seed} kills={kills} states={dict(by_state)}\n{output[-3000:]}"
    assert len(rows) == RECIPIENTS, context
    assert set(by_state) <= {"sent", "unknown"}, context
    # Nobody twice.
    assert max(accepted.values()) == 1, context
    assert max(postmark.addresses().values()) == 1, context
    # Every sent row was accepted, once; whatever else was accepted is an unknown row.
    sent = {row.message_id for row in rows if row.state == "sent"}
    unknown = {row.message_id for row in rows if row.state == "unknown"}
    assert sent <= set(accepted), context
    assert set(accepted) - sent <= unknown, context
    # At most the calls in flight at each kill are unknown (at this rate a call carries a
    # whole claim, up to Postmark's limit).
    call_size = min(BATCH, PostmarkBackend.max_batch_size)
    assert len(unknown) <= kills * CONCURRENCY * call_size, context
    # The last run exits 0 only if nothing is unknown.
    assert final.returncode == (1 if unknown else 0), context
    engine.dispose()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_two_sends_started_together_send_each_recipient_once(
    tmp_path: Path, comparisons_dir: Path, postmark: FakePostmark
) -> None:
    url = f"sqlite:///{tmp_path / 'twice.db'}"
    upgrade(url)
    engine = create_engine(url)
    assert import_paths(engine, [str(comparisons_dir)]).ok
    add_subscribers(engine, 2000, categories=CATEGORIES)
    env = digest_env(url, postmark, send_batch_size="100")
    log = tmp_path / "send.log"
    processes = [start_digest(["send", "--week", "2026-W47"], env, log) for _ in range(2)]
    codes = [process.wait(timeout=100) for process in processes]
    output = log.read_text(errors="replace")
    assert codes == [0, 0], output
    with engine.connect() as connection:
        editions = connection.exec_driver_sql("SELECT id, status FROM edition").all()
    assert [tuple(edition) for edition in editions] == [(1, "sent")], output
    rows = ledger(engine)
    assert len(rows) == 2000 and {row.state for row in rows} == {"sent"}
    assert max(postmark.message_ids().values()) == 1
    assert set(postmark.message_ids()) == {row.message_id for row in rows}
    engine.dispose()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sigterm_finishes_the_batch_in_hand_and_a_rerun_resumes(
    tmp_path: Path, comparisons_dir: Path, postmark: FakePostmark
) -> None:
    url = f"sqlite:///{tmp_path / 'term.db'}"
    upgrade(url)
    engine = create_engine(url)
    assert import_paths(engine, [str(comparisons_dir)]).ok
    add_subscribers(engine, 3000, categories=CATEGORIES)
    env = digest_env(url, postmark, send_batch_size="100", send_rate="1500")
    log = tmp_path / "send.log"
    process = start_digest(["send", "--week", "2026-W47"], env, log)
    deadline = time.monotonic() + 60
    while len(postmark.accepted) < 300 and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 128 + signal.SIGTERM
    output = log.read_text(errors="replace")
    assert "stopped by SIGTERM" in output and "run `digest send` again" in output
    stopped = Counter(row.state for row in ledger(engine))
    # Calls in flight were finished and recorded, the rest given back: nothing unknown.
    assert set(stopped) == {"sent", "pending"}, (stopped, output)
    assert stopped["sent"] == len(postmark.accepted)
    rerun = start_digest(["send", "--week", "2026-W47"], env, log)
    assert rerun.wait(timeout=90) == 0, log.read_text(errors="replace")
    assert Counter(row.state for row in ledger(engine)) == {"sent": 3000}
    assert max(postmark.message_ids().values()) == 1
    engine.dispose()
