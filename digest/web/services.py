"""What the request handlers share, built once per application: settings, the database
engine, the mail backend, the token signer, the CSRF guard, the templates, the sign-up
rate limiter and the pages rendered ahead (``SplicedPage``); plus ``render`` for HTML responses.

``WebServices.transaction`` is the one way handlers write (``core_transaction`` is the same
without a ``Session``, for Core statements). On SQLite it lets one thread of the process write
at a time: SQLite admits a single writer anyway, and threads of this process then wait on a
lock, woken as soon as it is free, rather than in SQLite's busy handler, which polls with
sleeps of up to 100 ms.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import markupsafe
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.templating import Jinja2Templates

from digest.backends.base import EmailBackend
from digest.config import Settings
from digest.db import immediate_session, immediate_transaction, is_sqlite
from digest.editions.votes import FrozenCards
from digest.web.csrf import CsrfGuard
from digest.web.ratelimit import SlidingWindowLimiter
from subscribers.tokens import TokenSigner

TEMPLATES_DIR = Path(__file__).parent / "templates"
# A value with every character that HTML escaping changes, to check a SplicedPage against.
_SPLICE_PROBE = """<b title="x">O'Neil & co</b>@example.com"""


class SplicedPage:
    """A page whose only per-request content is one text variable, rendered once ahead.

    The template is rendered with the variable set to a marker and split around it; a request
    joins the parts with its value, HTML-escaped as the template's autoescaping does. An empty
    value has a page of its own, so the template may test whether the value is empty. It must
    do nothing else with the value (no filter, no test of its content). When the page is built
    a probe with characters that need escaping checks the splice against a real rendering; if
    they differ, or the template cannot be rendered ahead, each request renders it.
    """

    __slots__ = ("_empty", "_name", "_parts", "_template", "_templates")

    def __init__(self, templates: Jinja2Templates, template: str, name: str) -> None:
        self._templates = templates
        self._template = template
        self._name = name
        self._empty: str | None = None
        self._parts: list[str] | None = None
        try:
            empty = self._render("")
            marker = secrets.token_hex(16)
            parts = self._render(marker).split(marker)
            if _splice(parts, _SPLICE_PROBE) == self._render(_SPLICE_PROBE):
                self._empty, self._parts = empty, parts
        except jinja2.TemplateError:
            pass  # it needs more than the variable (the request, say): rendered per request

    def _render(self, value: str) -> str:
        return self._templates.get_template(self._template).render({self._name: value})

    def response(self, request: Request, value: str) -> Response:
        """The page for ``value``, status 200."""
        if self._parts is None or self._empty is None:
            return self._templates.TemplateResponse(request, self._template, {self._name: value})
        if not value:
            return HTMLResponse(self._empty)
        return HTMLResponse(_splice(self._parts, value))


def _splice(parts: list[str], value: str) -> str:
    # As plain str: Markup.join would escape the parts too.
    return str(markupsafe.escape(value)).join(parts)


@dataclass(frozen=True, slots=True)
class WebServices:
    settings: Settings
    engine: Engine
    backend: EmailBackend
    signer: TokenSigner
    csrf: CsrfGuard
    templates: Jinja2Templates
    signup_limiter: SlidingWindowLimiter
    unsubscribed_page: SplicedPage = field(init=False)
    # Reader votes: presses per client network, reads of the public aggregate per client, and
    # the editions' cards (frozen, so read once per process).
    vote_limiter: SlidingWindowLimiter = field(init=False)
    votes_api_limiter: SlidingWindowLimiter = field(init=False)
    frozen_cards: FrozenCards = field(init=False)
    _write_lock: AbstractContextManager[object] = field(init=False)

    def __post_init__(self) -> None:
        lock = threading.Lock() if is_sqlite(self.engine) else nullcontext()
        object.__setattr__(self, "_write_lock", lock)
        settings = self.settings
        object.__setattr__(
            self, "vote_limiter", SlidingWindowLimiter(settings.vote_rate_per_minute)
        )
        object.__setattr__(
            self, "votes_api_limiter", SlidingWindowLimiter(settings.votes_api_rate_per_minute)
        )
        object.__setattr__(self, "frozen_cards", FrozenCards())
        # The answer to every unsubscribe POST: only the address differs.
        page = SplicedPage(self.templates, "unsubscribed.html", "email")
        object.__setattr__(self, "unsubscribed_page", page)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session committed on success, for requests that change something.

        On SQLite the transaction takes the write lock at BEGIN (``BEGIN IMMEDIATE``), so a
        transaction that reads before it writes cannot fail to upgrade its lock when another
        process wrote in between.
        """
        with self._write_lock, immediate_session(self.engine) as session:
            yield session

    @contextmanager
    def core_transaction(self) -> Iterator[Connection]:
        """``transaction`` for Core statements: a bare connection, no ``Session`` to build."""
        with self._write_lock, immediate_transaction(self.engine) as connection:
            yield connection


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
