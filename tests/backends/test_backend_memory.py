"""The in-memory backend used by tests of the sending code."""

from __future__ import annotations

import threading

import pytest
from backend_fakes import build_message

from digest.backends.base import ResultStatus
from digest.backends.errors import AmbiguousError, RateLimitedError
from digest.backends.memory import MemoryBackend


def test_accepts_and_records_in_order() -> None:
    backend = MemoryBackend()
    messages = [build_message(n) for n in range(3)]
    results = backend.send_batch(messages)
    assert backend.sent == messages
    assert [r.status for r in results] == [ResultStatus.ACCEPTED] * 3
    assert len({r.provider_message_id for r in results}) == 3


def test_rejects_given_addresses_only() -> None:
    backend = MemoryBackend()
    backend.reject(["Reader2@Example.org"])
    results = backend.send_batch([build_message(1), build_message(2), build_message(3)])
    assert [r.status for r in results] == [
        ResultStatus.ACCEPTED,
        ResultStatus.REJECTED,
        ResultStatus.ACCEPTED,
    ]
    assert results[1].hard_invalid
    assert [m.to for m in backend.sent] == ["reader1@example.org", "reader3@example.org"]


def test_fails_next_calls_with_given_errors() -> None:
    backend = MemoryBackend()
    backend.fail_next(RateLimitedError("slow down", retry_after=3), AmbiguousError("timeout"))
    with pytest.raises(RateLimitedError) as caught:
        backend.send(build_message())
    assert caught.value.retry_after == 3
    with pytest.raises(AmbiguousError):
        backend.send(build_message())
    assert backend.send(build_message()).accepted
    assert len(backend.sent) == 1
    assert len(backend.batches) == 3


def test_thread_safe() -> None:
    backend = MemoryBackend()

    def worker(start: int) -> None:
        for n in range(start, start + 200):
            backend.send(build_message(n))

    threads = [threading.Thread(target=worker, args=(i * 1000,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(backend.sent) == 800
    assert len({m.message_id for m in backend.sent}) == 800


def test_refuses_oversized_batch() -> None:
    with pytest.raises(ValueError, match="at most"):
        MemoryBackend().send_batch([build_message()] * (MemoryBackend.max_batch_size + 1))
