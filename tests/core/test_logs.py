"""One log format for every service: ``digest.logs`` formats our events and the lines of
uvicorn and APScheduler alike, as timestamped key=value text or, with
``DIGEST_LOG_FORMAT=json``, one JSON object a line."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from digest import logs
from digest.db import upgrade

# ts=… level=… logger=… then key=value pairs, values bare or JSON-quoted.
PAIR = r'[a-z_]+=(?:[A-Za-z0-9_.:/@+-]+|"(?:[^"\\]|\\.)*")'
TEXT_LINE = re.compile(
    rf"^ts=\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z level=[a-z]+ logger=[\w.]+( {PAIR})+$"
)
SECRET = "q7Vx2LmP9sKd4RtY8wNb3HcJ6fGz1AeU5oWi0Tq"


def parse(line: str, log_format: str) -> dict[str, str]:
    """One line as a dict, after checking it has the format's shape."""
    if log_format == "json":
        value = json.loads(line)
        assert isinstance(value, dict)
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", value["ts"])
        return {key: str(item) for key, item in value.items()}
    assert TEXT_LINE.match(line), line
    return {
        key: json.loads(value) if value.startswith('"') else value
        for key, value in re.findall(r'([a-z_]+)=("(?:[^"\\]|\\.)*"|\S+)', line)
    }


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The root logger's handlers and level, restored afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_our_events_keep_their_fields(captured: io.StringIO, log_format: str) -> None:
    logs.configure(level=logging.INFO, log_format=log_format, stream=captured)
    logs.log_event(
        logging.getLogger("digest.test"),
        "job_step",
        step="import",
        reason='a "quoted" reason = with spaces',
        count=3,
    )
    [line] = captured.getvalue().splitlines()
    fields = parse(line, log_format)
    assert fields["level"] == "info" and fields["logger"] == "digest.test"
    assert fields["event"] == "job_step" and fields["step"] == "import"
    assert fields["reason"] == 'a "quoted" reason = with spaces' and fields["count"] == "3"


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_traceback_stays_on_its_line(captured: io.StringIO, log_format: str) -> None:
    logs.configure(level=logging.INFO, log_format=log_format, stream=captured)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("digest.test").exception("it failed")
    [line] = captured.getvalue().splitlines()
    fields = parse(line, log_format)
    assert fields["msg"] == "it failed" and fields["level"] == "error"
    assert "Traceback" in fields["exc"] and "ValueError: boom" in fields["exc"]


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_apscheduler_lines_in_the_same_format(captured: io.StringIO, log_format: str) -> None:
    logs.configure(level=logging.INFO, log_format=log_format, stream=captured)
    scheduler = BackgroundScheduler()
    scheduler.add_job(print, "interval", hours=1, id="probe", name="probe job")
    scheduler.start()
    scheduler.shutdown(wait=False)
    lines = captured.getvalue().splitlines()
    parsed = [parse(line, log_format) for line in lines]
    messages = [f["msg"] for f in parsed if f["logger"] == "apscheduler.scheduler"]
    assert "Scheduler started" in messages, lines
    assert any("probe job" in message for message in messages), lines


def test_the_format_comes_from_the_environment(
    captured: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_LOG_FORMAT", "json")
    logs.configure(level=logging.INFO, stream=captured)
    logging.getLogger("digest.test").info("hello %s", "there")
    assert json.loads(captured.getvalue())["msg"] == "hello there"
    logs.configure(level=logging.INFO, stream=captured)  # again: still one handler
    assert sum(h.get_name() == "digest" for h in logging.getLogger().handlers) == 1


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_serve_logs_uvicorn_lines_in_the_format(tmp_path: Path, log_format: str) -> None:
    """`digest serve`: uvicorn's start-up and access lines, and nothing in another format."""
    url = f"sqlite:///{tmp_path / 'digest.db'}"
    upgrade(url)
    port = _free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DIGEST_DATABASE_URL": url,
        "DIGEST_ENVIRONMENT": "test",
        "DIGEST_SECRET_KEY": SECRET,
        "DIGEST_EMAIL_BACKEND": "memory",
        "DIGEST_LOG_FORMAT": log_format,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "digest", "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        assert answer.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=60)
    lines = err.splitlines()
    parsed = [parse(line, log_format) for line in lines]  # every line: the same shape
    loggers = {fields["logger"] for fields in parsed}
    assert {"uvicorn.error", "uvicorn.access"} <= loggers, lines
    [access] = [f for f in parsed if f["logger"] == "uvicorn.access"]
    assert (access["event"], access["method"], access["path"], access["status"]) == (
        "http_request",
        "GET",
        "/healthz",
        "200",
    )
    assert any("Application startup complete" in f.get("msg", "") for f in parsed)


def test_the_worker_stopping_logs_in_the_format(tmp_path: Path) -> None:
    """`digest worker` under SIGTERM: its lines, the stop included, are log lines."""
    url = f"sqlite:///{tmp_path / 'digest.db'}"
    upgrade(url)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DIGEST_DATABASE_URL": url,
        "DIGEST_ENVIRONMENT": "test",
        "DIGEST_SECRET_KEY": SECRET,
        "DIGEST_EMAIL_BACKEND": "memory",
        "DIGEST_LOG_FORMAT": "json",
    }
    heartbeat = tmp_path / "alive"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "digest",
            "worker",
            "--poll",
            "0.2",
            "--heartbeat-file",
            str(heartbeat),
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not heartbeat.exists():  # the worker is in its loop
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    parsed = [parse(line, "json") for line in err.splitlines()]
    assert [f["signal"] for f in parsed if f.get("event") == "stop_requested"] == ["SIGTERM"]
