"""Tracked links: ``GET``/``HEAD /r/{token}`` answers a 302 to the link's target at once, or,
for the edition's open pixel, a 1x1 transparent GIF.

The token (``subscribers.tokens.ClickRef``) names an edition, a subscriber and a link number;
the target comes from the edition's frozen link table (``digest.clicks.store.target``, cached
per process, as the tables never change), never from the URL, so this is no open redirect.
Every unusable token (forged, damaged, a link the edition does not have) gets the plain 400
page. The hit, with its method, user agent and client network, goes on the process's
``ClickRecorder`` queue and is stored off the request path; whether it was a person is decided
later (``digest.clicks.rules``). A fetch of the pixel (the link of kind ``open``, last in the
table) is queued as an open (``digest.clicks.opens``), never as a click. With
``DIGEST_TRACK_CLICKS=off`` the links of earlier emails still redirect and nothing is recorded;
with ``DIGEST_TRACK_OPENS=off`` their pixels still answer the image and no open is recorded.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from digest.clicks import store
from digest.clicks.opens import RawOpen
from digest.clicks.recorder import ClickRecorder
from digest.clicks.store import RawHit, Target
from digest.db import utcnow
from digest.network import network_prefix
from digest.render.links import LinkKind
from digest.web.routes_subscription import invalid_link
from digest.web.services import WebServices, services

MAX_CACHED = 100_000
HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
# A 1x1 transparent GIF89a: the smallest image every mail client shows (as nothing).
PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)


def recorder_of(request: Request) -> ClickRecorder:
    recorder = request.app.state.click_recorder
    assert isinstance(recorder, ClickRecorder)
    return recorder


def _lookup(svc: WebServices, edition_id: int, link: int) -> Target | None:
    with svc.engine.connect() as connection:
        return store.target(connection, edition_id, link)


async def redirect(request: Request) -> Response:
    svc = services(request)
    ref = svc.signer.read_click(request.path_params["token"])
    if ref is None:
        return invalid_link(request)
    cache: dict[tuple[int, int], Target] = request.app.state.click_targets
    key = (ref.edition_id, ref.link)
    found = cache.get(key)
    if found is None:
        # Only found targets are cached: an edition created later must not stay unknown.
        found = await run_in_threadpool(_lookup, svc, ref.edition_id, ref.link)
        if found is None:
            return invalid_link(request)
        if len(cache) >= MAX_CACHED:
            cache.clear()
        cache[key] = found
    is_pixel = found.kind == LinkKind.OPEN
    if svc.settings.track_opens if is_pixel else svc.settings.track_clicks:
        at = utcnow()
        user_agent = request.headers.get("user-agent", "")
        network = network_prefix(request.client.host if request.client else None)
        recorder_of(request).submit(
            RawOpen(ref.edition_id, ref.subscriber_id, at, request.method, user_agent, network)
            if is_pixel
            else RawHit(
                ref.edition_id, ref.subscriber_id, ref.link, at, request.method, user_agent, network
            )
        )
    if is_pixel:
        return Response(PIXEL, media_type="image/gif", headers=HEADERS)
    return RedirectResponse(found.url, status_code=302, headers=HEADERS)


routes = [Route("/r/{token}", redirect, methods=["GET"])]
