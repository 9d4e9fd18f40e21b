"""The delivery engine: claim a batch, build its messages, hand them to the backend, record
each recipient's outcome — with ``settings.send_concurrency`` threads sharing one backend.

One batch, one thread::

    claim (claims.claim_in, one transaction) ─> book tokens for those rows (the shared
      RateLimiter) and wait for them
      ─> for each call (built just before it; see ``call_size`` and ``call_bytes``):
           mark_started, COMMIT    the rows are now in flight: a crash from here on makes them
                                   ``unknown`` when the lease expires, never a second copy
           backend.send_batch
           record outcomes, COMMIT one transaction per call, bulk UPDATEs

Whole-call failures (``digest.backends.errors``):

- ``RateLimitedError``: the shared limiter halves its rate and holds every thread for
  ``retry_after``; the call is retried without counting an attempt.
- ``RetryableError``: exponential backoff with full jitter, the attempt counted; a row out of
  attempts (``settings.send_max_attempts``) is ``failed``.
- ``AmbiguousError``: ``unknown`` (never resent automatically) unless the backend deduplicates
  on the idempotency key (the row's Message-ID), in which case it is retried like the above.
- ``PermanentError`` (bad credentials, ...): the call and the rest of the batch go back to
  ``pending``, every thread stops after its current call, and ``run`` raises ``SendAborted``.

Results a failed call did get (a backend making several requests may fail halfway) are
recorded first. A per-recipient rejection inside an accepted call fails that row only; when
the provider says the address itself is unusable it is also suppressed (a hard bounce,
audited).

The pause switch (``ServiceState["paused"] == {"paused": true}``), a cancelled edition and
``stop`` (set on SIGTERM/SIGINT) are honoured between batches, calls and retries.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import enum
import functools
import logging
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from digest.backends.base import EmailBackend, SendResult
from digest.backends.errors import (
    AmbiguousError,
    BackendError,
    PermanentError,
    RateLimitedError,
    RetryableError,
)
from digest.config import Settings
from digest.db import immediate_session, is_sqlite, session_scope, utcnow
from digest.delivery.bulk import db_timestamp, executemany
from digest.delivery.claims import (
    DELIVERY,
    EDITION,
    Claim,
    ClaimedRow,
    claim_in,
    mark_started,
    release,
    worker_identity,
)
from digest.delivery.flow import RateLimiter, backoff_delay
from digest.delivery.models import DeliveryState
from digest.editions.models import EditionStatus
from digest.errors import DigestError
from digest.message import OutgoingMessage
from digest.state import read_state

log = logging.getLogger(__name__)

PAUSE_KEY = "paused"
RETRY_BASE_SECONDS = 1.0
RETRY_CAP_SECONDS = 60.0
DELIVERY_ACTOR = "delivery"
MESSAGE_BYTES_IN_FLIGHT = 64 * 1024 * 1024  # message bodies held by all threads together
MIN_CALL_BYTES = 512 * 1024
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
MMAP_THRESHOLD_BYTES = 256 * 1024


@functools.cache
def return_large_buffers_to_the_os() -> None:
    """Make glibc give multi-megabyte buffers (a call's JSON body and its copies) back to the
    OS when they are freed, as ``MALLOC_MMAP_THRESHOLD_=262144`` would.

    glibc raises its mmap threshold each time it frees a large block, after which such
    buffers come from the heap of the thread that made them and stay in the process's RSS
    (measured: 365 MB against 265 MB for 30,000 messages with four threads). Nothing happens
    on other C libraries.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)


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
    DONE = "done"  # nothing pending or claimed is left in the editions sent
    IDLE = "idle"  # nothing to claim now (``until_done=False``)
    PAUSED = "paused"
    CANCELLED = "cancelled"
    STOPPED = "stopped"


@dataclass
class SendStats:
    """What this process did, updated by every thread (read it under ``lock``)."""

    sent: int = 0
    failed: int = 0
    unknown: int = 0
    skipped: int = 0
    released: int = 0
    retries: int = 0
    batches: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, int]:
        with self.lock:
            return {
                name: getattr(self, name)
                for name in (
                    "sent",
                    "failed",
                    "unknown",
                    "skipped",
                    "released",
                    "retries",
                    "batches",
                )
            }


