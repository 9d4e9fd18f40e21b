"""Recording hits off the request path: the redirect puts a hit on a queue and answers; one
thread per process drains the queue into the database in batches. Fetches of the open pixel
(``RawOpen``) share the queue and go to their own table (``digest.clicks.opens``).

``submit`` never blocks and never raises: when the queue is full (the database is far behind)
the hit is dropped and counted in ``dropped``, because a redirect must not wait for a write.
``flush`` waits until every submitted hit is stored (tests, shutdown); ``close`` stops the
thread after a flush.
"""

from __future__ import annotations

import logging
import queue
import threading

from sqlalchemy.engine import Engine

from digest.clicks import opens, store
from digest.clicks.opens import RawOpen
from digest.clicks.store import RawHit
from digest.db import immediate_transaction

log = logging.getLogger(__name__)

MAX_QUEUED = 100_000
BATCH = 500
_STOP = object()


class ClickRecorder:
    """A queue of hits and the thread that stores them."""

    def __init__(self, engine: Engine, *, max_queued: int = MAX_QUEUED) -> None:
        self.engine = engine
        self.dropped = 0
        self.stored = 0
        self._queue: queue.Queue[object] = queue.Queue(max_queued)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, hit: RawHit | RawOpen) -> None:
        """Queue ``hit`` (a link's or the open pixel's) for storing; returns at once."""
        if self._thread is None:
            self._start()
        try:
            self._queue.put_nowait(hit)
        except queue.Full:
            self.dropped += 1

    def flush(self) -> None:
        """Wait until every hit submitted so far is stored (or failed to be)."""
        if self._thread is not None:
            self._queue.join()

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="click-recorder", daemon=True)
                thread.start()
                self._thread = thread

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            items = [first]
            while len(items) < BATCH:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            hits = [item for item in items if isinstance(item, RawHit)]
            fetches = [item for item in items if isinstance(item, RawOpen)]
            try:
                with immediate_transaction(self.engine) as connection:
                    self.stored += store.record(connection, hits)
                    self.stored += opens.record(connection, fetches)
            except Exception:
                log.exception("could not store %d click hits and %d opens", len(hits), len(fetches))
            finally:
                for _ in items:
                    self._queue.task_done()
            if any(item is _STOP for item in items):
                return
