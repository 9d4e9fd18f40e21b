"""One leader per database: the SQLite file lock (a second scheduler refuses, naming the PID),
the PostgreSQL advisory lock (others wait, and take over when the leader dies), and two
scheduler processes against one PostgreSQL database sending one edition, nobody twice."""

from __future__ import annotations

import datetime as dt
import email
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

import digest.models
from digest.config import Settings
from digest.content.weeks import IsoWeek
from digest.db import create_engine, session_scope, utcnow
from digest.delivery.models import Delivery
from digest.editions.models import Edition
from digest.scheduler.heartbeat import Heartbeat, scheduler_status
from digest.scheduler.job import JobStatus
from digest.scheduler.leader import (
    FileLeadership,
    LeadershipTaken,
    PostgresLeadership,
    acquire,
    job_lock_for,
    leadership_for,
)
from digest.scheduler.service import SchedulerService, run_once

REPO = Path(__file__).resolve().parents[2]
SECRET = "Jt7fQm2VxR9kLp4WzN8cYd3HbG6sKe1TqA5uXo0iMv"
# The scheduler's commands as the ``digest`` console script runs them (registered at top level).
RUN_DIGEST = (
    "from digest.cli import app, main\n"
    "from digest.cli import scheduler\n"
    "if 'scheduler' not in {c.name for c in app.registered_commands}:\n"
    "    app.registered_commands.extend(scheduler.app.registered_commands)\n"
    "main()\n"
)
postgresql_only = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def digest_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env.update(
        DIGEST_DATABASE_URL=settings.database_url,
        DIGEST_ENVIRONMENT="test",
        DIGEST_SECRET_KEY=SECRET,
        DIGEST_BASE_URL="https://verdicts.example.com",
        PYTHONPATH=str(REPO),
        **extra,
    )
    return env


