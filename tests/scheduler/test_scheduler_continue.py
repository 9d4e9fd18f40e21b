"""The scheduler leader finishes the work on its own when no worker runs: a paused edition goes
out after ``digest resume``, deferred rows when they are due."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from digest.config import Settings
from digest.content.weeks import IsoWeek
from digest.db import utcnow
from digest.delivery.guards import pause, resume
from digest.delivery.prepare import prepare_edition
from digest.scheduler.service import SchedulerService, _continue_sending


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _states(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT state, count(*) FROM delivery GROUP BY state"))
        return {str(state): int(count) for state, count in rows}


@pytest.mark.timeout(90)
def test_a_paused_edition_continues_after_resume_and_deferred_rows_when_due(
    job_settings: Settings, engine: Engine, add_subscribers: Any
) -> None:
    from digest.content.importer import import_paths

    settings = job_settings.model_copy(update={"email_backend": "memory"})
    assert settings.content_dir is not None
    import_paths(engine, [str(settings.content_dir)])
    add_subscribers(20)
    pause(engine, by="ops")
    outcome = prepare_edition(engine, settings, IsoWeek(2026, 47))
    assert outcome.edition is not None
    # Two rows failed earlier and wait for a retry due in a second.
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "UPDATE delivery SET state = 'deferred', not_before = :due, attempts = 1"
                " WHERE id IN (SELECT id FROM delivery ORDER BY id LIMIT 2)"
            ),
            {"due": utcnow()},
        )
    service = SchedulerService(
        settings,
        engine,
        job=lambda _stop: None,
        continue_job=_continue_sending(settings, engine),
        continue_seconds=0.5,
        heartbeat_seconds=60,
    )
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    try:
        assert service.started.wait(15)
        time.sleep(1.5)
        assert _states(engine) == {"pending": 18, "deferred": 2}  # paused: nothing moves
        resume(engine, by="ops")
        assert wait_until(lambda: _states(engine) == {"sent": 20}), _states(engine)
    finally:
        service.request_stop("test over")
        thread.join(15)
    with engine.connect() as connection:
        status = connection.execute(sa.text("SELECT status FROM edition")).scalar_one()
    assert status == "sent"
