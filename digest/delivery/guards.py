"""Whether an edition may send now: the pause switch and the send window, checked by every claim.

**Pause switch** (``digest pause`` / ``digest resume``): one ``ServiceState`` row, key
``"paused"``, value ``{"paused": true|false, "by": "...", "at": "<ISO 8601 UTC>", "reason":
"..."}``. Resuming keeps the row (``"paused": false``) to record who resumed.

**Send window** (``settings.send_window``, e.g. ``07:00-20:00`` local time in
``settings.zone``; a window such as ``22:00-06:00`` runs over midnight). Outside it nothing is
claimed until the window opens; ``digest send --now`` overrides it for one run (and says so in
``ServiceState["send_window_override"]`` and the log).

``check`` is the rule: the ledger's claim (``digest.delivery.ledger.claim_in``) calls it in its
own transaction, so ``send``, every ``worker``, the scheduler and a worker on another machine
obey the same switch. It answers with a ``Hold`` (why, and until when) or None. A cancelled
edition is never claimed at all: the claim takes rows of ``sending`` editions only.

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
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Connection, Engine

from digest.db import utcnow
from digest.logs import log_event
from digest.state import read_state, write_state

if TYPE_CHECKING:
    from sqlmodel import Session

log = logging.getLogger(__name__)

PAUSE_KEY = "paused"
OVERRIDE_KEY = "send_window_override"
HOLD_STEP_SECONDS = 60.0
MAX_HOLD = dt.timedelta(hours=24)

Clock = Callable[[], dt.datetime]
Sleep = Callable[[float], None]


# -- the pause switch -------------------------------------------------------------------------


def pause_state(engine: Engine) -> dict[str, Any] | None:
    """The stored pause switch (``None`` if it was never used)."""
    with engine.connect() as connection:
        return read_state(connection, PAUSE_KEY)


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
    with engine.begin() as connection:
        write_state(connection, PAUSE_KEY, value)
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


# -- the rule ---------------------------------------------------------------------------------


class HoldReason(enum.StrEnum):
    PAUSED = "paused"
    WINDOW = "window"


@dataclass(frozen=True, slots=True)
class Hold:
    """Why nothing may be sent now, and until when (``until`` None: until someone resumes)."""

    reason: HoldReason
    until: dt.datetime | None = None
    by: str | None = None
    at: str | None = None
    window: str | None = None

    def describe(self) -> str:
        """One line for an operator: ``paused by ops@host at ...`` / ``held until ...``."""
        if self.reason is HoldReason.PAUSED:
            return f"paused by {self.by or 'unknown'} at {self.at or 'unknown time'}"
        until = self.until.isoformat().replace("+00:00", "Z") if self.until else "?"
        return f"held until {until} (send window {self.window})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "reason": str(self.reason),
            "until": None if self.until is None else self.until.isoformat(),
            "by": self.by,
            "at": self.at,
            "window": self.window,
        }


@dataclass(frozen=True, slots=True)
class Guards:
    """The send window of the settings (None: always open) and whether this run overrides it."""

    window: SendWindow | None
    zone: ZoneInfo
    ignore_window: bool = False

    @classmethod
    def of(cls, settings: Any, *, ignore_window: bool = False) -> Guards:
        return cls(SendWindow.parse(settings.send_window), settings.zone, ignore_window)

    def check(self, db: Session | Connection, now: dt.datetime | None = None) -> Hold | None:
        """The hold in force now (the pause switch first), or None: sending may go on."""
        now = now or utcnow()
        state = read_state(db, PAUSE_KEY)
        if state and state.get("paused"):
            return Hold(HoldReason.PAUSED, by=state.get("by"), at=state.get("at"))
        return self.window_hold(now)

    def window_hold(self, now: dt.datetime) -> Hold | None:
        window = self.window
        if self.ignore_window or window is None or window.contains(now, self.zone):
            return None
        return Hold(
            HoldReason.WINDOW, until=window.next_opening(now, self.zone), window=str(window)
        )


def current_hold(engine: Engine, guards: Guards, now: dt.datetime | None = None) -> Hold | None:
    with engine.connect() as connection:
        return guards.check(connection, now)


def record_override(engine: Engine, *, edition_id: int, week: str, by: str, window: str) -> None:
    """``digest send --now`` sends outside the window: write down who, when and for what."""
    value: dict[str, Any] = {
        "edition": edition_id,
        "week": week,
        "by": by,
        "at": utcnow().isoformat(),
        "window": window,
    }
    with engine.begin() as connection:
        write_state(connection, OVERRIDE_KEY, value)
    log_event(log, "window_override", level=logging.WARNING, **value)


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
    guards: Guards,
    *,
    stop: threading.Event,
    clock: Clock = utcnow,
    sleep: Sleep | None = None,
    step: float = HOLD_STEP_SECONDS,
    max_hold: dt.timedelta = MAX_HOLD,
) -> HoldResult:
    """Wait until ``guards.check`` clears; give up at stop or after ``max_hold``.

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
        held = current_hold(engine, guards, now)
        if held is None:
            if last_reason:
                log_event(log, "hold_released", waited_seconds=round(waited, 1))
            return HoldResult(HoldOutcome.CLEAR, waited, last_reason)
        reason, seconds = str(held.reason), step
        if held.until is not None:
            seconds = min(step, (held.until - now).total_seconds())
        if reason != last_reason:
            log_event(log, "hold", reason=reason, until=held.until, window=held.window, by=held.by)
        last_reason = reason
        if now >= deadline:
            log_event(
                log, "hold_expired", level=logging.WARNING, reason=reason, waited_seconds=waited
            )
            return HoldResult(HoldOutcome.EXPIRED, waited, reason)
        sleep(max(0.0, min(seconds, (deadline - now).total_seconds())))
