"""The public web archive: ``/editions`` lists what went out, ``/editions/{ref}`` shows one.

``ref`` is an edition id or its ISO week (``2026-W47``) of this newsletter
(``DIGEST_NEWSLETTER``): "View in browser" links in messages use one or the other; anything
else, Unicode digits included, is a 404. An edition is public once sending has begun: it is
sending or sent and at least one message of it is out (a ledger row ``sent``), so an edition
held for its send window or by the pause switch stays private until its first message leaves.

The page is the email as rendered for a reader following every category, with no personal
parts (see ``digest.render.archive``). Editions are frozen, so each page is rendered once per
process and kept in a small cache.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

import sqlalchemy as sa
from sqlmodel import Session, col, select
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from digest.delivery.models import Delivery, DeliveryState
from digest.delivery.prepare import renderer_for
from digest.editions.models import Edition, EditionStatus
from digest.editions.service import edition_documents
from digest.editions.votes import reader_figures
from digest.web.services import error_page, render, services

PUBLISHED = (EditionStatus.SENDING, EditionStatus.SENT)
ID_RE = re.compile(r"[0-9]{1,11}")
ARCHIVE_TTL_SECONDS = 60.0
WEEK_RE = re.compile(r"[0-9]{4}-W[0-9]{2}")


def _public() -> sa.ColumnElement[bool]:
    """The rule: sending or sent, and at least one message out."""
    out = (
        sa.select(sa.literal(1))
        .select_from(Delivery)
        .where(
            col(Delivery.edition_id) == col(Edition.id),
            col(Delivery.state) == str(DeliveryState.SENT),
        )
        .exists()
    )
    return sa.and_(col(Edition.status).in_(PUBLISHED), out)


class ArchiveCache:
    """Rendered archive pages by edition id, least recently used evicted first. A page is kept
    for ``ttl`` seconds: the edition is frozen, but the readers' figures on it move."""

    def __init__(
        self,
        size: int = 32,
        ttl: float = ARCHIVE_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._size = size
        self._ttl = ttl
        self._clock = clock
        self._pages: OrderedDict[int, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, edition_id: int) -> str | None:
        with self._lock:
            found = self._pages.get(edition_id)
            if found is None:
                return None
            if self._clock() - found[0] > self._ttl:
                del self._pages[edition_id]
                return None
            self._pages.move_to_end(edition_id)
            return found[1]

    def put(self, edition_id: int, page: str) -> None:
        with self._lock:
            self._pages[edition_id] = (self._clock(), page)
            self._pages.move_to_end(edition_id)
            while len(self._pages) > self._size:
                self._pages.popitem(last=False)


def _cache(request: Request) -> ArchiveCache:
    cache = getattr(request.app.state, "archive_cache", None)
    if cache is None:
        cache = request.app.state.archive_cache = ArchiveCache()
    assert isinstance(cache, ArchiveCache)
    return cache


def editions_index(request: Request) -> Response:
    """Every edition that went out, newest first."""
    shared = services(request)
    with Session(shared.engine) as session:
        editions = session.exec(
            select(Edition)
            .where(Edition.newsletter == shared.settings.newsletter, _public())
            .order_by(col(Edition.week).desc())
        ).all()
    return render(request, "editions.html", {"editions": editions})


def edition_page(request: Request) -> Response:
    """One edition as subscribers received it, without personal parts."""
    shared = services(request)
    ref = request.path_params["ref"]
    with Session(shared.engine) as session:
        statement = select(Edition).where(
            Edition.newsletter == shared.settings.newsletter, _public()
        )
        edition: Edition | None = None
        if ID_RE.fullmatch(ref):
            edition = session.exec(statement.where(Edition.id == int(ref))).first()
        elif WEEK_RE.fullmatch(ref):
            edition = session.exec(statement.where(Edition.week == ref)).first()
        if edition is None or edition.id is None:
            return error_page(request, 404, "Not found", "There is no edition at this address.")
        cache = _cache(request)
        page = cache.get(edition.id)
        if page is None:
            documents = edition_documents(session, edition.id)
            figures = reader_figures(
                session.connection(), shared.settings.newsletter, edition.week, documents
            )
            renderer = renderer_for(
                shared.settings, edition.week, documents, edition_id=edition.id, figures=figures
            )
            page = renderer.archive_html()
            cache.put(edition.id, page)
    return HTMLResponse(page)


def generic_preferences(request: Request) -> Response:
    """Where the archive's personal links lead: how to reach one's own preferences."""
    return render(request, "preferences_help.html")


routes = [
    Route("/editions", editions_index, methods=["GET"]),
    Route("/editions/{ref}", edition_page, methods=["GET"]),
    Route("/preferences", generic_preferences, methods=["GET"]),
]
