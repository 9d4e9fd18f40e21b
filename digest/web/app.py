"""The web application: ``create_app`` wires settings, database, mail backend and routes.

Layers, outermost first: the client address (``DIGEST_TRUSTED_PROXIES``), security headers
(around everything, Starlette's own error pages included), Starlette's server-error handler,
the request body limit (``max_request_bytes``: checked against ``Content-Length`` and counted
while the body streams in), then the routes.
The provider webhooks (``digest.webhooks.routes``) are mounted here too, with their own,
larger body limit (``webhook_max_bytes``): provider batches are bigger than any form.

The engine and the backend are built once per application and released at shutdown when
``create_app`` built them; an engine or backend passed in belongs to the caller.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from http import HTTPStatus
from pathlib import Path

from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, ExceptionHandler, Lifespan

from digest.backends.base import EmailBackend
from digest.backends.registry import get_backend
from digest.clicks.recorder import ClickRecorder
from digest.config import Settings, get_settings
from digest.db import engine_from_settings
from digest.web import (
    routes_archive,
    routes_clicks,
    routes_health,
    routes_reports,
    routes_subscription,
    routes_votes,
)
from digest.web.csrf import CsrfGuard
from digest.web.ratelimit import SlidingWindowLimiter, client_address_middleware
from digest.web.security import SecurityHeadersMiddleware, security_headers
from digest.web.services import WebServices, build_templates, error_page
from digest.webhooks.routes import webhook_routes
from subscribers.normalize import allow_test_domains
from subscribers.tokens import signer_from_settings

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
SIGNUP_WINDOW_SECONDS = 60.0

_ERROR_MESSAGES = {
    400: "The request was not understood.",
    404: "There is nothing at this address.",
    405: "This address does not accept that kind of request.",
    413: "The request is larger than this site accepts.",
}


class DigestApp(Starlette):
    """Starlette with the security headers outside every other layer.

    Starlette builds some responses itself, outside the user middleware (the 500 page, an
    oversized body refused before the route runs); wrapping the whole stack gives those the
    same headers as every page.
    """

    def __init__(
        self,
        *,
        headers: Mapping[str, str],
        routes: Sequence[BaseRoute],
        exception_handlers: Mapping[object, ExceptionHandler],
        lifespan: Lifespan[Starlette],
        max_body_size: int,
        trusted_proxies: Sequence[str] = (),
    ) -> None:
        super().__init__(
            routes=routes,
            exception_handlers=exception_handlers,
            lifespan=lifespan,
            max_body_size=max_body_size,
        )
        self.security_headers = dict(headers)
        self.trusted_proxies = list(trusted_proxies)

    def build_middleware_stack(self) -> ASGIApp:
        stack = SecurityHeadersMiddleware(super().build_middleware_stack(), self.security_headers)
        # Outermost: the client address every layer sees (the sign-up rate limit's key) is the
        # peer's, or, from a trusted proxy, the rightmost untrusted X-Forwarded-For entry.
        return client_address_middleware(stack, self.trusted_proxies)


def create_app(
    settings: Settings | None = None,
    *,
    backend: EmailBackend | None = None,
    engine: Engine | None = None,
) -> Starlette:
    """The digest web application for ``settings`` (default: read from the environment)."""
    settings = settings if settings is not None else get_settings()
    settings.require_signing_key()
    allow_test_domains(settings.allow_test_domains)
    owned_engine: Engine | None = None
    owned_backend: EmailBackend | None = None
    if engine is None:
        engine = owned_engine = engine_from_settings(settings)
    if backend is None:
        backend = owned_backend = get_backend(settings)
    services = WebServices(
        settings=settings,
        engine=engine,
        backend=backend,
        signer=signer_from_settings(settings),
        csrf=CsrfGuard(settings.secret_key.get_secret_value()),
        templates=build_templates(settings),
        signup_limiter=SlidingWindowLimiter(
            settings.subscribe_rate_per_minute, SIGNUP_WINDOW_SECONDS
        ),
    )

    recorder = ClickRecorder(engine)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            recorder.close()
            if owned_backend is not None:
                owned_backend.close()
            if owned_engine is not None:
                owned_engine.dispose()

    routes: list[BaseRoute] = [
        Route("/", _home, methods=["GET"]),
        *routes_subscription.routes,
        *routes_health.routes,
        *routes_archive.routes,
        *routes_votes.routes,
        *routes_clicks.routes,
        *routes_reports.routes,
        *_with_body_limit(webhook_routes(settings, engine), settings.webhook_max_bytes),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    app = DigestApp(
        headers=security_headers(settings),
        routes=routes,
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
        lifespan=lifespan,
        max_body_size=settings.max_request_bytes,
        trusted_proxies=settings.trusted_proxies,
    )
    app.state.services = services
    app.state.click_recorder = recorder
    app.state.click_targets = {}
    return app


def _with_body_limit(routes: Sequence[Route], max_body_size: int) -> list[Route]:
    # A route's own limit replaces the application's for requests it serves.
    return [
        Route(
            route.path,
            route.endpoint,
            methods=sorted(route.methods or ()),
            name=route.name,
            max_body_size=max_body_size,
        )
        for route in routes
    ]


def _home(_request: Request) -> Response:
    return RedirectResponse("/subscribe", status_code=302)


def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    return error_page(
        request,
        status,
        title,
        _ERROR_MESSAGES.get(status, "The request could not be completed."),
        headers=exc.headers,
    )


def _server_error(request: Request, exc: Exception) -> Response:
    # The traceback is logged by the server; the visitor gets one plain sentence.
    try:
        return error_page(
            request,
            500,
            "Something went wrong",
            "The page could not be shown. Please try again in a moment.",
        )
    except Exception:
        return PlainTextResponse("Internal Server Error", status_code=500)
