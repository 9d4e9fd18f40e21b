"""Simultaneous unsubscribe requests for one subscriber record exactly one change."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.testclient import TestClient

from digest.backends.memory import MemoryBackend
from digest.config import Settings
from digest.web.app import create_app
from subscribers.models import AuditEntry, Cause, Status, Subscriber
from subscribers.tokens import Purpose, TokenSigner

REQUESTS = 16


def _unsubscribes(audit: list[AuditEntry]) -> list[AuditEntry]:
    return [entry for entry in audit if entry.new_status == Status.UNSUBSCRIBED]


def test_threads_through_the_app(
    client: TestClient,
    signer: TokenSigner,
    add_subscriber: Callable[..., int],
    load: Callable[[int], Subscriber],
    audit_of: Callable[[int], list[AuditEntry]],
) -> None:
    subscriber_id = add_subscriber()
    url = f"/unsubscribe/{signer.make(subscriber_id, Purpose.UNSUBSCRIBE)}"
    start = threading.Barrier(REQUESTS)

    def post(index: int) -> int:
        start.wait()
        body = {"List-Unsubscribe": "One-Click"} if index % 2 else {}
        status: int = client.post(url, data=body).status_code
        return status

    with ThreadPoolExecutor(REQUESTS) as pool:
        statuses = list(pool.map(post, range(REQUESTS)))
    assert statuses == [200] * REQUESTS
    assert load(subscriber_id).status == Status.UNSUBSCRIBED
    assert len(_unsubscribes(audit_of(subscriber_id))) == 1


def test_real_server(
    settings: Settings,
    engine: Engine,
    signer: TokenSigner,
    live_server: Callable[[Callable[[str], Starlette]], str],
    add_subscriber: Callable[..., int],
    load: Callable[[int], Subscriber],
    audit_of: Callable[[int], list[AuditEntry]],
) -> None:
    subscriber_id = add_subscriber()
    app = create_app(settings, backend=MemoryBackend(), engine=engine)
    base_url = live_server(lambda _url: app)
    url = f"{base_url}/unsubscribe/{signer.make(subscriber_id, Purpose.UNSUBSCRIBE)}"

    async def burst() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=REQUESTS)
        async with httpx.AsyncClient(limits=limits, timeout=30) as http:
            return await asyncio.gather(
                *(http.post(url, data={"List-Unsubscribe": "One-Click"}) for _ in range(REQUESTS))
            )

    responses = asyncio.run(burst())
    assert [response.status_code for response in responses] == [200] * REQUESTS
    assert all(not response.is_redirect for response in responses)
    assert load(subscriber_id).status == Status.UNSUBSCRIBED
    [entry] = _unsubscribes(audit_of(subscriber_id))
    assert entry.cause == Cause.ONE_CLICK


def _wait_for(condition: Callable[[], bool], seconds: float = 30) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_fifty_signups_four_at_a_time_are_each_sent_and_recorded_once(
    settings: Settings,
    engine: Engine,
    live_server: Callable[[Callable[[str], Starlette]], str],
) -> None:
    """Through the served app: every sign-up's confirmation is sent and recorded, and signing
    up again at once sends nothing more (the ten-minute limit holds)."""
    from sqlmodel import Session, select

    backend = MemoryBackend()
    relaxed = settings.model_copy(update={"subscribe_rate_per_minute": 10_000})
    base_url = live_server(lambda _url: create_app(relaxed, backend=backend, engine=engine))
    emails = [f"reader{n}@example.com" for n in range(50)]

    def sign_up(email: str) -> int:
        with httpx.Client(base_url=base_url, timeout=30) as client:
            return client.post("/subscribe", data={"email": email}).status_code

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert set(pool.map(sign_up, emails)) == {200}
    _wait_for(lambda: len(backend.sent) >= 50)
    with Session(engine) as session:
        recorded = session.exec(select(Subscriber.confirmation_sent_at)).all()
    assert len(recorded) == 50 and all(value is not None for value in recorded)
    assert sorted(message.to for message in backend.sent) == sorted(emails)

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert set(pool.map(sign_up, emails)) == {200}
    _wait_for(lambda: False, seconds=1.0)  # room for any (wrong) second email to leave
    assert len(backend.sent) == 50
