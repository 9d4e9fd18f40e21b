"""Per-client rate limiting for the public forms: an in-process sliding window.

Each key (a client address) keeps the times of its accepted requests within the window; a
request beyond the limit is refused with the number of seconds until the oldest one leaves
the window, which becomes the ``Retry-After`` header. The state lives in one process: with
several server processes each enforces the limit on its own, which bounds abuse well enough
for a sign-up form without a shared store.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, cast

from starlette.requests import Request
from starlette.types import ASGIApp

# An IPv6 client usually controls a whole /64; counting single addresses would let it rotate.
IPV6_PREFIX = 64


class SlidingWindowLimiter:
    """At most ``limit`` accepted hits per key within any ``window`` seconds."""

    def __init__(
        self,
        limit: int,
        window: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sweep_every: int = 1024,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.window = window
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._sweep_every = sweep_every
        self._since_sweep = 0

    def hit(self, key: str) -> float | None:
        """Record a hit for ``key``; ``None`` when allowed, else the seconds to wait."""
        now = self._clock()
        with self._lock:
            self._maybe_sweep(now)
            hits = self._hits.setdefault(key, deque())
            self._expire(hits, now)
            if len(hits) >= self.limit:
                return max(hits[0] + self.window - now, 0.001)
            hits.append(now)
            return None

    def __len__(self) -> int:
        """The number of keys currently tracked."""
        return len(self._hits)

    def _expire(self, hits: deque[float], now: float) -> None:
        horizon = now - self.window
        while hits and hits[0] <= horizon:
            hits.popleft()

    def _maybe_sweep(self, now: float) -> None:
        # Forget idle clients now and then so that the table does not grow without bound.
        self._since_sweep += 1
        if self._since_sweep < self._sweep_every:
            return
        self._since_sweep = 0
        for key in list(self._hits):
            hits = self._hits[key]
            self._expire(hits, now)
            if not hits:
                del self._hits[key]


def client_key(request: Request) -> str:
    """The rate-limit key of the client: its address, or its /64 network for IPv6.

    The address is the one ``client_address_middleware`` chose. Anything that is not an IP
    address (which no real proxy forwards) shares one key, so made-up values buy no new limit.
    """
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False))
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def client_address_middleware(app: ASGIApp, trusted_proxies: Sequence[str]) -> ASGIApp:
    """``app`` seeing the real client address: the TCP peer, or, when the peer is one of
    ``trusted_proxies`` (``DIGEST_TRUSTED_PROXIES``), the rightmost X-Forwarded-For address
    that is not (uvicorn's ``ProxyHeadersMiddleware``). With no trusted proxy the header is
    ignored, whatever the server in front was told."""
    if not trusted_proxies:
        return app
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    return cast(
        ASGIApp, ProxyHeadersMiddleware(cast(Any, app), trusted_hosts=list(trusted_proxies))
    )
