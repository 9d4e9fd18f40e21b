"""SIGTERM is a normal stop for the long-running processes: ``worker``, ``scheduler`` and
``serve`` give back the work in hand and exit 0 (systemd and compose count that as success);
a worker touches its heartbeat file while it runs."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import pytest
from delivery_support import FakePostmark, digest_env, start_digest

from digest.db import upgrade


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("command", ["worker", "scheduler", "serve"])
def test_sigterm_is_a_normal_stop(command: str, tmp_path: Path, postmark: FakePostmark) -> None:
    url = f"sqlite:///{tmp_path / 'signals.db'}"
    upgrade(url)
    env = digest_env(url, postmark, outbox_dir=str(tmp_path / "outbox"))
    beat = tmp_path / "worker.alive"
    port = _free_port()
    args = {
        "worker": ["worker", "--poll", "0.2", "--heartbeat-file", str(beat)],
        "scheduler": ["scheduler", "--heartbeat-seconds", "1"],
        "serve": ["serve", "--port", str(port)],
    }[command]
    log = tmp_path / f"{command}.log"
    process = start_digest(args, env, log)
    ready = {
        "worker": lambda: beat.exists() and time.time() - beat.stat().st_mtime < 1.0,
        "scheduler": lambda: "scheduler_started" in log.read_text(errors="replace"),
        "serve": lambda: _listening(port),
    }[command]
    deadline = time.monotonic() + 30
    while not ready() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
    assert ready(), log.read_text(errors="replace")
    if command == "worker":
        first = beat.stat().st_mtime
        time.sleep(0.6)
        assert beat.stat().st_mtime > first  # it keeps beating while idle
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0, log.read_text(errors="replace")
