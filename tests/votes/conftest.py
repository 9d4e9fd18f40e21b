"""Fixtures of the vote tests: a comparison carried by an edition, a subscriber, the web app."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select
from starlette.applications import Starlette
from starlette.testclient import TestClient
from votes_support import COMPARISON, SITE, Voting

from digest.backends.memory import MemoryBackend
from digest.config import Settings
from digest.content.importer import import_paths
from digest.content.models import Comparison
from digest.content.store import get_comparison
from digest.db import session_scope
from digest.editions.models import Edition, EditionComparison, EditionStatus
from digest.web.app import create_app
from subscribers import lifecycle
from subscribers.tokens import signer_from_settings


def add_subscriber(engine: Engine, email: str) -> int:
    with session_scope(engine) as session:
        outcome = lifecycle.signup(
            session, email, name="Ada", source="test", actor="test", confirmed=True
        )
        assert outcome.subscriber is not None and outcome.subscriber.id is not None
        return outcome.subscriber.id


@pytest.fixture
def voting(settings: Settings, engine: Engine, comparisons_dir: Path) -> Voting:
    report = import_paths(engine, [str(comparisons_dir / f"2026-11-16-{COMPARISON}.json")])
    assert report.ok, report.rejected
    with session_scope(engine) as session:
        doc = get_comparison(session, COMPARISON)
        comparison = session.exec(select(Comparison).where(Comparison.slug == COMPARISON)).one()
        assert doc is not None and comparison.id is not None
        edition = Edition(
            newsletter=settings.newsletter, week="2026-W47", status=EditionStatus.SENT
        )
        session.add(edition)
        session.flush()
        assert edition.id is not None
        session.add(
            EditionComparison(
                edition_id=edition.id,
                comparison_id=comparison.id,
                position=0,
                snapshot=doc.model_dump(mode="json"),
            )
        )
        edition_id, comparison_id = edition.id, comparison.id
    subscriber_id = add_subscriber(engine, "ada@example.com")
    return Voting(edition_id, comparison_id, subscriber_id, signer_from_settings(settings))


@pytest.fixture
def app(settings: Settings, engine: Engine) -> Starlette:
    return create_app(settings, backend=MemoryBackend(), engine=engine)


@pytest.fixture
def client(app: Starlette) -> Iterator[TestClient]:
    with TestClient(app, base_url=SITE, follow_redirects=False) as test_client:
        yield test_client


@pytest.fixture
def new_subscriber(engine: Engine) -> Callable[[str], int]:
    return lambda email: add_subscriber(engine, email)
