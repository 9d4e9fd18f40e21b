"""Fixtures of the click tests: W47's edition (created as a send creates it), a subscriber,
the web app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from clicks_support import W47, Tracked, add_subscriber
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.testclient import TestClient

from digest.backends.memory import MemoryBackend
from digest.config import Settings
from digest.content.importer import import_paths
from digest.editions.service import open_edition
from digest.render.edition import subject_for
from digest.web.app import create_app
from subscribers.tokens import signer_from_settings


@pytest.fixture
def click_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"timezone": "UTC"})


@pytest.fixture
def tracked(click_settings: Settings, engine: Engine, comparisons_dir: Path) -> Tracked:
    report = import_paths(engine, [str(comparisons_dir)])
    assert report.ok, report.summary()
    outcome = open_edition(
        engine, click_settings, W47, subject_for=subject_for(click_settings, W47)
    )
    assert outcome.edition is not None and outcome.edition.id is not None
    subscriber_id = add_subscriber(engine, "ada@example.com")
    return Tracked(outcome.edition.id, subscriber_id, signer_from_settings(click_settings))


@pytest.fixture
def app(click_settings: Settings, engine: Engine) -> Starlette:
    return create_app(click_settings, backend=MemoryBackend(), engine=engine)


@pytest.fixture
def client(app: Starlette) -> Iterator[TestClient]:
    with TestClient(app, follow_redirects=False) as client:
        yield client