def start_digest(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", RUN_DIGEST, *args],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# -- SQLite ---------------------------------------------------------------------------------


def test_file_lock_is_exclusive_and_names_its_holder(tmp_path: Path) -> None:
    path = tmp_path / "digest.db.scheduler.lock"
    first, second = FileLeadership(path), FileLeadership(path)
    assert first.try_acquire()
    assert not second.try_acquire()
    assert f"pid {os.getpid()}" in second.holder()
    with pytest.raises(LeadershipTaken, match=f"another scheduler is running.*pid {os.getpid()}"):
        acquire(second, stop=threading.Event(), wait=None)
    first.release()
    assert second.try_acquire()
    second.release()


def test_sqlite_leadership_is_a_file_beside_the_database(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'digest.db'}")
    leadership = leadership_for(engine, "weekly")
    assert isinstance(leadership, FileLeadership)
    assert leadership.path == tmp_path / "digest.db.scheduler.lock"
    assert not leadership.waits


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_second_scheduler_on_one_sqlite_file_refuses_while_the_first_runs(
    settings: Settings, engine: Engine
) -> None:
    env = digest_env(settings, DIGEST_HEARTBEAT_SECONDS="1")
    first = start_digest(["scheduler"], env)
    try:
        assert wait_until(lambda: scheduler_status(engine)["alive"]), "no heartbeat"
        second = subprocess.run(
            [sys.executable, "-c", RUN_DIGEST, "scheduler"],
            check=False,
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 75, second.stderr
        assert "another scheduler is running on this database" in second.stderr
        assert f"pid {first.pid}" in second.stderr
        assert scheduler_status(engine)["heartbeat"]["pid"] == first.pid
    finally:
        first.send_signal(signal.SIGTERM)
        _out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert "event=scheduler_stopped" in err
    lock = leadership_for(engine, "weekly")
    assert lock.try_acquire()  # released on SIGTERM
    lock.release()


def test_job_lock_waits_its_turn_where_the_scheduler_lock_refuses(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'digest.db'}")
    lock = job_lock_for(engine, "weekly")
    assert isinstance(lock, FileLeadership) and lock.waits
    assert lock.path == tmp_path / "digest.db.job.lock"


def test_once_refuses_or_waits_while_the_job_runs_elsewhere(
    settings: Settings, engine: Engine, fake_sender: Any
) -> None:
    busy = job_lock_for(engine, settings.newsletter)
    assert busy.try_acquire()
    try:
        with pytest.raises(LeadershipTaken, match="the weekly job is running in another process"):
            run_once(settings, engine, wait=0, send_edition=fake_sender())
        threading.Timer(0.5, busy.release).start()
        report = run_once(settings, engine, wait=30, send_edition=fake_sender())
    finally:
        busy.close()
    assert report.trigger == "once" and report.status is JobStatus.SKIPPED  # no content


# -- PostgreSQL ------------------------------------------------------------------------------


@postgresql_only
def test_advisory_lock_one_holder_and_takeover_when_it_dies(engine: Engine) -> None:
    first = PostgresLeadership(engine, "weekly")
    second = PostgresLeadership(engine, "weekly")
    other_newsletter = PostgresLeadership(engine, "another")
    try:
        assert first.try_acquire() and first.still_held()
        assert not second.try_acquire()
        assert "digest-scheduler" in second.holder()
        assert other_newsletter.try_acquire()  # a different key
        with pytest.raises(LeadershipTaken, match=r"another scheduler is running.*waited 0\.3s"):
            acquire(second, stop=threading.Event(), wait=0.3, retry_seconds=0.1)

        # The leader's session dies (crash, network): PostgreSQL drops the lock.
        lost: list[bool] = []
        heartbeat = Heartbeat(engine, leadership=first, on_lost=lambda: lost.append(True))
        assert first._connection is not None
        backend = first._connection.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        with engine.connect() as admin:
            admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        assert heartbeat.beat() is False and lost == [True]
        assert wait_until(second.try_acquire, timeout=10)
    finally:
        for lock in (first, second, other_newsletter):
            lock.close()


@postgresql_only
def test_a_waiting_scheduler_takes_over_when_the_leader_stops(
    settings: Settings, engine: Engine
) -> None:
    runs: list[str] = []

    def service(name: str) -> tuple[SchedulerService, threading.Thread]:
        instance = SchedulerService(
            settings,
            engine,
            job=lambda _stop: runs.append(name),
            leader_retry_seconds=0.1,
            heartbeat_seconds=0.2,
        )
        thread = threading.Thread(target=instance.run, daemon=True)
        thread.start()
        return instance, thread

    leader, leader_thread = service("a")
    assert leader.started.wait(15)
    follower, follower_thread = service("b")
    try:
        time.sleep(0.5)
        assert not follower.started.is_set()  # waiting for the lock
        leader.request_stop()
        leader_thread.join(15)
        assert follower.started.wait(15)
        assert wait_until(
            lambda: scheduler_status(engine)["heartbeat"]["pid"] == os.getpid(), timeout=5
        )
    finally:
        leader.request_stop()
        follower.request_stop()
        follower_thread.join(15)
    assert runs == []


def comparison_in_last_week(source: Path, target: Path) -> str:
    """A fixture comparison moved into the last complete week (UTC) of the real clock."""
    week = IsoWeek.last_complete(utcnow(), dt.UTC)
    doc = json.loads(source.read_text())
    doc["slug"] = f"{doc['slug']}-{week.year}-{week.week}"
    published = dt.datetime.combine(week.monday + dt.timedelta(days=2), dt.time(12), dt.UTC)
    doc["published_at"] = published.strftime("%Y-%m-%dT%H:%M:%SZ")
    target.mkdir(parents=True, exist_ok=True)
    (target / f"{doc['slug']}.json").write_text(json.dumps(doc))
    return str(week)


@postgresql_only
@pytest.mark.slow
def test_two_scheduler_processes_send_one_edition_nobody_twice(
    settings: Settings,
    engine: Engine,
    comparisons_dir: Path,
    tmp_path: Path,
    add_subscribers: Any,
) -> None:
    digest.models.create_schema(engine)
    emails = add_subscribers(40)
    content, outbox = tmp_path / "content", tmp_path / "outbox"
    week = comparison_in_last_week(sorted(comparisons_dir.glob("*.json"))[0], content)
    env = digest_env(
        settings,
        DIGEST_EMAIL_BACKEND="outbox",
        DIGEST_OUTBOX_DIR=str(outbox),
        DIGEST_CONTENT_DIR=str(content),
        DIGEST_SEND_RATE="100000",
        DIGEST_SEND_CONCURRENCY="2",
        DIGEST_SEND_BATCH_SIZE="7",
    )
    processes = [
        start_digest(["scheduler", "--once", "--wait", "120", "--json"], env) for _ in range(2)
    ]
    reports = []
    for process in processes:
        out, err = process.communicate(timeout=180)
        assert process.returncode == 0, err
        reports.append(json.loads(out))
    assert sorted(report["status"] for report in reports) == ["already_sent", "sent"]
    assert {report["week"] for report in reports} == {week}

    per_recipient: Counter[str] = Counter()
    for path in outbox.glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes())
        per_recipient[email.utils.parseaddr(str(message["To"]))[1]] += 1
    assert per_recipient == Counter(dict.fromkeys(emails, 1))
    with session_scope(engine) as session:
        assert session.exec(sa.select(sa.func.count()).select_from(Edition)).one()[0] == 1  # type: ignore[call-overload]
        states = session.exec(sa.select(Delivery.state, sa.func.count()).group_by(Delivery.state))  # type: ignore[call-overload]
        assert {str(state): count for state, count in states} == {"sent": 40}
