"""Operational endpoints: ``/healthz`` for load balancers and ``/metrics`` for Prometheus.

Both are sync functions (Starlette runs them in its thread pool) so that a slow database never
blocks the event loop. Neither reveals more than counts: error details go to the log only.
``/metrics`` is meant to be scraped from inside the network; keep it off the public proxy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped
from sqlmodel import col
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from digest.delivery.models import Delivery, DeliveryState
from digest.scheduler.heartbeat import scheduler_status
from digest.web.services import services
from digest.webhooks.models import WebhookEvent
from subscribers.models import Status, Subscriber

logger = logging.getLogger(__name__)

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def healthz(request: Request) -> Response:
    """200 when the database answers ``SELECT 1``, else 503; also reports the scheduler.

    The scheduler's heartbeat and last run are information, not a condition: the web app
    stays healthy (and keeps serving unsubscribes) while the scheduler is down.
    """
    engine = services(request).engine
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        scheduler = scheduler_status(engine)
    except Exception:
        logger.exception("health check: the database does not answer")
        return JSONResponse({"status": "unavailable", "database": "error"}, status_code=503)
    heartbeat = scheduler.get("heartbeat") or {}
    return JSONResponse(
        {
            "status": "ok",
            "database": "ok",
            "scheduler": {
                "alive": scheduler.get("alive", False),
                "last_heartbeat": heartbeat.get("at"),
                "last_run": scheduler.get("last_run"),
                "next_run": scheduler.get("next_run"),
                "paused": scheduler.get("paused", False),
            },
        }
    )


def metrics(request: Request) -> Response:
    """Gauges of subscribers by status, deliveries by state and webhook events by type."""
    engine = services(request).engine
    try:
        subscribers = _count_by(engine, col(Subscriber.status))
        deliveries = _count_by(engine, col(Delivery.state))
        events = _count_by(engine, col(WebhookEvent.event_type))
    except Exception:
        logger.exception("metrics: the database does not answer")
        return PlainTextResponse("database unavailable\n", status_code=503)
    lines: list[str] = []
    lines += _gauge(
        "digest_subscribers",
        "Subscribers by status.",
        "status",
        _with_zeros(subscribers, (status.value for status in Status)),
    )
    lines += _gauge(
        "digest_deliveries",
        "Delivery ledger rows by state.",
        "state",
        _with_zeros(deliveries, (state.value for state in DeliveryState)),
    )
    lines += _gauge(
        "digest_webhook_events", "Provider webhook events received, by type.", "type", events
    )
    return Response("\n".join(lines) + "\n", media_type=PROMETHEUS_CONTENT_TYPE)


def _count_by(engine: Engine, column: Mapped[Any]) -> dict[str, int]:
    statement = sa.select(column, sa.func.count()).group_by(column)
    with engine.connect() as connection:
        return {str(value): int(count) for value, count in connection.execute(statement)}


def _with_zeros(counts: dict[str, int], names: Iterable[str]) -> dict[str, int]:
    # Every known label appears, at 0 if need be, so that rate() and alerts see a series.
    return dict.fromkeys(names, 0) | counts


def _gauge(name: str, help_text: str, label: str, values: dict[str, int]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
    lines += [
        f'{name}{{{label}="{_escape(value)}"}} {count}' for value, count in sorted(values.items())
    ]
    return lines


def _escape(label_value: str) -> str:
    return label_value.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
