"""``digest serve``: the subscription pages, ``/healthz`` and ``/metrics`` under uvicorn."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Annotated

import typer

from digest.cli import common


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port to listen on.")] = 8000,
) -> None:
    """Serve the web app (sign-up, confirm, unsubscribe, preferences, health, metrics).

    Behind a reverse proxy, set DIGEST_TRUSTED_PROXIES to the proxy's address so that client
    addresses (used by the sign-up rate limit) come from X-Forwarded-For; without it the
    header is ignored. SIGTERM is a normal stop: requests in progress finish, then the
    process exits 0.
    """
    import uvicorn

    from digest.web.app import create_app

    settings = common.settings()
    settings.require_signing_key()
    app = create_app(settings, engine=common.engine(settings))
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again with the previous
    # handler in place: this one turns it into a clean exit instead of "killed by SIGTERM".
    common.require_free_port(host, port)
    common.service_logging(settings)
    previous = signal.signal(signal.SIGTERM, _stopped)
    try:
        # log_config=None: uvicorn's lines go through digest.logs like every other line.
        uvicorn.run(
            app, host=host, port=port, proxy_headers=False, server_header=False, log_config=None
        )
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stopped(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)
