"""What may hold a send back: the send window and the pause switch.

**Pause switch** (``digest pause`` / ``digest resume``): one ``ServiceState`` row, key
``"paused"``, value ``{"paused": true|false, "by": "...", "at": "<ISO 8601 UTC>", "reason":
"..."}``. The scheduler checks it before it starts sending an edition; the delivery engine
(``digest.delivery.sender``) reads the same row between batches, so a pause stops every worker
after its current batch. Resuming keeps the row (``"paused": false``) to record who resumed.

**Send window** (``settings.send_window``, e.g. ``07:00-20:00`` local time in
``settings.zone``; a window such as ``22:00-06:00`` runs over midnight). Outside it, the send
waits until the window opens.

``hold`` waits for both in bounded steps, re-checking the stop event and the pause switch at
every step; the clock and the sleep are injectable so tests can run hours of waiting in
milliseconds.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine

from digest.db import session_scope, utcnow
from digest.scheduler.logs import log_event
from digest.state import read_state, write_state

log = logging.getLogger(__name__)

PAUSE_KEY = "paused"
HOLD_STEP_SECONDS = 60.0
MAX_HOLD = dt.timedelta(hours=24)

Clock = Callable[[], dt.datetime]
Sleep = Callable[[float], None]


# -- the pause switch -------------------------------------------------------------------------


def pause_state(engine: Engine) -> dict[str, Any] | None:
    """The stored pause switch (``None`` if it was never used)."""
    with session_scope(engine) as session:
        return read_state(session, PAUSE_KEY)


def is_paused(engine: Engine) -> bool:
    state = pause_state(engine)
    return bool(state and state.get("paused"))


def set_paused(
    engine: Engine,
    paused: bool,
    *,
    by: str,
    reason: str | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Turn the switch on or off, recording who did it, when and why; the stored value."""
    value: dict[str, Any] = {
        "paused": paused,
        "by": by,
        "at": (now or utcnow()).isoformat(),
        "reason": reason,
    }
    with session_scope(engine) as session:
        write_state(session, PAUSE_KEY, value)
    log_event(log, "paused" if paused else "resumed", by=by, reason=reason)
    return value


def pause(engine: Engine, *, by: str, reason: str | None = None) -> dict[str, Any]:
    return set_paused(engine, True, by=by, reason=reason)


def resume(engine: Engine, *, by: str, reason: str | None = None) -> dict[str, Any]:
    return set_paused(engine, False, by=by, reason=reason)


# -- the send window --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendWindow:
    """Local hours ``[start, end)`` in which sending may start; ``start > end`` spans midnight."""

    start: dt.time
    end: dt.time

    @classmethod
    def parse(cls, text: str | None) -> SendWindow | None:
        """``"07:00-20:00"`` as a window; ``None`` or ``""`` (no window) as ``None``."""
        if not text:
            return None
        first, _, last = text.partition("-")
        try:
            start, end = dt.time.fromisoformat(first), dt.time.fromisoformat(last)
        except ValueError:
            raise ValueError(f"send window must look like 07:00-20:00, got {text!r}") from None
        return cls(start, end)

    def contains(self, moment: dt.datetime, zone: ZoneInfo) -> bool:
        local = moment.astimezone(zone).time().replace(tzinfo=None)
        if self.start == self.end:
            return True
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def next_opening(self, moment: dt.datetime, zone: ZoneInfo) -> dt.datetime:
        """When the window next opens after ``moment`` (UTC); ``moment`` itself if it is open."""
        if self.contains(moment, zone):
            return moment
        day = moment.astimezone(zone).date()
        for offset in range(3):
            opening = dt.datetime.combine(day + dt.timedelta(days=offset), self.start, zone)
            # A start inside a DST gap (02:30 on a spring-forward night) lands on the first
            # valid instant after it, which is what "the window opens" means then.
            opening_utc = opening.astimezone(dt.UTC)
            if opening_utc > moment:
                return opening_utc
        raise AssertionError("a daily window opens within two days")  # pragma: no cover

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


# -- waiting for both -------------------------------------------------------------------------


class HoldOutcome(enum.StrEnum):
    CLEAR = "clear"  # the window is open and nobody paused: send now
    STOPPED = "stopped"  # the service is stopping
    EXPIRED = "expired"  # still held when the deadline came: give up for this run


@dataclass(frozen=True, slots=True)
class HoldResult:
    outcome: HoldOutcome
    waited_seconds: float
    reason: str = ""  # what held the send last: "paused" or "window"


def _default_sleep(stop: threading.Event) -> Sleep:
    def sleep(seconds: float) -> None:
        stop.wait(seconds)

    return sleep


def hold(
    engine: Engine,
    window: SendWindow | None,
    zone: ZoneInfo,
    *,
    stop: threading.Event,
    clock: Clock = utcnow,
    sleep: Sleep | None = None,
    step: float = HOLD_STEP_SECONDS,
    max_hold: dt.timedelta = MAX_HOLD,
) -> HoldResult:
    """Wait until the window is open and the switch is off; give up at stop or after ``max_hold``.

    Sleeps at most ``step`` seconds at a time (and never past the window's opening), so a
    resume, a stop or the opening of the window is seen within one step.
    """
    sleep = sleep or _default_sleep(stop)
    started = clock()
    deadline = started + max_hold
    last_reason = ""
    while True:
        now = clock()
        waited = (now - started).total_seconds()
        if stop.is_set():
            return HoldResult(HoldOutcome.STOPPED, waited, last_reason)
        reason, seconds = "", step
        if is_paused(engine):
            reason = "paused"
        elif window is not None and not window.contains(now, zone):
            opening = window.next_opening(now, zone)
            reason, seconds = "window", min(step, (opening - now).total_seconds())
            if reason != last_reason:
                log_event(log, "hold", reason=reason, window=str(window), opens_at=opening)
        if not reason:
            if last_reason:
                log_event(log, "hold_released", waited_seconds=round(waited, 1))
            return HoldResult(HoldOutcome.CLEAR, waited, last_reason)
        if reason == "paused" and reason != last_reason:
            log_event(log, "hold", reason=reason)
        last_reason = reason
        if now >= deadline:
            log_event(
                log, "hold_expired", level=logging.WARNING, reason=reason, waited_seconds=waited
            )
            return HoldResult(HoldOutcome.EXPIRED, waited, reason)
        sleep(max(0.0, min(seconds, (deadline - now).total_seconds())))
