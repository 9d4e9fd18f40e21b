"""Paced sending and retries that outlast an outage, against fake providers:

- at 20 msg/s no five-second window holds more than 120 messages (the first call aside), and
  the send takes at least 80 % of N / rate;
- a 503 outage of 40 s in the middle of one ``digest send``, and an SMTP server stopped for
  30 s and started again: every recipient accepted exactly once, nothing failed, exit 0;
- every other call answered 429 with ``Retry-After: 1`` at a configured 500 msg/s: 3,000
  recipients in under three minutes, each accepted once;
- a ``digest send`` killed with SIGKILL is resumed at once on the same host without waiting
  for its lease.
"""

from __future__ import annotations

import bisect
import signal
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from delivery_support import (
    POSTMARK_TOKEN,
    W47,
    FakePostmark,
    add_subscribers,
    digest_env,
    ledger,
    start_digest,
    states,
)
from sqlalchemy.engine import Engine

from digest.backends.postmark import PostmarkBackend
from digest.config import Settings
from digest.content.importer import import_paths
from digest.db import create_engine, upgrade
from digest.delivery.prepare import message_factories, prepare_edition
from digest.delivery.sender import DeliveryEngine, RunOutcome

CATEGORIES = ([], ["Productivity"], ["Customer Support"])


def most_in_any_window(times: list[float], seconds: float) -> int:
    """The most events in any window ``[t, t + seconds]`` that starts at an event."""
    ordered = sorted(times)
    return max(
        bisect.bisect_right(ordered, start + seconds) - index for index, start in enumerate(ordered)
    )


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_provider_calls_are_paced_at_the_configured_rate(
    loaded: Engine, send_settings: Settings, postmark: FakePostmark
) -> None:
    rate, count = 20.0, 200
    settings = send_settings.model_copy(
        update={"send_rate": rate, "send_batch_size": 500, "send_concurrency": 2}
    )
    add_subscribers(loaded, count, categories=CATEGORIES)
    outcome = prepare_edition(loaded, settings, W47)
    assert outcome.edition is not None and outcome.edition.id is not None
    with PostmarkBackend(POSTMARK_TOKEN, base_url=postmark.url) as backend:
        sender = DeliveryEngine(loaded, settings, backend, message_factories(loaded, settings))
        started = time.monotonic()
        report = sender.run([outcome.edition.id])
        elapsed = time.monotonic() - started
    assert report.outcome is RunOutcome.DONE and states(loaded) == {"sent": count}
    first_call = int(rate)  # a call carries one second of messages
    busiest = most_in_any_window(postmark.accepted_at[first_call:], 5.0)
    assert busiest <= 1.2 * rate * 5, busiest
    assert elapsed >= 0.8 * count / rate, elapsed
    assert max(postmark.message_ids().values()) == 1


