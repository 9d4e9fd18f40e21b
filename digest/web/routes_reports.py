"""The edition report for editors: ``GET /reports/{edition}`` behind ``DIGEST_ADMIN_TOKEN``.

The page is ``digest report --html`` (``digest.delivery.report_html``). It answers only a
request with ``Authorization: Bearer <DIGEST_ADMIN_TOKEN>``; without a configured token the
route does not exist (404), and a wrong or missing token gets 401. Reports are never cached.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from digest.errors import NotFoundError
from digest.web.routes_health import _bearer_matches
from digest.web.services import WebServices, services

NO_STORE = {"Cache-Control": "no-store"}


def _page(svc: WebServices, edition_id: int) -> str:
    from digest.delivery.report import edition_report
    from digest.delivery.report_html import report_html
    from digest.webhooks.counts import webhook_counts

    with svc.engine.connect() as connection:
        webhook = webhook_counts(connection, edition_id)
    report = edition_report(svc.engine, svc.settings, edition_id, webhook=webhook)
    return report_html(report, svc.settings.site_name)


async def edition_report_page(request: Request) -> Response:
    svc = services(request)
    token = svc.settings.admin_token
    if token is None or not token.get_secret_value():
        return PlainTextResponse("Not Found", status_code=404)
    if not _bearer_matches(request, token):
        return PlainTextResponse(
            "Unauthorized",
            status_code=401,
            headers={"WWW-Authenticate": "Bearer", **NO_STORE},
        )
    try:
        page = await run_in_threadpool(_page, svc, request.path_params["edition"])
    except NotFoundError:
        return PlainTextResponse("Not Found", status_code=404, headers=NO_STORE)
    return HTMLResponse(page, headers=NO_STORE)


routes = [Route("/reports/{edition:int}", edition_report_page, methods=["GET"])]
