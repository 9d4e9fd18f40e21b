"""Tracked links: ``GET``/``HEAD /r/{token}`` answers a 302 to the link's target at once.

The token (``subscribers.tokens.ClickRef``) names an edition, a subscriber and a link number;
the target comes from the edition's frozen link table (``digest.clicks.store.target``, cached
per process, as the tables never change), never from the URL, so this is no open redirect.
Every unusable token (forged, damaged, a link the edition does not have) gets the plain 400
page. The hit, with its method, user agent and client network, goes on the process's
``ClickRecorder`` queue and is stored off the request path; whether it was a person is decided
later (``digest.clicks.rules``). With ``DIGEST_TRACK_CLICKS=off`` the links of earlier emails
still redirect and nothing is recorded.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from digest.clicks import store
from digest.clicks.recorder import ClickRecorder
from digest.clicks.store import RawHit
from digest.db import utcnow
from digest.network import network_prefix
from digest.web.routes_subscription import invalid_link
from digest.web.services import WebServices, services

MAX_CACHED = 100_000
HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def recorder_of(request: Request) -> ClickRecorder:
    recorder = request.app.state.click_recorder
    assert isinstance(recorder, ClickRecorder)
    return recorder


def _lookup(svc: WebServices, edition_id: int, link: int) -> str | None:
    with svc.engine.connect() as connection:
        return store.target(connection, edition_id, link)


async def redirect(request: Request) -> Response:
    svc = services(request)
    ref = svc.signer.read_click(request.path_params["token"])
    if ref is None:
        return invalid_link(request)
    cache: dict[tuple[int, int], str] = request.app.state.click_targets
    key = (ref.edition_id, ref.link)
    url = cache.get(key)
    if url is None:
        # Only found targets are cached: an edition created later must not stay unknown.
        url = await run_in_threadpool(_lookup, svc, ref.edition_id, ref.link)
        if url is None:
            return invalid_link(request)
        if len(cache) >= MAX_CACHED:
            cache.clear()
        cache[key] = url
    if svc.settings.track_clicks:
        recorder_of(request).submit(
            RawHit(
                edition_id=ref.edition_id,
                subscriber_id=ref.subscriber_id,
                link=ref.link,
                at=utcnow(),
                method=request.method,
                user_agent=request.headers.get("user-agent", ""),
                network=network_prefix(request.client.host if request.client else None),
            )
        )
    return RedirectResponse(url, status_code=302, headers=HEADERS)


routes = [Route("/r/{token}", redirect, methods=["GET"])]