@dataclass(frozen=True, slots=True)
class RunReport:
    outcome: RunOutcome
    stats: dict[str, int]


class DeliveryEngine:
    """Sends the ledger rows of sending editions through ``backend``.

    ``messages_for(edition_id)`` returns the ``MessageFactory`` of an edition; it is called
    once per edition and process (see ``digest.delivery.prepare.message_factories``).
    ``on_progress`` is called after every recorded chunk with ``stats``.
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
    ) -> None:
        return_large_buffers_to_the_os()
        self.engine = engine
        self.settings = settings
        self.backend = backend
        self.worker = worker or worker_identity()
        self.limiter = limiter or RateLimiter(settings.send_rate)
        self.stop = stop or threading.Event()
        self.retry_base = retry_base
        # Retries happen while the rows are held: keep every wait well inside the lease.
        self.retry_cap = min(retry_cap, settings.lease_seconds / 3)
        self.on_progress = on_progress
        self.stats = SendStats()
        self._messages_for = messages_for
        self._factories: dict[int, MessageFactory] = {}
        self._factories_lock = threading.Lock()
        self._write_lock: AbstractContextManager[object] = (
            threading.Lock() if is_sqlite(engine) else nullcontext()
        )
        # Each thread sends its batch in calls built just before they go: at most
        # send_batch_size / send_concurrency messages, and no more than an equal share of
        # MESSAGE_BYTES_IN_FLIGHT. A digest is 100+ KB of HTML and text, which the backend
        # copies again as JSON: what the process holds stays bounded, whatever the threads.
        self.call_size = max(
            1,
            min(
                backend.max_batch_size,
                -(-settings.send_batch_size // settings.send_concurrency),
            ),
        )
        self.call_bytes = max(MIN_CALL_BYTES, MESSAGE_BYTES_IN_FLIGHT // settings.send_concurrency)
        self._paused = False
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

        With ``until_done`` (``digest send``), rows held by other workers or scheduled for
        later (``not_before``) are waited for; without it (``digest worker --once``) the run
        ends as soon as nothing can be claimed. ``forever`` (``digest worker``) never ends but
        on ``stop``, sleeping ``poll`` seconds when idle or paused; ``on_idle`` runs before each
        such sleep. Raises ``SendAborted``.
        """
        while True:
            self._paused = False
            self._run_threads(edition_ids)
            if self._abort is not None:
                if isinstance(self._abort, DigestError):
                    raise self._abort
                raise RuntimeError("a sending thread failed") from self._abort
            finish_editions(self.engine, edition_ids)
            if self.stop.is_set():
                return self._report(RunOutcome.STOPPED)
            if not forever:
                if self._paused:
                    return self._report(RunOutcome.PAUSED)
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
            wait = poll if forever else min(poll, _next_wakeup(self.engine, edition_ids))
            if self.stop.wait(max(wait, 0.05)):
                return self._report(RunOutcome.STOPPED)

    def _report(self, outcome: RunOutcome) -> RunReport:
        return RunReport(outcome, self.stats.as_dict())

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
        """Claim and send one batch; False when there was nothing to claim (or paused)."""
        if self.paused():
            self._paused = True
            return False
        with self._writing() as session:
            claim = claim_in(
                session,
                worker=self.worker,
                limit=self.claim_size,
                lease_seconds=self.settings.lease_seconds,
                edition_ids=edition_ids,
                idempotent=self.backend.supports_idempotency,
            )
        if claim.skipped:
            self.stats.add(skipped=claim.skipped)
        if not claim:
            return False
        if claim.rows:
            # Tokens are booked for the rows actually claimed: booking a whole batch up front
            # made every other thread wait for rows that did not exist.
            wait = self.limiter.reserve(len(claim.rows))
            if wait > 0 and self.stop.wait(wait):
                self._release([row.id for row in claim.rows], claim.holder)
                return False
            self._send_claim(claim)
        return True

    @property
    def claim_size(self) -> int:
        """Rows per claim: a batch, but never more than the threads can send at the configured
        rate well within one lease (claimed rows wait for their tokens under the lease)."""
        settings = self.settings
        within_lease = settings.send_rate * settings.lease_seconds / (2 * settings.send_concurrency)
        return max(1, min(settings.send_batch_size, int(within_lease)))

    @contextmanager
    def _writing(self) -> Iterator[Session]:
        """A write transaction; on SQLite the threads of this process take turns on a lock
        first, so they never meet in SQLite's busy handler (which sleeps up to 100 ms)."""
        with self._write_lock, immediate_session(self.engine) as session:
            yield session

    def paused(self) -> bool:
        """The service-wide pause switch (``ServiceState["paused"]``)."""
        with session_scope(self.engine) as session:
            state = read_state(session, PAUSE_KEY)
        return bool(state and state.get("paused"))

    # -- one batch -----------------------------------------------------------------------------

    def _factory(self, edition_id: int) -> MessageFactory:
        with self._factories_lock:
            factory = self._factories.get(edition_id)
            if factory is None:
                factory = self._factories[edition_id] = self._messages_for(edition_id)
            return factory

    def _send_claim(self, claim: Claim) -> None:
        """Send a claimed batch call by call, each call's messages built just before it."""
        assert claim.edition_id is not None
        rows, holder = claim.rows, claim.holder
        self.stats.add(batches=1)
        factory = None
        start = 0
        try:
            while start < len(rows):
                if self.stop.is_set():
                    self._release([row.id for row in rows[start:]], holder)
                    return
                factory = factory or self._factory(claim.edition_id)
                call, messages = self._next_call(rows, start, factory)
                self._send_call(call, messages, holder)
                start += len(call)
        except BaseException:
            self._release([row.id for row in rows[start:]], holder)
            raise

    def _next_call(
        self, rows: Sequence[ClaimedRow], start: int, factory: MessageFactory
    ) -> tuple[list[ClaimedRow], list[OutgoingMessage]]:
        """The messages of ``rows[start:]`` that fit in one call: ``call_size`` messages, or
        fewer once they reach ``call_bytes``."""
        call: list[ClaimedRow] = []
        messages: list[OutgoingMessage] = []
        size = 0
        for row in rows[start : start + self.call_size]:
            message = factory(row)
            call.append(row)
            messages.append(message)
            size += len(message.html) + len(message.text)
            if size >= self.call_bytes:
                break
        return call, messages

    def _send_call(
        self, rows: Sequence[ClaimedRow], messages: Sequence[OutgoingMessage], holder: str
    ) -> None:
        """One backend call, retried as the error says; every outcome recorded."""
        by_id = {row.id: (row, message) for row, message in zip(rows, messages, strict=True)}
        ids = list(by_id)
        while ids:
            hold = self.limiter.hold()
            if hold > 0 and self.stop.wait(hold):
                self._release(ids, holder)
                return
            with self._writing() as session:
                attempts = mark_started(
                    session, ids, worker=holder, lease_seconds=self.settings.lease_seconds
                )
            live = [row_id for row_id in ids if row_id in attempts]
            if not live:
                return
            try:
                results = self.backend.send_batch([by_id[row_id][1] for row_id in live])
            except BackendError as exc:
                live = self._record_partial(by_id, live, exc, holder)
                ids = self._after_failure(live, attempts, exc, holder)
            except BaseException as exc:
                # Unexpected: the request may or may not have left. Be honest about it.
                self._mark(live, DeliveryState.UNKNOWN, f"{type(exc).__name__}: {exc}", holder)
                raise
            else:
                self._record(by_id, live, results, holder)
                self.limiter.recover()
                return

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
    ) -> list[int]:
        """Handle a failed call; the rows to try again (after the wait), or none."""
        if not live:
            return []
        if isinstance(exc, PermanentError):
            self._release(live, holder)
            raise SendAborted(f"the provider refused the request: {exc}") from exc
        if isinstance(exc, RateLimitedError):
            self.limiter.throttle(exc.retry_after)
            self._retry_later(live, str(exc), holder, uncount=True)
            return [] if self._wait(self.limiter.reserve(len(live)), live, holder) else live
        if isinstance(exc, AmbiguousError) and not self.backend.supports_idempotency:
            self._mark(live, DeliveryState.UNKNOWN, str(exc), holder)
            return []
        if not isinstance(exc, (RetryableError, AmbiguousError)):
            self._mark(live, DeliveryState.UNKNOWN, f"{type(exc).__name__}: {exc}", holder)
            return []
        limit = self.settings.send_max_attempts
        exhausted = [row_id for row_id in live if attempts[row_id] >= limit]
        retry = [row_id for row_id in live if attempts[row_id] < limit]
        if exhausted:
            self._mark(exhausted, DeliveryState.FAILED, f"{exc} (after {limit} attempts)", holder)
        if not retry:
            return []
        self._retry_later(retry, str(exc), holder, uncount=False)
        delay = backoff_delay(
            max(attempts[row_id] for row_id in retry), base=self.retry_base, cap=self.retry_cap
        )
        log.warning("retry in %.2fs rows=%d error=%s", delay, len(retry), exc)
        return [] if self._wait(delay, retry, holder) else retry

    def _wait(self, seconds: float, ids: list[int], holder: str) -> bool:
        """Sleep before a retry; True (rows released) if a stop came meanwhile."""
        self.stats.add(retries=1)
        if self.stop.wait(max(0.0, seconds)):
            self._release(ids, holder)
            return True
        return False

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
            connection = session.connection()
            stamp = db_timestamp(connection, DELIVERY.c.updated_at, now)
            executemany(
                connection,
                RECORD_SENT,
                [(provider_id, stamp, stamp, row_id, holder) for provider_id, row_id in sent],
            )
            executemany(
                connection,
                RECORD_FAILED,
                [(error, stamp, row_id, holder) for error, row_id in failed],
            )
            if missing:
                _set_state(
                    session,
                    missing,
                    holder,
                    DeliveryState.UNKNOWN,
                    "the provider returned no result for this message",
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
        if self.on_progress is not None:
            self.on_progress(self.stats)

    def _mark(self, ids: list[int], state: DeliveryState, error: str, holder: str) -> None:
        with self._writing() as session:
            _set_state(session, ids, holder, state, error, now=utcnow())
        self.stats.add(**{str(state): len(ids)})
        log.warning("rows=%d state=%s error=%s", len(ids), state, error)
        if self.on_progress is not None:
            self.on_progress(self.stats)

    def _retry_later(self, ids: list[int], error: str, holder: str, *, uncount: bool) -> None:
        """The call failed and nothing was delivered: the rows stay claimed, not in flight."""
        now = utcnow()
        with self._writing() as session:
            session.connection().execute(
                sa.update(DELIVERY)
                .where(DELIVERY.c.id.in_(ids), DELIVERY.c.worker == holder)
                .values(
                    attempt_started_at=None,
                    attempts=DELIVERY.c.attempts - 1 if uncount else DELIVERY.c.attempts,
                    last_error=error[:2000],
                    updated_at=now,
                )
            )

    def _release(self, ids: list[int], holder: str) -> None:
        if not ids:
            return
        with self._writing() as session:
            released = release(session, ids, worker=holder)
        self.stats.add(released=released)


# An outcome is recorded only on rows this holder still holds (or held when its lease expired):
# a row taken over by another worker is theirs to record. Written through the DB-API
# (``digest.delivery.bulk``): this runs once per call, for every recipient.
# A provider event (delivered, bounced, ...) may have been recorded before this: it is kept.
RECORD_SENT = (
    "UPDATE delivery SET provider_message_id = ?, state = 'sent', provider_status = CASE WHEN"
    " provider_status IS NULL OR provider_status IN ('accepted', 'rejected') THEN 'accepted'"
    " ELSE provider_status END, sent_at = ?, updated_at = ?, last_error = NULL,"
    " attempt_started_at = NULL, lease_expires_at = NULL WHERE id = ? AND worker = ?"
)
RECORD_FAILED = (
    "UPDATE delivery SET last_error = ?, state = 'failed', provider_status = 'rejected',"
    " updated_at = ?, attempt_started_at = NULL, lease_expires_at = NULL"
    " WHERE id = ? AND worker = ?"
)


def _set_state(
    session: Session,
    ids: list[int],
    worker: str,
    state: DeliveryState,
    error: str,
    *,
    now: dt.datetime,
) -> None:
    session.connection().execute(
        sa.update(DELIVERY)
        .where(DELIVERY.c.id.in_(ids), DELIVERY.c.worker == worker)
        .values(
            state=str(state),
            last_error=error[:2000],
            attempt_started_at=None,
            lease_expires_at=None,
            updated_at=now,
        )
    )


def _suppress(session: Session, email: str, error: str) -> None:
    """The provider says this address cannot receive mail: a hard bounce (suppressed, audited)."""
    from digest.errors import InputError
    from subscribers.lifecycle import record_bounce

    try:
        record_bounce(session, email, hard=True, actor=DELIVERY_ACTOR, detail=error[:500])
    except InputError:
        log.warning("cannot suppress invalid address %r", email)


# -- edition-level queries -----------------------------------------------------------------------

_OPEN_STATES = (str(DeliveryState.PENDING), str(DeliveryState.CLAIMED))


def finish_editions(engine: Engine, edition_ids: Sequence[int] | None = None) -> list[int]:
    """Mark sent every sending edition whose ledger is complete and has no row left pending
    or claimed; the ids of the editions finished now."""
    with immediate_session(engine) as session:
        open_rows = sa.exists().where(
            DELIVERY.c.edition_id == EDITION.c.id, DELIVERY.c.state.in_(_OPEN_STATES)
        )
        candidates = sa.select(EDITION.c.id).where(
            EDITION.c.status == str(EditionStatus.SENDING),
            EDITION.c.ledger_complete.is_(True),
            ~open_rows,
        )
        if edition_ids is not None:
            candidates = candidates.where(EDITION.c.id.in_(list(edition_ids)))
        finished = [int(row[0]) for row in session.connection().execute(candidates)]
        if finished:
            session.connection().execute(
                sa.update(EDITION)
                .where(EDITION.c.id.in_(finished), EDITION.c.status == str(EditionStatus.SENDING))
                .values(status=str(EditionStatus.SENT), completed_at=utcnow())
            )
    for edition_id in finished:
        log.info("edition sent edition=%s", edition_id)
    return finished


def _edition_filter(edition_ids: Sequence[int] | None) -> Iterator[sa.ColumnElement[bool]]:
    sending = sa.select(EDITION.c.id).where(EDITION.c.status == str(EditionStatus.SENDING))
    yield DELIVERY.c.edition_id.in_(sending.scalar_subquery())
    if edition_ids is not None:
        yield DELIVERY.c.edition_id.in_(list(edition_ids))


def _unfinished(engine: Engine, edition_ids: Sequence[int] | None) -> int:
    """Rows still pending or claimed in sending editions (or editions whose ledger is not
    complete, counted as one)."""
    with session_scope(engine) as session:
        count = (
            session.connection()
            .execute(
                sa.select(sa.func.count()).where(
                    DELIVERY.c.state.in_(_OPEN_STATES), *_edition_filter(edition_ids)
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


def _next_wakeup(engine: Engine, edition_ids: Sequence[int] | None) -> float:
    """Seconds until a held lease expires or a deferred row becomes due (whichever is first)."""
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
        due = (
            session.connection()
            .execute(
                sa.select(sa.func.min(DELIVERY.c.not_before)).where(
                    DELIVERY.c.state == str(DeliveryState.PENDING), *_edition_filter(edition_ids)
                )
            )
            .one()[0]
        )
    moments = [_aware(moment) for moment in (lease, due) if moment is not None]
    if not moments:
        return 1.0
    return max(0.0, (min(moments) - utcnow()).total_seconds()) + 0.05


def _aware(moment: dt.datetime) -> dt.datetime:
    # Aggregates lose the column type: SQLite hands back a naive string-parsed value.
    if isinstance(moment, str):
        moment = dt.datetime.fromisoformat(moment)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


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
