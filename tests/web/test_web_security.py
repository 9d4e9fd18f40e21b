"""Security headers, body size limit, rate limit, error pages, and the helpers behind them."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from digest.backends.memory import MemoryBackend
from digest.config import Settings
from digest.db import session_scope
from digest.web.app import create_app
from digest.web.csrf import CsrfGuard
from digest.web.ratelimit import SlidingWindowLimiter, client_key
from subscribers.models import Subscriber
from subscribers.tokens import Purpose, TokenSigner

EXPECTED = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "strict-transport-security": "max-age=31536000",
}
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)


def _assert_secure(response: httpx.Response) -> None:
    headers = response.headers
    for name, value in EXPECTED.items():
        assert headers.get(name) == value, (name, headers)
    policy = headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    script_src = next(part for part in policy.split(";") if "script-src" in part)
    assert "unsafe-inline" not in script_src


def test_every_kind_of_response_carries_the_headers(
    client: TestClient, signer: TokenSigner, add_subscriber: Callable[..., int]
) -> None:
    token = signer.make(add_subscriber(), Purpose.PREFERENCES)
    responses = [
        client.get("/subscribe"),
        client.get(f"/preferences/{token}"),
        client.post("/subscribe", data={"email": "x"}),  # 400
        client.get("/unsubscribe/forged"),  # 400
        client.get("/no/such/page"),  # 404
        client.delete("/subscribe"),  # 405
        client.get("/healthz"),
        client.get("/metrics"),
        client.get("/static/timezone.js"),
        client.get("/"),  # redirect
    ]
    for response in responses:
        _assert_secure(response)
    for response in responses[:6]:
        assert not INLINE_SCRIPT.search(response.text)
        assert response.headers["cache-control"] == "no-store"


def test_plain_404_and_405(client: TestClient) -> None:
    missing = client.get("/wp-admin")
    assert missing.status_code == 404
    assert "Not Found" in missing.text and "Traceback" not in missing.text
    wrong = client.put("/unsubscribe/abc")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET, HEAD, POST"


def test_no_hsts_over_plain_http(settings: Settings, engine: Engine) -> None:
    local = settings.model_copy(update={"base_url": "http://localhost:8000"})
    app = create_app(local, backend=MemoryBackend(), engine=engine)
    response = TestClient(app).get("/subscribe")
    assert "strict-transport-security" not in response.headers
    assert response.headers["x-frame-options"] == "DENY"


def test_server_errors_are_plain_and_secured(
    settings: Settings, engine: Engine, backend: MemoryBackend
) -> None:
    app = create_app(settings, backend=backend, engine=engine)

    def boom(_request: Request) -> Response:
        raise RuntimeError("secret detail")

    app.router.routes.append(Route("/boom", boom))
    response = TestClient(app, raise_server_exceptions=False).get("/boom")
    assert response.status_code == 500
    assert "secret detail" not in response.text and "Traceback" not in response.text
    _assert_secure(response)


@pytest.fixture
def small_app(settings: Settings, engine: Engine, backend: MemoryBackend) -> Starlette:
    limited = settings.model_copy(update={"max_request_bytes": 2048})
    return create_app(limited, backend=backend, engine=engine)


def test_oversized_body_is_refused(small_app: Starlette, engine: Engine) -> None:
    client = TestClient(small_app, base_url="https://verdicts.example.com")
    big = {"email": "big@example.com", "name": "x" * 4000}
    declared = client.post("/subscribe", data=big)
    assert declared.status_code == 413
    _assert_secure(declared)

    def stream() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b"email=big%40example.com&name="
        for _ in range(10):
            yield b"y" * 512

    streamed = client.post(
        "/subscribe",
        content=stream(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert streamed.status_code == 413
    # A route that does not read its body still refuses a declared oversized one.
    assert client.request("GET", "/subscribe", content=b"z" * 4096).status_code == 413
    ok = client.post("/subscribe", data={"email": "small@example.com"})
    assert ok.status_code == 200
    with session_scope(engine) as session:
        emails = [subscriber.email for subscriber in session.exec(select(Subscriber))]
    assert emails == ["small@example.com"]


def test_subscribe_rate_limit(settings: Settings, engine: Engine, backend: MemoryBackend) -> None:
    limited = settings.model_copy(update={"subscribe_rate_per_minute": 3})
    app = create_app(limited, backend=backend, engine=engine)
    client = TestClient(app, client=("203.0.113.7", 4000))
    for number in range(3):
        response = client.post("/subscribe", data={"email": f"u{number}@example.com"})
        assert response.status_code == 200
    refused = client.post("/subscribe", data={"email": "u9@example.com"})
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    _assert_secure(refused)
    assert client.get("/subscribe").status_code == 200  # only sign-ups are limited
    neighbour = TestClient(app, client=("203.0.113.8", 4000))
    assert neighbour.post("/subscribe", data={"email": "n@example.com"}).status_code == 200
    assert len(backend.sent) == 4


def test_sliding_window() -> None:
    now = [1000.0]
    limiter = SlidingWindowLimiter(2, 60.0, clock=lambda: now[0])
    assert limiter.hit("a") is None
    now[0] += 30
    assert limiter.hit("a") is None
    assert limiter.hit("a") == pytest.approx(30.0)
    assert limiter.hit("b") is None
    now[0] += 30.5  # the first hit left the window
    assert limiter.hit("a") is None
    assert limiter.hit("a") == pytest.approx(29.5)


def test_idle_clients_are_forgotten() -> None:
    now = [0.0]
    limiter = SlidingWindowLimiter(1, 10.0, clock=lambda: now[0], sweep_every=3)
    limiter.hit("a")
    limiter.hit("b")
    now[0] = 100.0
    limiter.hit("c")
    assert len(limiter) == 1


def _key(host: str) -> str:
    return client_key(Request({"type": "http", "client": (host, 1), "headers": []}))


def test_client_key_groups_ipv6_networks() -> None:
    assert _key("198.51.100.4") == "198.51.100.4"
    assert _key("2001:db8:1:2:aaaa::1") == _key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert _key("2001:db8:1:3::1") != _key("2001:db8:1:2::1")
    assert _key("::ffff:198.51.100.4") == "198.51.100.4"
    # Not an address (no proxy forwards that): one shared key, so made-up values buy nothing.
    assert _key("testclient") == _key("made-up-1") == _key("") == "unknown"


def test_csrf_guard() -> None:
    guard = CsrfGuard("test-secret-key-0123456789abcdef")
    value = guard.issue("token-a")
    assert guard.check("token-a", value)
    assert not guard.check("token-b", value)
    assert not guard.check("token-a", value + "x")
    assert not guard.check("token-a", None)
    assert not guard.check("token-a", "é.1.2")
    assert not CsrfGuard("another-secret-0123456789abcdef").check("token-a", value)
    assert not CsrfGuard("test-secret-key-0123456789abcdef", max_age=-1).check("token-a", value)


def test_webhooks_have_their_own_body_limit(client: TestClient, settings: Settings) -> None:
    # Bigger than any form may be, well within the webhook limit: not refused for its size.
    body = b"[" + b" " * (settings.max_request_bytes * 2) + b"]"
    response = client.post(
        "/webhooks/postmark", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code != 413
    _assert_secure(response)
    too_big = b" " * (settings.webhook_max_bytes + 1)
    assert client.post("/webhooks/postmark", content=too_big).status_code == 413
    assert client.post("/subscribe", content=body).status_code == 413
