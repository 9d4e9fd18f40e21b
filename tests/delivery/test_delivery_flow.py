"""Flow control on a fake clock: the shared token bucket, 429 throttling and recovery, and
exponential backoff with full jitter."""

from __future__ import annotations

import pytest

from digest.delivery.flow import RECOVERY_SECONDS, RateLimiter, backoff_delay


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_reservations_queue_up_at_the_configured_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(50.0, clock=clock)
    assert limiter.reserve(500) == 0.0  # the first batch goes at once
    assert limiter.reserve(500) == pytest.approx(10.0)  # then 500 / 50 s later
    assert limiter.reserve(100) == pytest.approx(20.0)
    clock.now += 25.0
    assert limiter.reserve(50) == 0.0  # the queue has drained


def test_idle_time_is_not_banked() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10.0, clock=clock)
    limiter.reserve(10)
    clock.now += 3600
    assert limiter.reserve(10) == 0.0
    assert limiter.reserve(10) == pytest.approx(1.0)  # no burst from the idle hour


def test_a_429_holds_everyone_and_halves_the_rate_then_it_recovers_in_time() -> None:
    clock = FakeClock()
    limiter = RateLimiter(100.0, clock=clock)
    limiter.throttle(retry_after=30.0)
    assert limiter.rate == 50.0
    assert limiter.hold() == pytest.approx(30.0)
    assert limiter.reserve(10) == pytest.approx(30.0)
    clock.now += 30.0
    assert limiter.hold() == 0.0
    # Recovery comes with time, not with calls: 30 s later it is back at the full rate.
    assert limiter.rate == 100.0
    limiter.throttle(None)
    clock.now += RECOVERY_SECONDS / 4
    assert limiter.rate == pytest.approx(75.0)
    for _ in range(50):
        limiter.throttle(None)
    assert limiter.rate == pytest.approx(10.0)  # never below 10% of the configured rate
    clock.now += RECOVERY_SECONDS
    assert limiter.rate == 100.0


def test_a_call_carries_about_one_second_of_messages_within_the_provider_limit() -> None:
    clock = FakeClock()
    limiter = RateLimiter(20.0, clock=clock)
    assert limiter.call_size(500) == 20
    assert limiter.call_size(10) == 10
    assert RateLimiter(0.5, clock=clock).call_size(500) == 1
    limiter.throttle(None)
    assert limiter.call_size(500) == 10


def test_backoff_is_full_jitter_under_an_exponential_ceiling() -> None:
    seen: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        seen.append((low, high))
        return high

    delays = [backoff_delay(n, base=1.0, cap=20.0, rng=uniform) for n in range(1, 8)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 20.0, 20.0]
    assert all(low == 0.0 for low, _high in seen)
    assert 0.0 <= backoff_delay(3, base=1.0, cap=20.0) <= 4.0


def test_a_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RateLimiter(0)
