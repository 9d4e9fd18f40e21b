"""A flood of SES webhook posts naming certificate URLs that cannot be fetched (slowly) neither
starves the other routes nor makes the server fetch once per post."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine
from starlette.applications import Starlette

from digest.config import Settings
from digest.web.app import create_app
from digest.webhooks import ses
from subscribers.tokens import Purpose, TokenSigner

TOPIC = "arn:aws:sns:us-east-1:123456789012:digest-events"
POSTS = 60
FETCH_SECONDS = 2.0


def _unsigned(n: int) -> bytes:
    message = {
        "Type": "Notification",
        "MessageId": f"m-{n}",
        "TopicArn": TOPIC,
        "Message": "{}",
        "Timestamp": "2025-02-10T16:33:55.655Z",
        "SignatureVersion": "1",
        "Signature": base64.b64encode(os.urandom(256)).decode(),
        "SigningCertURL": (
            f"https://sns.us-east-1.amazonaws.com/SimpleNotificationService-{n:032x}.pem"
        ),
    }
    return json.dumps(message).encode()


def test_unsigned_posts_do_not_starve_other_routes(
    settings: Settings,
    engine: Engine,
    signer: TokenSigner,
    add_subscriber: Callable[..., int],
    live_server: Callable[[Callable[[str], Starlette]], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fetches: list[str] = []
    lock = threading.Lock()

    def slow_failing_get(url: str, **_kwargs: Any) -> httpx.Response:
        with lock:
            fetches.append(url)
        time.sleep(FETCH_SECONDS)
        raise httpx.ConnectTimeout("timed out")

    monkeypatch.setattr(ses.httpx, "get", slow_failing_get)
    subscriber_id = add_subscriber()
    token = signer.make(subscriber_id, Purpose.UNSUBSCRIBE)
    hooked = settings.model_copy(update={"ses_sns_topic_arn": TOPIC, "email_backend": "memory"})
    base_url = live_server(lambda _url: create_app(hooked, engine=engine))

    with httpx.Client(base_url=base_url, timeout=30) as client, ThreadPoolExecutor(POSTS) as pool:
        posts = [
            pool.submit(client.post, "/webhooks/ses", content=_unsigned(n)) for n in range(POSTS)
        ]
        time.sleep(0.3)  # the posts are in
        started = time.perf_counter()
        page = client.get(f"/unsubscribe/{token}")
        elapsed = time.perf_counter() - started
        codes = [future.result().status_code for future in posts]

    print(f"\nGET /unsubscribe during {POSTS} unsigned SES posts: {elapsed * 1000:.0f} ms")
    assert page.status_code == 200
    # Before bounding, each post held a worker thread for the whole fetch: >= FETCH_SECONDS.
    assert elapsed < FETCH_SECONDS * 0.75, f"{elapsed:.2f} s"
    assert set(codes) <= {503}, codes  # nothing was accepted; SNS would retry
    assert len(fetches) <= 2, fetches  # bounded: not one fetch per post