def _prepared_database(tmp_path: Path, comparisons_dir: Path, count: int) -> tuple[str, Engine]:
    url = f"sqlite:///{tmp_path / 'send.db'}"
    upgrade(url)
    engine = create_engine(url)
    assert import_paths(engine, [str(comparisons_dir)]).ok
    add_subscribers(engine, count, categories=CATEGORIES)
    return url, engine


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_one_send_outlasts_a_40_second_provider_outage(
    tmp_path: Path, comparisons_dir: Path, postmark: FakePostmark
) -> None:
    url, engine = _prepared_database(tmp_path, comparisons_dir, 400)
    outage: dict[str, float] = {}

    def hook(_call: int) -> tuple[int, dict[str, str], bytes] | None:
        now = time.monotonic()
        if "start" not in outage and len(postmark.accepted) >= 100:
            outage["start"] = now
        if "start" in outage and now < outage["start"] + 40.0:
            return 503, {}, b'{"ErrorCode":0,"Message":"Service Unavailable"}'
        return None

    postmark.hook = hook
    env = digest_env(url, postmark, send_rate="100", send_batch_size="100")
    log = tmp_path / "send.log"
    process = start_digest(["send", "--week", "2026-W47"], env, log)
    code = process.wait(timeout=220)
    output = log.read_text(errors="replace")
    assert code == 0, output[-3000:]
    assert "waiting: " in output and "next retry at" in output, output[-3000:]
    assert outage and time.monotonic() - outage["start"] >= 40.0
    rows = ledger(engine)
    assert Counter(row.state for row in rows) == {"sent": 400}, output[-3000:]
    assert set(postmark.message_ids().values()) == {1}
    assert set(postmark.message_ids()) == {row.message_id for row in rows}
    engine.dispose()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_one_send_outlasts_an_smtp_server_stopped_for_30_seconds(
    tmp_path: Path, comparisons_dir: Path
) -> None:
    from aiosmtpd.controller import Controller

    received: list[tuple[str, float]] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.append((envelope.rcpt_tos[0], time.monotonic()))
            return "250 OK"

    port = _free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    url, engine = _prepared_database(tmp_path, comparisons_dir, 200)
    env = digest_env(
        url,
        cast(FakePostmark, SimpleNamespace(url="http://127.0.0.1:9")),  # SMTP sends, not this
        email_backend="smtp",
        smtp_host="127.0.0.1",
        smtp_port=str(port),
        send_rate="20",
        send_batch_size="50",
    )
    log = tmp_path / "send.log"
    process = start_digest(["send", "--week", "2026-W47"], env, log)
    try:
        # Stop the server between two calls (a call is about one second of messages).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if len(received) >= 40 and time.monotonic() - received[-1][1] > 0.3:
                break
            time.sleep(0.02)
        controller.stop()
        stopped_at = time.monotonic()
        time.sleep(30)
        controller = Controller(Handler(), hostname="127.0.0.1", port=port)
        controller.start()
        code = process.wait(timeout=180)
    finally:
        if process.poll() is None:
            process.kill()
        controller.stop()
    output = log.read_text(errors="replace")
    assert code == 0, output[-3000:]
    assert any(moment > stopped_at + 30 for _address, moment in received)
    assert Counter(row.state for row in ledger(engine)) == {"sent": 200}, output[-3000:]
    addresses = Counter(address for address, _moment in received)
    assert len(addresses) == 200 and set(addresses.values()) == {1}
    engine.dispose()


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_every_other_call_429_still_finishes_in_minutes(
    tmp_path: Path, comparisons_dir: Path, postmark: FakePostmark
) -> None:
    url, engine = _prepared_database(tmp_path, comparisons_dir, 3000)

    def hook(call: int) -> tuple[int, dict[str, str], bytes] | None:
        if call % 2 == 0:
            return 429, {"Retry-After": "1"}, b'{"Message":"slow down"}'
        return None

    postmark.hook = hook
    env = digest_env(url, postmark, send_rate="500")
    log = tmp_path / "send.log"
    started = time.monotonic()
    process = start_digest(["send", "--week", "2026-W47"], env, log)
    code = process.wait(timeout=200)
    elapsed = time.monotonic() - started
    output = log.read_text(errors="replace")
    assert code == 0, output[-3000:]
    assert elapsed < 180, elapsed
    assert Counter(row.state for row in ledger(engine)) == {"sent": 3000}
    assert len(postmark.message_ids()) == 3000 and set(postmark.message_ids().values()) == {1}
    engine.dispose()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_killed_send_is_resumed_at_once_on_the_same_host(
    tmp_path: Path, comparisons_dir: Path, postmark: FakePostmark
) -> None:
    url, engine = _prepared_database(tmp_path, comparisons_dir, 1500)
    # A lease far longer than the test: only knowing the holder is dead can free its rows.
    env = digest_env(url, postmark, send_rate="300", send_batch_size="100", lease_seconds="600")
    log = tmp_path / "send.log"
    process = start_digest(["send", "--week", "2026-W47"], env, log)
    deadline = time.monotonic() + 60
    while len(postmark.accepted) < 300 and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = Counter(row.state for row in ledger(engine))
    assert before["claimed"] > 0, before  # the dead process held rows under a lease
    started = time.monotonic()
    rerun = start_digest(["send", "--week", "2026-W47"], env, log)
    rerun.wait(timeout=120)
    elapsed = time.monotonic() - started
    output = log.read_text(errors="replace")
    after = Counter(row.state for row in ledger(engine))
    assert set(after) <= {"sent", "unknown"}, (after, output[-3000:])
    assert elapsed < 60, elapsed  # far less than the 600 s lease
    assert "reclaiming the rows of dead holders on this host" in output
    assert max(postmark.message_ids().values()) == 1
    engine.dispose()
