"""What the request handlers share, built once per application: settings, the database
engine, the mail backend, the token signer, the CSRF guard, the templates and the sign-up
rate limiter; plus ``render`` for HTML responses.

``WebServices.transaction`` is the one way handlers write. On SQLite it lets one thread of the
process write at a time: SQLite admits a single writer anyway, and threads of this process
then wait on a lock, woken as soon as it is free, rather than in SQLite's busy handler, which
polls with sleeps of up to 100 ms.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from digest.backends.base import EmailBackend
from digest.config import Settings
from digest.db import immediate_session, is_sqlite
from digest.web.csrf import CsrfGuard
from digest.web.ratelimit import SlidingWindowLimiter
from subscribers.tokens import TokenSigner

TEMPLATES_DIR = Path(__file__).parent / "templates"


@dataclass(frozen=True, slots=True)
class WebServices:
    settings: Settings
    engine: Engine
    backend: EmailBackend
    signer: TokenSigner
    csrf: CsrfGuard
    templates: Jinja2Templates
    signup_limiter: SlidingWindowLimiter
    _write_lock: AbstractContextManager[object] = field(init=False)

    def __post_init__(self) -> None:
        lock = threading.Lock() if is_sqlite(self.engine) else nullcontext()
        object.__setattr__(self, "_write_lock", lock)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session committed on success, for requests that change something.

        On SQLite the transaction takes the write lock at BEGIN (``BEGIN IMMEDIATE``), so a
        transaction that reads before it writes cannot fail to upgrade its lock when another
        process wrote in between.
        """
        with self._write_lock, immediate_session(self.engine) as session:
            yield session


def build_templates(settings: Settings) -> Jinja2Templates:
    """The page templates, autoescaped, with the site name available to every page."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        auto_reload=False,  # templates change with a deploy, not under a running server
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.globals["site_name"] = settings.site_name
    return Jinja2Templates(env=environment)


def services(request: Request) -> WebServices:
    """The shared services of the application serving ``request``."""
    found = request.app.state.services
    if not isinstance(found, WebServices):  # pragma: no cover - a wiring mistake
        raise TypeError("the application was not built by digest.web.app.create_app")
    return found


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """An HTML page from ``template``."""
    return services(request).templates.TemplateResponse(
        request, template, dict(context or {}), status_code=status_code, headers=headers
    )


def error_page(
    request: Request,
    status_code: int,
    title: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A plain page for a refused request: a title, one sentence, a way back."""
    return render(
        request,
        "error.html",
        {"title": title, "message": message},
        status_code=status_code,
        headers=headers,
    )
