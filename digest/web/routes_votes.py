"""Reader votes on the web: the vote page behind every "Ship" / "Skip" link of an email, and the
public aggregate for the site.

- ``GET`` (and ``HEAD``) ``/vote/{token}`` record nothing: link scanners and prefetchers
  (Defender Safe Links, Proofpoint, Mimecast, Gmail's proxies) follow every link of a message.
  The page names the choice and offers one button, which POSTs.
- ``POST /vote/{token}`` records the vote (the last one counts), shows the community figure and
  offers the opposite choice as a second button. It asks for the form's ``choice`` field, which
  must match the token: a bare POST to the URL records nothing. Presses are rate-limited per
  client network.
- ``GET /api/votes/{slug}.json``: every tool's community figure (imported plus newsletter
  votes), cacheable (``Cache-Control``, ``ETag``), rate-limited per client.

Every unusable token (forged, truncated, another purpose, expired, or naming a comparison its
edition did not carry) gets the same plain 400 page and records nothing.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any

import orjson
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool
from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from digest.db import utcnow
from digest.editions.votes import ballot_for
from digest.network import network_prefix
from digest.votes import store
from digest.web.ratelimit import client_key
from digest.web.routes_subscription import invalid_link
from digest.web.services import WebServices, error_page, render, services
from subscribers.tokens import VoteRef

SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
API_MAX_AGE_SECONDS = 60
NO_STORE = {"Cache-Control": "no-store"}


def _choice_label(choice: str) -> str:
    return "Ship" if choice == "ship" else "Skip"


class VoteEndpoint(HTTPEndpoint):
    def get(self, request: Request) -> Response:
        """The confirmation page: the choice and one button; nothing is recorded."""
        svc = services(request)
        ref = svc.signer.read_vote(request.path_params["token"])
        if ref is None or not svc.settings.votes:
            return invalid_link(request)
        with svc.engine.connect() as connection:
            ballot = ballot_for(
                connection,
                ref,
                svc.frozen_cards,
                max_age_days=svc.settings.vote_link_max_age_days,
            )
            earlier = store.current_choice(connection, ballot) if ballot else None
        if ballot is None:
            return invalid_link(request)
        context = {
            "ballot": ballot,
            "choice": _choice_label(ref.choice),
            "choice_value": ref.choice,
            "earlier": _choice_label(earlier) if earlier else None,
            "action": f"/vote/{request.path_params['token']}",
        }
        return render(request, "vote.html", context, headers=NO_STORE)

    async def post(self, request: Request) -> Response:
        """Record the vote, then show the community figure and a way to change it."""
        svc = services(request)
        if not svc.settings.votes:
            return invalid_link(request)
        wait = svc.vote_limiter.hit(client_key(request))
        if wait is not None:
            return error_page(
                request,
                429,
                "Too many votes",
                "Too many votes from your network. Please wait a minute and try again.",
                headers={"Retry-After": str(math.ceil(wait))},
            )
        token = request.path_params["token"]
        ref = svc.signer.read_vote(token)
        if ref is None:
            return invalid_link(request)
        form = await request.form(max_files=0, max_fields=8)
        if form.get("choice") != ref.choice:
            # Not the page's button: a scanner or a hand-made request. Show the page again.
            return await run_in_threadpool(self.get, request)
        network = network_prefix(request.client.host if request.client else None)
        user_agent = request.headers.get("user-agent", "")
        result = await run_in_threadpool(_record, svc, ref, network, user_agent)
        if result is None:
            return invalid_link(request)
        ballot, figures = result
        context = {
            "ballot": ballot,
            "choice": _choice_label(ref.choice),
            "figures": figures,
            "other_choice": _choice_label(ref.other().choice),
            "other_value": ref.other().choice,
            "other_action": f"/vote/{svc.signer.make_vote(ref.other())}",
        }
        return render(request, "voted.html", context, headers=NO_STORE)


def _record(
    svc: WebServices, ref: VoteRef, network: str, user_agent: str
) -> tuple[store.Ballot, list[store.ToolCommunity]] | None:
    with svc.engine.connect() as connection:
        ballot = ballot_for(
            connection, ref, svc.frozen_cards, max_age_days=svc.settings.vote_link_max_age_days
        )
    if ballot is None:
        return None
    try:
        # The write transaction holds only the two writes: the lock is short on SQLite.
        with svc.core_transaction() as connection:
            store.record(connection, ballot, network=network, user_agent=user_agent, now=utcnow())
    except IntegrityError:
        return None  # the subscriber was erased since the check
    with svc.engine.connect() as connection:
        return ballot, store.community(connection, ballot.comparison_id)


def votes_api(request: Request) -> Response:
    """The public community figure of every tool of one comparison, as JSON."""
    svc = services(request)
    wait = svc.votes_api_limiter.hit(client_key(request))
    if wait is not None:
        return _json({"error": "too many requests"}, 429, {"Retry-After": str(math.ceil(wait))})
    slug = request.path_params["slug"]
    if not SLUG.match(slug) or len(slug) > 120:
        return _json({"error": "no such comparison"}, 404)
    with svc.engine.connect() as connection:
        comparison_id = store.comparison_id_of(connection, slug)
        figures = store.community(connection, comparison_id) if comparison_id else None
    if figures is None:
        return _json({"error": "no such comparison"}, 404)
    body = _aggregate(slug, figures)
    payload = orjson.dumps(body)
    etag = f'"{hashlib.sha256(payload).hexdigest()[:32]}"'
    headers = {
        "Cache-Control": f"public, max-age={API_MAX_AGE_SECONDS}",
        "ETag": etag,
        "Access-Control-Allow-Origin": "*",
    }
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(payload, media_type="application/json", headers=headers)


def _aggregate(slug: str, figures: list[store.ToolCommunity]) -> dict[str, Any]:
    updated = [f.newsletter.updated_at for f in figures if f.newsletter.updated_at is not None]
    return {
        "comparison": slug,
        "updated_at": max(updated).isoformat() if updated else None,
        "tools": [
            {
                "slug": figure.slug,
                "name": figure.name,
                "ship": figure.combined.up,
                "skip": figure.combined.down,
                "votes": figure.combined.total,
                "share": figure.combined.up_percent,
                "label": str(figure.combined.verdict) if figure.combined.verdict else None,
                "newsletter": {"ship": figure.newsletter.ship, "skip": figure.newsletter.skip},
                "imported": {"ship": figure.imported.up, "skip": figure.imported.down},
                "updated_at": (
                    figure.newsletter.updated_at.isoformat()
                    if figure.newsletter.updated_at
                    else None
                ),
            }
            for figure in figures
        ],
    }


def _json(body: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type="application/json",
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


routes = [
    Route("/vote/{token}", VoteEndpoint),
    Route("/api/votes/{slug}.json", votes_api, methods=["GET"]),
]
