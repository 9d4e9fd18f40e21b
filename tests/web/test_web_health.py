"""``/healthz`` and ``/metrics``."""

from __future__ import annotations

from collections.abc import Callable

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


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["database"]) == ("ok", "ok")
    assert body["scheduler"]["alive"] is False and body["scheduler"]["last_heartbeat"] is None


def test_healthz_reports_the_scheduler(client: TestClient, engine: Engine) -> None:
    started = utcnow()
    write_heartbeat(engine, interval=30, started_at=started, next_run=None, now=started)
    write_last_run(engine, {"status": "sent", "week": "2026-W47"})
    scheduler = client.get("/healthz").json()["scheduler"]
    assert scheduler["alive"] is True
    assert scheduler["last_heartbeat"] == started.isoformat()
    assert scheduler["last_run"]["week"] == "2026-W47"


def test_healthz_without_database(settings: Settings) -> None:
    response = _unreachable_database(settings).get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert "nobody" not in response.text


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
