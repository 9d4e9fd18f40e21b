"""Fixtures of the scheduler tests: settings for the weekly job, subscribers, fake senders."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from digest.config import Settings
from digest.db import session_scope, utcnow
from digest.delivery.run import Outcome, SendReport
from digest.editions.models import Edition
from subscribers.models import Status, Subscriber

# A Monday morning after 2026-W47, the week most fixture comparisons were published in.
AFTER_FIXTURE_WEEK = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def job_settings(settings: Settings, comparisons_dir: Path) -> Settings:
    """Settings whose weekly job imports the fixture comparisons and sends without pacing."""
    return settings.model_copy(
        update={"content_dir": comparisons_dir, "send_concurrency": 1, "send_rate": 100_000.0}
    )


def _add_subscribers(engine: Engine, count: int, prefix: str = "reader") -> list[str]:
    emails = [f"{prefix}{n}@example.org" for n in range(count)]
    with session_scope(engine) as session:
        for email in emails:
            session.add(
                Subscriber(
                    email=email, email_key=email, status=Status.ACTIVE, confirmed_at=utcnow()
                )
            )
    return emails


@dataclass
class FakeSender:
    """A ``SendEdition`` that records when it was called and answers ``outcomes`` in turn."""

    outcomes: list[str] = field(default_factory=lambda: ["done"])
    calls: list[tuple[int | None, dt.datetime]] = field(default_factory=list)
    before: Callable[[], Any] | None = None

    def __call__(
        self, engine: Engine, settings: Settings, edition: Edition, *, stop: threading.Event
    ) -> SendReport:
        if self.before is not None:
            self.before()
        self.calls.append((edition.id, utcnow()))
        outcome = self.outcomes[min(len(self.calls), len(self.outcomes)) - 1]
        done = outcome == "done"
        return SendReport(
            Outcome.SENT if done else Outcome(outcome),
            edition,
            stats={"sent": 1 if done else 0},
            recipients=1,
        )


AddSubscribers = Callable[..., list[str]]


@pytest.fixture
def add_subscribers(engine: Engine) -> AddSubscribers:
    """``add_subscribers(count, prefix="reader")``: active subscribers; their addresses."""

    def add(count: int, prefix: str = "reader") -> list[str]:
        return _add_subscribers(engine, count, prefix)

    return add


@pytest.fixture
def fake_sender() -> type[FakeSender]:
    return FakeSender
