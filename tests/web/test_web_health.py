"""``/healthz`` and ``/metrics``."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from starlette.testclient import TestClient

from digest.backends.memory import MemoryBackend
from digest.config import Settings
from digest.db import create_engine, session_scope, utcnow
from digest.scheduler.heartbeat import write_heartbeat, write_last_run
from digest.web.app import create_app
from digest.webhooks.models import WebhookEvent
from subscribers.models import Status


def _unreachable_database(settings: Settings) -> TestClient:
    engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=2")
    return TestClient(create_app(settings, backend=MemoryBackend(), engine=engine))


HEALTH_TOKEN = "health-token-for-operators-0123456789"
METRICS_TOKEN = "metrics-token-for-prometheus-0123456789"


@pytest.fixture
def guarded(settings: Settings, engine: Engine) -> TestClient:
    with_tokens = settings.model_copy(
        update={"health_token": SecretStr(HEALTH_TOKEN), "metrics_token": SecretStr(METRICS_TOKEN)}
    )
    return TestClient(create_app(with_tokens, backend=MemoryBackend(), engine=engine))


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_public_healthz_says_ok_and_nothing_else(client: TestClient, engine: Engine) -> None:
    started = utcnow()
    write_heartbeat(engine, interval=30, started_at=started, next_run=None, now=started)
    write_last_run(engine, {"status": "failed", "error": "POST http://10.0.0.7:8025 refused"})
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_healthz_details_need_the_token(guarded: TestClient, engine: Engine) -> None:
    started = utcnow()
    write_heartbeat(engine, interval=30, started_at=started, next_run=None, now=started)
    write_last_run(engine, {"status": "sent", "week": "2026-W47"})
    for headers in ({}, _bearer("wrong"), _bearer(METRICS_TOKEN), {"Authorization": HEALTH_TOKEN}):
        assert guarded.get("/healthz", headers=headers).json() == {"status": "ok"}
    body = guarded.get("/healthz", headers=_bearer(HEALTH_TOKEN)).json()
    assert (body["status"], body["database"]) == ("ok", "ok")
    scheduler = body["scheduler"]
    assert scheduler["alive"] is True
    assert scheduler["last_heartbeat"] == started.isoformat()
    assert scheduler["last_run"]["week"] == "2026-W47"


def test_healthz_without_database(settings: Settings) -> None:
    response = _unreachable_database(settings).get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "fail"}


def test_metrics_token(guarded: TestClient) -> None:
    for headers in ({}, _bearer("wrong"), _bearer(HEALTH_TOKEN), {"Authorization": METRICS_TOKEN}):
        refused = guarded.get("/metrics", headers=headers)
        assert refused.status_code == 401 and "digest_" not in refused.text
        assert refused.headers["www-authenticate"] == "Bearer"
    allowed = guarded.get("/metrics", headers=_bearer(METRICS_TOKEN))
    assert allowed.status_code == 200 and "digest_subscribers" in allowed.text


def test_a_database_outage_logs_one_line_not_a_traceback_per_scrape(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    client = _unreachable_database(settings)
    with caplog.at_level(logging.INFO):
        for _ in range(5):
            assert client.get("/metrics").status_code == 503
            assert client.get("/healthz").status_code == 503
    records = [r for r in caplog.records if r.name.startswith("digest")]
    assert len(records) == 1, [r.getMessage() for r in records]
    assert records[0].exc_info is None and "\n" not in records[0].getMessage()
    assert "does not answer" in records[0].getMessage()


def test_metrics(client: TestClient, engine: Engine, add_subscriber: Callable[..., int]) -> None:
    add_subscriber("a@example.com")
    add_subscriber("b@example.com")
    add_subscriber("c@example.com", Status.UNSUBSCRIBED)
    with session_scope(engine) as session:
        for number, kind in enumerate(["delivered", "delivered", "bounced", 'odd"type']):
            session.add(
                WebhookEvent(provider="test", event_key=str(number), event_type=kind, raw={})
            )
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = set(response.text.splitlines())
    assert {
        'digest_subscribers{status="active"} 2',
        'digest_subscribers{status="unsubscribed"} 1',
        'digest_subscribers{status="pending"} 0',
        'digest_subscribers{status="bounced"} 0',
        'digest_subscribers{status="complained"} 0',
        'digest_deliveries{state="sent"} 0',
        'digest_deliveries{state="pending"} 0',
        'digest_deliveries{state="claimed"} 0',
        'digest_deliveries{state="failed"} 0',
        'digest_deliveries{state="unknown"} 0',
        'digest_deliveries{state="skipped"} 0',
        'digest_webhook_events{type="delivered"} 2',
        'digest_webhook_events{type="bounced"} 1',
        'digest_webhook_events{type="odd\\"type"} 1',
        "# TYPE digest_subscribers gauge",
    } <= lines
    assert response.text.endswith("\n")


def test_metrics_without_database(settings: Settings) -> None:
    assert _unreachable_database(settings).get("/metrics").status_code == 503
