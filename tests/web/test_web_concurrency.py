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
