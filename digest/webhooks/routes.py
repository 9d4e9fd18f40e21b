"""``POST /webhooks/{provider}``: the HTTP face of the webhook receivers.

The order is the point: unknown provider (404) → provider not configured (503: refuse rather
than accept unsigned events) → body read up to ``webhook_max_bytes`` (413) → signature checked
on the raw bytes (401 without credentials, 403 with wrong ones; nothing stored) → payload
parsed (400 if unreadable) → events stored and applied (200 with counts). Mailgun and SNS put
their signature inside the JSON body, so their check reads just those fields first. Verification,
parsing and the database work run in the thread pool: the SNS certificate fetch and the
database are blocking.

Mount the routes in the web application with ``webhook_routes(settings, engine)``; they use no
session, cookie or CSRF field: the provider signature is the only credential.
"""

from __future__ import annotations

import logging

from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from digest.config import Settings
from digest.webhooks import postmark, ses
from digest.webhooks.events import MissingSignatureError, WebhookError
from digest.webhooks.process import process_events
from digest.webhooks.registry import Receiver, receivers

logger = logging.getLogger(__name__)

PATH = "/webhooks/{provider}"


class BodyTooLarge(Exception):
    """The request body exceeds the configured limit."""


def webhook_routes(
    settings: Settings,
    engine: Engine,
    *,
    sns_fetch: ses.Fetch | None = None,
    sns_confirm: ses.Confirm | None = None,
) -> list[Route]:
    """The webhook routes for an application: ``POST /webhooks/{provider}``."""
    known = receivers(settings, sns_fetch=sns_fetch, sns_confirm=sns_confirm)
    limit = settings.webhook_max_bytes

    async def receive(request: Request) -> Response:
        name = request.path_params["provider"]
        receiver = known.get(name)
        if receiver is None:
            return _error(404, "unknown provider")
        if not receiver.configured():
            logger.warning("webhook %s refused: its secret is not configured", name)
            return _error(503, f"the {name} webhook is not configured")
        try:
            body = await _read_body(request, limit)
        except BodyTooLarge:
            return _error(413, "request body too large")
        except ClientDisconnect:
            return _error(400, "incomplete request")
        return await _verified(receiver, request, body, engine)

    return [Route(PATH, receive, methods=["POST"], name="webhook")]


async def _verified(receiver: Receiver, request: Request, body: bytes, engine: Engine) -> Response:
    headers = request.headers
    try:
        await run_in_threadpool(receiver.verify, headers, body)
    except WebhookError as exc:
        logger.warning("webhook %s refused: %s", receiver.name, exc)
        # Postmark authenticates with HTTP Basic: a 401 tells a client which scheme to use.
        basic = receiver.name == postmark.NAME and isinstance(exc, MissingSignatureError)
        return _error(exc.status_code, str(exc), authenticate=basic)
    try:
        events = await run_in_threadpool(receiver.handle, body, headers)
    except WebhookError as exc:
        logger.warning("webhook %s payload refused: %s", receiver.name, exc)
        return _error(exc.status_code, str(exc))
    outcome = await run_in_threadpool(process_events, engine, events)
    return JSONResponse(
        {"received": outcome.received, "stored": outcome.stored, "duplicates": outcome.duplicates}
    )


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status_code: int, message: str, *, authenticate: bool = False) -> Response:
    headers = {"WWW-Authenticate": 'Basic realm="webhooks"'} if authenticate else None
    return JSONResponse({"error": message}, status_code=status_code, headers=headers)
