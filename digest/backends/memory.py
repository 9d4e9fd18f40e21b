"""A backend that keeps messages in memory: for tests of the code that sends.

``MemoryBackend.sent`` lists every accepted message in order. A test can make it refuse given
addresses (a ``REJECTED`` result, as a provider would report an invalid recipient) or raise a
given error on the next call (to exercise retries, rate limits and ambiguous outcomes).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, ClassVar

from digest.backends.base import EmailBackend, ResultStatus, SendResult
from digest.backends.errors import BackendError
from digest.message import OutgoingMessage

if TYPE_CHECKING:
    from digest.config import Settings


class MemoryBackend(EmailBackend):
    """Accepts every message into ``sent`` unless told to reject an address or fail a call.

    Safe to share between threads: every public method takes the same lock.
    """

    name: ClassVar[str] = "memory"
    max_batch_size: ClassVar[int] = 1000
    default_rate: ClassVar[float] = 1000.0

    def __init__(self) -> None:
        self.sent: list[OutgoingMessage] = []
        self.batches: list[list[OutgoingMessage]] = []  # every call, including failed ones
        self._rejected: dict[str, bool] = {}  # address -> hard_invalid
        self._failures: list[BackendError] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.closed = False

    @classmethod
    def from_settings(cls, settings: Settings) -> MemoryBackend:
        return cls()

    def reject(self, addresses: Iterable[str], *, hard_invalid: bool = True) -> None:
        """Report these addresses as ``REJECTED`` from now on (case-insensitive)."""
        with self._lock:
            for address in addresses:
                self._rejected[address.lower()] = hard_invalid

    def fail_next(self, *errors: BackendError) -> None:
        """Raise ``errors`` on the next calls, one per call, before accepting anything."""
        with self._lock:
            self._failures.extend(errors)

    def clear(self) -> None:
        """Forget what was sent, rejected and scheduled to fail."""
        with self._lock:
            self.sent.clear()
            self.batches.clear()
            self._rejected.clear()
            self._failures.clear()

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        if len(messages) > self.max_batch_size:
            raise ValueError(f"at most {self.max_batch_size} messages per batch")
        with self._lock:
            self.batches.append(list(messages))
            if self._failures:
                raise self._failures.pop(0)
            results = []
            for message in messages:
                hard_invalid = self._rejected.get(message.to.lower())
                if hard_invalid is None:
                    self.sent.append(message)
                    provider_id = f"memory-{next(self._ids)}"
                    results.append(
                        SendResult(message.message_id, ResultStatus.ACCEPTED, provider_id)
                    )
                else:
                    results.append(
                        SendResult(
                            message.message_id,
                            ResultStatus.REJECTED,
                            error=f"{message.to} is rejected",
                            hard_invalid=hard_invalid,
                        )
                    )
            return results

    def close(self) -> None:
        self.closed = True
