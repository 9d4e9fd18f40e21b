"""Fixtures for the delivery tests: the W47 comparisons imported, fast send settings, an engine
factory on the memory backend, and a fake Postmark."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from delivery_support import EngineFactory, FakePostmark
from sqlalchemy.engine import Engine

from digest.backends.memory import MemoryBackend
from digest.config import Settings
from digest.content.importer import import_paths
from digest.delivery.prepare import message_factories
from digest.delivery.sender import DeliveryEngine


@pytest.fixture
def send_settings(settings: Settings) -> Settings:
    """The test database's settings, tuned to send fast: no rate limit to speak of, small
    batches, two threads, and the UTC week of the fixtures."""
    return settings.model_copy(
        update={
            "send_rate": 1e6,
            "send_batch_size": 50,
            "send_concurrency": 2,
            "timezone": "UTC",
        }
    )


@pytest.fixture
def loaded(engine: Engine, comparisons_dir: Path) -> Engine:
    """The test database with every fixture comparison imported."""
    report = import_paths(engine, [str(comparisons_dir)])
    assert report.ok, report.summary()
    return engine


@pytest.fixture
def backend() -> MemoryBackend:
    return MemoryBackend()


@pytest.fixture
def make_sender(loaded: Engine, send_settings: Settings, backend: MemoryBackend) -> EngineFactory:
    """``DeliveryEngine`` on the memory backend with millisecond retries; override anything."""

    def factory(**overrides: Any) -> DeliveryEngine:
        settings = overrides.pop("settings", send_settings)
        return DeliveryEngine(
            loaded,
            settings,
            overrides.pop("backend", backend),
            overrides.pop("messages_for", message_factories(loaded, settings)),
            retry_base=overrides.pop("retry_base", 0.001),
            retry_cap=overrides.pop("retry_cap", 0.01),
            **overrides,
        )

    return factory


@pytest.fixture
def postmark() -> Iterator[FakePostmark]:
    fake = FakePostmark().start()
    yield fake
    fake.stop()
