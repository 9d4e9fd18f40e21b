"""Flow control of a send, in one place: the pace of provider calls and the retry backoff.

Every sending thread of a process books, from one ``RateLimiter``, the messages of each
provider call just before it makes it, so ``settings.send_rate`` holds per call, however many
threads share the backend: a call carries at most about one second of messages
(``call_size``), and the next call waits until the previous one's second is over. Over any
five seconds a provider sees at most about five seconds' worth, plus the first call.

A provider's 429 (``RateLimitedError``) reaches the same limiter through ``throttle``:
everybody waits for the ``Retry-After`` delay and the rate is halved (never below
``MIN_RATE_FRACTION`` of the configured rate, so a send never crawls); the rate then climbs
back linearly with time, to the full rate within ``RECOVERY_SECONDS`` (additive increase,
multiplicative decrease, as TCP does, but in time rather than per call).

``backoff_delay`` is exponential backoff with full jitter (a uniform draw between 0 and the
exponential ceiling), which spreads the retries of many threads and processes instead of
synchronizing them on the provider.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

MIN_RATE_FRACTION = 0.1  # throttling never drops below 10% of the configured rate
RECOVERY_SECONDS = 10.0  # from the floor back to the configured rate, without a 429
CALL_SECONDS = 1.0  # a provider call carries at most this many seconds of messages


class RateLimiter:
    """A token bucket without idle credit: ``reserve(n)`` books ``n`` messages and says how
    long to wait before sending them.

    Booking is first come, first served: each reservation starts where the previous one ended
    (or now, if that is later), so the first call goes at once and the next waits ``n / rate``
    seconds. Thread-safe.
    """

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.max_rate = rate
        self.min_rate = rate * MIN_RATE_FRACTION
        self._clock = clock
        self._next = clock()
        self._hold_until = 0.0
        self._throttled_rate = rate  # the rate set by the last 429 ...
        self._throttled_at = -1e18  # ... and when
        self._lock = threading.Lock()

    @property
    def rate(self) -> float:
        """The current rate in messages per second (lower than configured after a 429)."""
        with self._lock:
            return self._rate_at(self._clock())

    def _rate_at(self, now: float) -> float:
        climbed = (now - self._throttled_at) * self.max_rate / RECOVERY_SECONDS
        return min(self.max_rate, self._throttled_rate + max(0.0, climbed))

    def call_size(self, limit: int) -> int:
        """Messages in one provider call: about ``CALL_SECONDS`` at the current rate, within
        the provider's ``limit``."""
        return max(1, min(limit, int(self.rate * CALL_SECONDS)))

    def reserve(self, count: int) -> float:
        """Book ``count`` messages; the seconds to wait before sending them (0 = now)."""
        with self._lock:
            now = self._clock()
            start = max(now, self._next, self._hold_until)
            self._next = start + count / self._rate_at(start)
            return start - now

    def throttle(self, retry_after: float | None) -> None:
        """The provider said "slow down": halve the rate and hold everyone for ``retry_after``."""
        with self._lock:
            now = self._clock()
            self._throttled_rate = max(self.min_rate, self._rate_at(now) / 2)
            self._throttled_at = now
            if retry_after is not None and retry_after > 0:
                until = now + retry_after
                self._next = max(self._next, until)
                self._hold_until = max(self._hold_until, until)

    def hold(self) -> float:
        """Seconds left of the last ``Retry-After``: no call may start before they pass, even
        one whose tokens were booked earlier."""
        return max(0.0, self._hold_until - self._clock())


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
