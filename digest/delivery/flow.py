"""Flow control of a send, in one place: the shared rate limiter and the retry backoff.

Every sending thread of a process books its tokens from one ``RateLimiter`` for the rows it
claimed, before it sends them, so ``settings.send_rate`` holds however many threads share the
backend. A provider's 429 (``RateLimitedError``) reaches the same limiter through
``throttle``: everybody waits for the ``Retry-After`` delay and the rate is halved, then it
climbs back by a twentieth of the configured rate per batch that goes through without
complaint (additive increase, multiplicative decrease, as TCP does).

``backoff_delay`` is exponential backoff with full jitter (a uniform draw between 0 and the
exponential ceiling), which spreads the retries of many threads and processes instead of
synchronizing them on the provider.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

MIN_RATE_FRACTION = 0.05  # throttling never drops below 5% of the configured rate
RECOVERY_STEPS = 20  # batches without a 429 to climb back from the floor to the full rate


class RateLimiter:
    """A token bucket without idle credit: ``reserve(n)`` books ``n`` messages and says how
    long to wait before sending them.

    Booking is first come, first served: each reservation starts where the previous one ended
    (or now, if that is later), so the first batch goes at once and the next waits ``n / rate``
    seconds. Thread-safe.
    """

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.max_rate = rate
        self.min_rate = rate * MIN_RATE_FRACTION
        self._rate = rate
        self._clock = clock
        self._next = clock()
        self._hold_until = 0.0
        self._lock = threading.Lock()

    @property
    def rate(self) -> float:
        """The current rate in messages per second (lower than configured after a 429)."""
        return self._rate

    def reserve(self, count: int) -> float:
        """Book ``count`` messages; the seconds to wait before sending them (0 = now)."""
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + count / self._rate
            return start - now

    def throttle(self, retry_after: float | None) -> None:
        """The provider said "slow down": halve the rate and hold everyone for ``retry_after``."""
        with self._lock:
            self._rate = max(self.min_rate, self._rate / 2)
            if retry_after is not None and retry_after > 0:
                until = self._clock() + retry_after
                self._next = max(self._next, until)
                self._hold_until = max(self._hold_until, until)

    def hold(self) -> float:
        """Seconds left of the last ``Retry-After``: no call may start before they pass, even
        one whose tokens were booked earlier."""
        return max(0.0, self._hold_until - self._clock())

    def recover(self) -> None:
        """A batch went through unthrottled: climb back toward the configured rate."""
        if self._rate >= self.max_rate:
            return
        with self._lock:
            self._rate = min(self.max_rate, self._rate + self.max_rate / RECOVERY_STEPS)


def backoff_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    rng: Callable[[float, float], float] = random.uniform,
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): full jitter, i.e. a
    uniform draw in ``[0, min(cap, base * 2 ** (attempt - 1))]``."""
    ceiling = min(cap, base * 2 ** max(0, attempt - 1))
    return rng(0.0, ceiling)
