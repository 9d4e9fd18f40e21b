"""Operational endpoints: ``/healthz`` for load balancers and ``/metrics`` for Prometheus.

Both are sync functions (Starlette runs them in its thread pool) so that a slow database never
blocks the event loop. The public ``/healthz`` says ok or fail and nothing else; its details
need ``DIGEST_HEALTH_TOKEN``. ``/metrics`` reveals counts only and needs
``DIGEST_METRICS_TOKEN`` when that is set (else keep it off the public proxy). While the
database is down they log one line, not a traceback per request.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from pydantic import SecretStr
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
    """``{"status": "ok"}`` (200) when the database answers ``SELECT 1``, else
    ``{"status": "fail"}`` (503): all that the public may learn.

    With ``Authorization: Bearer <DIGEST_HEALTH_TOKEN>`` the answer adds the details: the
    database's state and the scheduler's heartbeat, last run (its error text included) and
    next run. The scheduler is information, not a condition: the web app stays healthy (and
    keeps serving unsubscribes) while the scheduler is down.
    """
    svc = services(request)
    detailed = _bearer_matches(request, svc.settings.health_token)
    try:
        with svc.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        scheduler = scheduler_status(svc.engine) if detailed else {}
    except Exception as exc:
        _outage(request).failed("health check", exc)
        body: dict[str, Any] = {"status": "fail"}
        if detailed:
            body["database"] = "error"
        return JSONResponse(body, status_code=503)
    _outage(request).recovered()
    if not detailed:
        return JSONResponse({"status": "ok"})
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
    """Gauges of subscribers by status, deliveries by state and webhook events by type.

    When ``DIGEST_METRICS_TOKEN`` is set, only a request bearing it gets them (401 otherwise).
    """
    svc = services(request)
    token = svc.settings.metrics_token
    if token is not None and not _bearer_matches(request, token):
        return PlainTextResponse(
            "unauthorized\n", status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )
    engine = svc.engine
    try:
        subscribers = _count_by(engine, col(Subscriber.status))
        deliveries = _count_by(engine, col(Delivery.state))
        events = _count_by(engine, col(WebhookEvent.event_type))
    except Exception as exc:
        _outage(request).failed("metrics", exc)
        return PlainTextResponse("database unavailable\n", status_code=503)
    _outage(request).recovered()
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


def _bearer_matches(request: Request, token: SecretStr | None) -> bool:
    if token is None or not token.get_secret_value():
        return False
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.get_secret_value().encode()
    )


class OutageLog:
    """One log line when the database stops answering and one when it is back, instead of a
    traceback per probe or scrape (every 15 s from Prometheus, every 30 s from Docker)."""

    def __init__(self) -> None:
        self._down = False
        self._lock = threading.Lock()

    def failed(self, what: str, exc: BaseException) -> None:
        with self._lock:
            if self._down:
                return
            self._down = True
        logger.error(
            "%s: the database does not answer (%s: %s); logged once until it is back",
            what,
            type(exc).__name__,
            str(exc).splitlines()[0][:200] if str(exc) else "",
        )

    def recovered(self) -> None:
        if not self._down:
            return
        with self._lock:
            self._down = False
        logger.warning("the database answers again")


def _outage(request: Request) -> OutageLog:
    log = getattr(request.app.state, "outage_log", None)
    if log is None:
        log = request.app.state.outage_log = OutageLog()
    assert isinstance(log, OutageLog)
    return log


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
