"""The delivery engine: claim a batch, build its messages, hand them to the backend call by
call at the configured pace, record each recipient's outcome — with
``settings.send_concurrency`` threads sharing one backend.

One batch, one thread::

    claim (ledger.claim_in, one transaction; the guards are checked there)
      ─> for each provider call (about one second of messages at the current rate, within the
         backend's batch limit and ``call_bytes``; built just before it):
           book its messages from the shared RateLimiter and wait for them
           mark_started, COMMIT    the rows are now in flight: a crash from here on makes them
                                   ``unknown`` (or resent, on an idempotent backend), never a
                                   second copy
           backend.send_batch
           record outcomes, COMMIT one transaction per call, bulk UPDATEs

Whole-call failures (``digest.backends.errors``) change only the rows of that call:

- ``RateLimitedError``: the shared limiter halves its rate and holds every thread for
  ``retry_after``; the call's rows are deferred until then, their attempt not counted.
- ``RetryableError`` (5xx, connection refused): the call's rows are deferred with exponential
  backoff and full jitter; the rest of the batch, never tried, waits as long (uncharged), so an
  outage costs one call per batch. A row is ``failed`` only once its retry window
  (``settings.send_retry_window``, from its first failure) is over.
- ``AmbiguousError``: ``unknown`` (never resent automatically) unless the backend deduplicates
  on the idempotency key (the row's Message-ID), in which case it is deferred like the above.
- ``PermanentError`` (bad credentials, ...): the call and the rest of the batch go back to
  ``pending``, every thread stops after its current call, and ``run`` raises ``SendAborted``.

Results a failed call did get (a backend making several requests may fail halfway) are
recorded first. A per-recipient rejection inside an accepted call fails that row only; when
the provider says the address itself is unusable it is also suppressed (a hard bounce,
audited).

The guards (pause switch, send window) are checked by every claim, and again between the calls
of a batch (at most once a second): a pause stops every sender after its current call. A
cancelled edition is no longer claimed, and its rows not yet in flight are skipped. ``stop``
(SIGTERM/SIGINT) is honoured between calls and during every wait: rows in hand are given back.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from digest.backends.base import EmailBackend, SendResult, effective_send_rate
from digest.backends.errors import (
    AmbiguousError,
    BackendError,
    PermanentError,
    RateLimitedError,
    RetryableError,
)
from digest.config import Settings
from digest.db import aware, immediate_session, is_sqlite, session_scope, utcnow
from digest.delivery.flow import RateLimiter, backoff_delay
from digest.delivery.guards import Guards, Hold, HoldReason, current_hold
from digest.delivery.ledger import (
    DELIVERY,
    EDITION,
    OPEN_STATES,
    Claim,
    ClaimedRow,
    claim_in,
    defer,
    finish_editions,
    mark_started,
    record_results,
    release,
    settle,
    worker_identity,
)
from digest.delivery.models import DeliveryState
from digest.delivery.runtime import prepare_process_for_sending
from digest.editions.models import EditionStatus
from digest.errors import DigestError
from digest.logs import log_event
from digest.message import OutgoingMessage

log = logging.getLogger(__name__)

RETRY_BASE_SECONDS = 1.0
RETRY_CAP_SECONDS = 30.0
DELIVERY_ACTOR = "delivery"
MESSAGE_BYTES_IN_FLIGHT = 64 * 1024 * 1024  # message bodies held by all threads together
MIN_CALL_BYTES = 512 * 1024
GUARD_RECHECK_SECONDS = 1.0  # within a batch, the guards are asked again at most this often


class SendAborted(DigestError):
    """The provider refused a whole request for good (e.g. invalid credentials); nothing of the
    refused batch was marked sent and it is pending again."""

    exit_code = 69  # EX_UNAVAILABLE


class Variant(Protocol):
    """What the engine needs of a compiled content variant (``digest.render``)."""

    @property
    def key(self) -> str: ...

    def message_for(self, recipient: Any, *, message_id: str) -> OutgoingMessage: ...


class MessageFactory(Protocol):
    """Builds the message of one claimed row; one per edition, shared by the threads."""

    def __call__(self, row: ClaimedRow) -> OutgoingMessage: ...


class RunOutcome(enum.StrEnum):
    DONE = "done"  # nothing pending, claimed or deferred is left in the editions sent
    IDLE = "idle"  # nothing to claim now (``until_done=False``)
    HELD = "held"  # outside the send window: ``RunReport.hold`` says until when
    PAUSED = "paused"  # the pause switch is on: ``RunReport.hold`` says who and when
    CANCELLED = "cancelled"
    STOPPED = "stopped"


@dataclass
class SendStats:
    """What this process did, updated by every thread (read it under ``lock``)."""

    sent: int = 0
    failed: int = 0
    unknown: int = 0
    skipped: int = 0
    deferred: int = 0
    released: int = 0
    retries: int = 0
    batches: int = 0
    calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    NAMES = (
        "sent",
        "failed",
        "unknown",
        "skipped",
        "deferred",
        "released",
        "retries",
        "batches",
        "calls",
    )

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, int]:
        with self.lock:
            return {name: getattr(self, name) for name in self.NAMES}


@dataclass(frozen=True, slots=True)
class RunReport:
    outcome: RunOutcome
    stats: dict[str, int]
    hold: Hold | None = None


OnWait = Callable[[int, dt.datetime | None], None]
"""Called before ``run`` sleeps with deferred rows left: how many, and the next one due."""


class DeliveryEngine:
    """Sends the ledger rows of sending editions through ``backend``.

    ``messages_for(edition_id)`` returns the ``MessageFactory`` of an edition; it is called
    once per edition and process (see ``digest.delivery.prepare.message_factories``).
    ``guards`` are checked at every claim (default: the settings' window and the pause switch).
    ``on_progress`` is called after every recorded call with ``stats``.
    """

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        backend: EmailBackend,
        messages_for: Callable[[int], MessageFactory],
        *,
        worker: str | None = None,
        limiter: RateLimiter | None = None,
        stop: threading.Event | None = None,
        retry_base: float = RETRY_BASE_SECONDS,
        retry_cap: float = RETRY_CAP_SECONDS,
        on_progress: Callable[[SendStats], None] | None = None,
        on_wait: OnWait | None = None,
        guards: Guards | None = None,
    ) -> None:
        prepare_process_for_sending()
        self.engine = engine
        self.settings = settings
        self.backend = backend
        self.worker = worker or worker_identity()
        self.limiter = limiter or RateLimiter(effective_send_rate(settings, backend))
        self.stop = stop or threading.Event()
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.retry_window = dt.timedelta(seconds=settings.send_retry_window)
        self.on_progress = on_progress
        self.on_wait = on_wait
        self.guards = guards or Guards.of(settings)
        self.stats = SendStats()
        self._messages_for = messages_for
        self._factories: dict[int, MessageFactory] = {}
        self._factories_lock = threading.Lock()
        self._write_lock: AbstractContextManager[object] = (
            threading.Lock() if is_sqlite(engine) else nullcontext()
        )
        # A digest is 100+ KB of HTML and text, which the backend copies again as JSON: each
        # thread's call holds no more than an equal share of MESSAGE_BYTES_IN_FLIGHT.
        self.call_bytes = max(MIN_CALL_BYTES, MESSAGE_BYTES_IN_FLIGHT // settings.send_concurrency)
        self._held: Hold | None = None
        self._abort: BaseException | None = None

    # -- the loop ------------------------------------------------------------------------------

    def run(
        self,
        edition_ids: Sequence[int] | None = None,
        *,
        until_done: bool = True,
        forever: bool = False,
        poll: float = 5.0,
        on_idle: Callable[[], object] | None = None,
    ) -> RunReport:
        """Send until there is nothing left to do.

        With ``until_done`` (``digest send``), rows held by other workers or deferred
        (``not_before``) are waited for; without it (``digest worker --once``) the run ends as
        soon as nothing can be claimed. ``forever`` (``digest worker``) never ends but on
        ``stop``, sleeping up to ``poll`` seconds when idle, paused or held; ``on_idle`` runs
        before each such sleep. Held or paused, a run that is not ``forever`` ends at once
        with the hold. Raises ``SendAborted``.
        """
        last_hold: Hold | None = None
        while True:
            self._held = None
            self._run_threads(edition_ids)
            if self._abort is not None:
                if isinstance(self._abort, DigestError):
                    raise self._abort
                raise RuntimeError("a sending thread failed") from self._abort
            finish_editions(self.engine, edition_ids)
            if self.stop.is_set():
                return self._report(RunOutcome.STOPPED)
            held = self._held
            if held is not None and held != last_hold:
                log_event(log, "held", level=logging.WARNING, worker=self.worker, **held.as_dict())
            last_hold = held
            if not forever:
                if held is not None:
                    paused = held.reason is HoldReason.PAUSED
                    return self._report(RunOutcome.PAUSED if paused else RunOutcome.HELD, held)
                if edition_ids is not None and not _sending(self.engine, edition_ids):
                    if _all_cancelled(self.engine, edition_ids):
                        return self._report(RunOutcome.CANCELLED)
                    return self._report(RunOutcome.DONE)
                remaining = _unfinished(self.engine, edition_ids)
                if not remaining:
                    return self._report(RunOutcome.DONE)
                if not until_done:
                    return self._report(RunOutcome.IDLE)
            if on_idle is not None:
                on_idle()
            if held is not None:
                wait = poll
                if held.until is not None:
                    wait = min(poll, max(0.0, (held.until - utcnow()).total_seconds()))
            else:
                wakeup, deferred, due = _next_wakeup(self.engine, edition_ids)
                if deferred and self.on_wait is not None and not forever:
                    self.on_wait(deferred, due)
                wait = min(poll, wakeup)
            if self.stop.wait(max(wait, 0.05)):
                return self._report(RunOutcome.STOPPED)

    def _report(self, outcome: RunOutcome, hold: Hold | None = None) -> RunReport:
        return RunReport(outcome, self.stats.as_dict(), hold)

    def _run_threads(self, edition_ids: Sequence[int] | None) -> None:
        count = self.settings.send_concurrency
        if count == 1:
            self._work(edition_ids)
            return
        threads = [
            threading.Thread(target=self._work, args=(edition_ids,), name=f"send-{n}", daemon=True)
            for n in range(count)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():  # a timed join keeps the main thread responsive to signals
                thread.join(0.2)

    def _work(self, edition_ids: Sequence[int] | None) -> None:
        try:
            while not self.stop.is_set():
                if not self._one_batch(edition_ids):
                    return
        except BaseException as exc:
            if self._abort is None:
                self._abort = exc
            self.stop.set()
            if not isinstance(exc, DigestError):
                log.exception("sending thread failed")

    def _one_batch(self, edition_ids: Sequence[int] | None) -> bool:
        """Claim and send one batch; False when there was nothing to claim (or held)."""
        with self._writing() as session:
            claim = claim_in(
                session,
                worker=self.worker,
                limit=self.claim_size,
                lease_seconds=self.settings.lease_seconds,
                edition_ids=edition_ids,
                idempotent=self.backend.supports_idempotency,
                guards=self.guards,
            )
        if claim.held is not None:
            self._held = claim.held
            return False
        if claim.skipped:
            self.stats.add(skipped=claim.skipped)
        if not claim:
            return False
        if claim.rows:
            self._send_claim(claim)
        return True

    @property
    def claim_size(self) -> int:
        """Rows per claim: a batch, but never more than the threads can send at the configured
        rate well within one lease (claimed rows wait for their turn under the lease)."""
        settings = self.settings
        rate = self.limiter.max_rate
        within_lease = rate * settings.lease_seconds / (2 * settings.send_concurrency)
        return max(1, min(settings.send_batch_size, int(within_lease)))

    @contextmanager
    def _writing(self) -> Iterator[Session]:
        """A write transaction; on SQLite the threads of this process take turns on a lock
        first, so they never meet in SQLite's busy handler (which sleeps up to 100 ms)."""
        with self._write_lock, immediate_session(self.engine) as session:
            yield session

    # -- one batch -----------------------------------------------------------------------------

    def _factory(self, edition_id: int) -> MessageFactory:
        with self._factories_lock:
            factory = self._factories.get(edition_id)
            if factory is None:
                factory = self._factories[edition_id] = self._messages_for(edition_id)
            return factory

    def _send_claim(self, claim: Claim) -> None:
        """Send a claimed batch call by call, each paced and built just before it goes."""
        assert claim.edition_id is not None
        rows, holder = claim.rows, claim.holder
        self.stats.add(batches=1)
        factory = None
        start = 0
        checked = time.monotonic()
        try:
            while start < len(rows):
                if start and time.monotonic() - checked >= GUARD_RECHECK_SECONDS:
                    # A pause or the end of the window stops the batch between two calls, not
                    # only at the next claim (a batch can take minutes at a low rate).
                    checked = time.monotonic()
                    held = current_hold(self.engine, self.guards)
                    if held is not None:
                        self._held = held
                        self._release([row.id for row in rows[start:]], holder)
                        return
                factory = factory or self._factory(claim.edition_id)
                size = self.limiter.call_size(self.backend.max_batch_size)
                call, messages = self._next_call(rows, start, factory, size)
                wait = max(self.limiter.reserve(len(call)), self.limiter.hold())
                if self.stop.wait(wait) if wait > 0 else self.stop.is_set():
                    self._release([row.id for row in rows[start:]], holder)
                    return
                later = self._send_call(call, messages, holder)
                start += len(call)
                if later is not None and start < len(rows):
                    # The provider is failing: the rest of the batch waits as long, uncharged.
                    self._defer([row.id for row in rows[start:]], holder, later, "", charge=False)
                    return
        except BaseException:
            self._release([row.id for row in rows[start:]], holder)
            raise

    def _next_call(
        self, rows: Sequence[ClaimedRow], start: int, factory: MessageFactory, size: int
    ) -> tuple[list[ClaimedRow], list[OutgoingMessage]]:
        """The messages of ``rows[start:]`` that fit in one call: ``size`` messages, or fewer
        once they reach ``call_bytes``."""
        call: list[ClaimedRow] = []
        messages: list[OutgoingMessage] = []
        total = 0
        for row in rows[start : start + size]:
            message = factory(row)
            call.append(row)
            messages.append(message)
            total += len(message.html) + len(message.text)
            if total >= self.call_bytes:
                break
        return call, messages

    def _send_call(
        self, rows: Sequence[ClaimedRow], messages: Sequence[OutgoingMessage], holder: str
    ) -> dt.datetime | None:
        """One provider call, every outcome recorded; when the provider failed in a way that
        the rest of the batch would meet too, the moment to try again."""
        by_id = {row.id: (row, message) for row, message in zip(rows, messages, strict=True)}
        ids = list(by_id)
        with self._writing() as session:
            attempts = mark_started(
                session, ids, worker=holder, lease_seconds=self.settings.lease_seconds
            )
        live = [row_id for row_id in ids if row_id in attempts]
        if not live:
            return None
        self.stats.add(calls=1)
        try:
            results = self.backend.send_batch([by_id[row_id][1] for row_id in live])
        except BackendError as exc:
            live = self._record_partial(by_id, live, exc, holder)
            # Messages the backend never got to were not in the failed request: they are not
            # charged with it (their attempt is taken back), they only wait as long.
            unsent = set(exc.unsent)
            never = [row_id for row_id in live if by_id[row_id][1].message_id in unsent]
            live = [row_id for row_id in live if by_id[row_id][1].message_id not in unsent]
            later = self._after_failure(live, attempts, exc, holder)
            if never and later is not None:
                self._defer(never, holder, later, "", uncount=True, charge=False)
            elif never:
                self._release(never, holder)
            return later
        except BaseException as exc:
            # Unexpected: the request may or may not have left. Be honest about it.
            self._settle(live, DeliveryState.UNKNOWN, f"{type(exc).__name__}: {exc}", holder)
            raise
        self._record(by_id, live, results, holder)
        return None

    def _record_partial(
        self,
        by_id: dict[int, tuple[ClaimedRow, OutgoingMessage]],
        live: list[int],
        exc: BackendError,
        holder: str,
    ) -> list[int]:
        """Record the results a failed call did get (a multi-request backend may fail halfway);
        the rows still without an outcome."""
        partial: Sequence[SendResult] = getattr(exc, "partial_results", ())
        if not partial:
            return live
        done = {result.message_id for result in partial}
        finished = [row_id for row_id in live if by_id[row_id][1].message_id in done]
        self._record(by_id, finished, partial, holder)
        return [row_id for row_id in live if row_id not in set(finished)]

    def _after_failure(
        self, live: list[int], attempts: dict[int, int], exc: BackendError, holder: str
    ) -> dt.datetime | None:
        """Handle a failed call (only its own rows); when the rest of the batch should wait."""
        if not live:
            return None
        if isinstance(exc, PermanentError):
            self._release(live, holder)
            raise SendAborted(f"the provider refused the request: {exc}") from exc
        if isinstance(exc, RateLimitedError):
            self.limiter.throttle(exc.retry_after)
            delay = exc.retry_after
            if delay is None or delay <= 0:
                delay = backoff_delay(
                    max(attempts[row_id] for row_id in live),
                    base=self.retry_base,
                    cap=self.retry_cap,
                )
            # A little jitter, so the deferred rows of many threads do not all come back at once.
            until = utcnow() + dt.timedelta(seconds=delay * random.uniform(1.0, 1.25))  # noqa: S311
            self._defer(live, holder, until, str(exc), uncount=True)
            return None
        if isinstance(exc, AmbiguousError) and not self.backend.supports_idempotency:
            self._settle(live, DeliveryState.UNKNOWN, str(exc), holder)
            return None
        if not isinstance(exc, (RetryableError, AmbiguousError)):
            self._settle(live, DeliveryState.UNKNOWN, f"{type(exc).__name__}: {exc}", holder)
            return None
        delay = backoff_delay(
            max(attempts[row_id] for row_id in live), base=self.retry_base, cap=self.retry_cap
        )
        until = utcnow() + dt.timedelta(seconds=delay)
        log_event(
            log,
            "retry_later",
            level=logging.WARNING,
            rows=len(live),
            delay_seconds=round(delay, 2),
            error=str(exc),
        )
        self._defer(live, holder, until, str(exc))
        return until

    # -- recording -----------------------------------------------------------------------------

    def _record(
        self,
        by_id: dict[int, tuple[ClaimedRow, OutgoingMessage]],
        live: list[int],
        results: Sequence[SendResult],
        holder: str,
    ) -> None:
        row_of_message = {by_id[row_id][1].message_id: by_id[row_id][0] for row_id in live}
        now = utcnow()
        sent: list[tuple[str | None, int]] = []
        failed: list[tuple[str, int]] = []
        bounced: list[tuple[str, str]] = []
        seen: set[int] = set()
        for result in results:
            row = row_of_message.get(result.message_id)
            if row is None or row.id in seen:
                continue
            seen.add(row.id)
            if result.accepted:
                sent.append((result.provider_message_id, row.id))
            else:
                error = (result.error or "rejected by the provider")[:2000]
                failed.append((error, row.id))
                if result.hard_invalid:
                    bounced.append((row.email, error))
        missing = [row_id for row_id in live if row_id not in seen]
        with self._writing() as session:
            record_results(session, sent=sent, rejected=failed, holder=holder, now=now)
            if missing:
                settle(
                    session,
                    missing,
                    DeliveryState.UNKNOWN,
                    "the provider returned no result for this message",
                    holder=holder,
                    now=now,
                )
            for email, error in bounced:
                _suppress(session, email, error)
        self.stats.add(sent=len(sent), failed=len(failed), unknown=len(missing))
        log.info(
            "call worker=%s sent=%d failed=%d unknown=%d",
            holder,
            len(sent),
            len(failed),
            len(missing),
        )
        self._progress()

    def _progress(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.stats)

    def _settle(self, ids: list[int], state: DeliveryState, error: str, holder: str) -> None:
        with self._writing() as session:
            settle(session, ids, state, error, holder=holder)
        self.stats.add(**{str(state): len(ids)})
        log.warning("rows=%d state=%s error=%s", len(ids), state, error)
        self._progress()

    def _defer(
        self,
        ids: list[int],
        holder: str,
        until: dt.datetime,
        error: str,
        *,
        uncount: bool = False,
        charge: bool = True,
    ) -> None:
        with self._writing() as session:
            failed = defer(
                session,
                ids,
                holder=holder,
                until=until,
                error=error,
                retry_window=self.retry_window,
                uncount=uncount,
                charge=charge,
            )
        if charge:
            self.stats.add(deferred=len(ids) - len(failed), failed=len(failed), retries=1)
        if failed:
            log.warning("rows=%d failed: retry window over; error=%s", len(failed), error)
        self._progress()

    def _release(self, ids: list[int], holder: str) -> None:
        if not ids:
            return
        with self._writing() as session:
            released = release(session, ids, worker=holder)
        self.stats.add(released=released)


def _suppress(session: Session, email: str, error: str) -> None:
    """The provider says this address cannot receive mail: a hard bounce (suppressed, audited)."""
    from digest.errors import InputError
    from subscribers.lifecycle import record_bounce

    try:
        record_bounce(session, email, hard=True, actor=DELIVERY_ACTOR, detail=error[:500])
    except InputError:
        log.warning("cannot suppress invalid address %r", email)


# -- edition-level queries -----------------------------------------------------------------------


def _edition_filter(edition_ids: Sequence[int] | None) -> Iterator[sa.ColumnElement[bool]]:
    sending = sa.select(EDITION.c.id).where(EDITION.c.status == str(EditionStatus.SENDING))
    yield DELIVERY.c.edition_id.in_(sending.scalar_subquery())
    if edition_ids is not None:
        yield DELIVERY.c.edition_id.in_(list(edition_ids))


def _unfinished(engine: Engine, edition_ids: Sequence[int] | None) -> int:
    """Rows still pending, claimed or deferred in sending editions (or editions whose ledger
    is not complete, counted as one)."""
    with session_scope(engine) as session:
        count = (
            session.connection()
            .execute(
                sa.select(sa.func.count()).where(
                    DELIVERY.c.state.in_(OPEN_STATES), *_edition_filter(edition_ids)
                )
            )
            .one()[0]
        )
        incomplete = sa.select(sa.func.count()).where(
            EDITION.c.status == str(EditionStatus.SENDING), EDITION.c.ledger_complete.is_(False)
        )
        if edition_ids is not None:
            incomplete = incomplete.where(EDITION.c.id.in_(list(edition_ids)))
        return int(count) + int(session.connection().execute(incomplete).one()[0])


def _next_wakeup(
    engine: Engine, edition_ids: Sequence[int] | None
) -> tuple[float, int, dt.datetime | None]:
    """Seconds until a held lease expires or a deferred row becomes due (whichever is first),
    with the number of deferred rows and when the first is due."""
    with session_scope(engine) as session:
        lease = (
            session.connection()
            .execute(
                sa.select(sa.func.min(DELIVERY.c.lease_expires_at)).where(
                    DELIVERY.c.state == str(DeliveryState.CLAIMED), *_edition_filter(edition_ids)
                )
            )
            .one()[0]
        )
        deferred, due = (
            session.connection()
            .execute(
                sa.select(sa.func.count(), sa.func.min(DELIVERY.c.not_before)).where(
                    DELIVERY.c.state.in_([str(DeliveryState.DEFERRED), str(DeliveryState.PENDING)]),
                    DELIVERY.c.not_before.is_not(None),
                    *_edition_filter(edition_ids),
                )
            )
            .one()
        )
    due_at = None if due is None else aware(due)
    moments = [moment for moment in (None if lease is None else aware(lease), due_at) if moment]
    if not moments:
        return 1.0, int(deferred), due_at
    wait = max(0.0, (min(moments) - utcnow()).total_seconds()) + 0.05
    return wait, int(deferred), due_at


def _sending(engine: Engine, edition_ids: Sequence[int]) -> list[int]:
    with session_scope(engine) as session:
        rows = session.connection().execute(
            sa.select(EDITION.c.id).where(
                EDITION.c.id.in_(list(edition_ids)),
                EDITION.c.status == str(EditionStatus.SENDING),
            )
        )
        return [int(row[0]) for row in rows]


def _all_cancelled(engine: Engine, edition_ids: Sequence[int]) -> bool:
    with session_scope(engine) as session:
        statuses = {
            str(row[0])
            for row in session.connection().execute(
                sa.select(EDITION.c.status).where(EDITION.c.id.in_(list(edition_ids)))
            )
        }
    return statuses == {str(EditionStatus.CANCELLED)}
