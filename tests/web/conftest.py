"""Fixtures of the web tests: the app on the test database with a memory backend, a client,
token helpers and subscribers in a given state (the live server is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from digest.backends.memory import MemoryBackend
from digest.config import Settings
from digest.db import session_scope
from digest.web.app import create_app
from subscribers import lifecycle
from subscribers.models import AuditEntry, Cause, Status, Subscriber
from subscribers.tokens import TokenSigner, signer_from_settings

SITE = "https://verdicts.example.com"


@pytest.fixture
def backend() -> MemoryBackend:
    return MemoryBackend()


@pytest.fixture
def app(settings: Settings, engine: Engine, backend: MemoryBackend) -> Starlette:
    return create_app(settings, backend=backend, engine=engine)


@pytest.fixture
def client(app: Starlette) -> Iterator[TestClient]:
    with TestClient(app, base_url=SITE, follow_redirects=False) as test_client:
        yield test_client


@pytest.fixture
def signer(settings: Settings) -> TokenSigner:
    return signer_from_settings(settings)


@pytest.fixture
def add_subscriber(engine: Engine) -> Callable[..., int]:
    """Make a subscriber (active by default) and return its id."""

    def add(email: str = "ada@example.com", status: Status = Status.ACTIVE) -> int:
        with session_scope(engine) as session:
            outcome = lifecycle.signup(
                session, email, name="Ada", source="test", actor="test", confirmed=True
            )
            assert outcome.subscriber is not None and outcome.subscriber.id is not None
            subscriber_id = outcome.subscriber.id
            if status == Status.UNSUBSCRIBED:
                lifecycle.unsubscribe(session, subscriber_id, cause=Cause.ADMIN, actor="test")
            elif status != Status.ACTIVE:
                subscriber = session.get(Subscriber, subscriber_id)
                assert subscriber is not None
                subscriber.status = status
                session.add(subscriber)
        return subscriber_id

    return add


@pytest.fixture
def load(engine: Engine) -> Callable[[int], Subscriber]:
    def get(subscriber_id: int) -> Subscriber:
        with session_scope(engine) as session:
            subscriber = session.get(Subscriber, subscriber_id)
            assert subscriber is not None
            return subscriber

    return get


@pytest.fixture
def audit_of(engine: Engine) -> Callable[[int], list[AuditEntry]]:
    def entries(subscriber_id: int) -> list[AuditEntry]:
        with session_scope(engine) as session:
            statement = (
                select(AuditEntry)
                .where(AuditEntry.subscriber_id == subscriber_id)
                .order_by(col(AuditEntry.id))
            )
            return list(session.exec(statement))

    return entries
