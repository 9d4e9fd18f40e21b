"""The first delivery engine of a process prepares it for sending: long-lived objects frozen
out of the garbage collector's sight, and the collector's young threshold raised
(``digest.delivery.runtime``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from digest.delivery.runtime import GC_YOUNG_THRESHOLD

ROOT = Path(__file__).resolve().parents[2]

# A fresh process: what the collector looks like before and after the first engine is made.
_SCRIPT = """
import gc, json
from digest.backends.memory import MemoryBackend
from digest.config import Settings
from digest.db import create_engine
from digest.delivery.sender import DeliveryEngine

settings = Settings(
    _env_file=None, environment="test", database_url="sqlite://",
    secret_key="runtime-test-secret-0123456789abcdef", base_url="https://x.example.com",
)
before = {"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count()}
figures = {"before": before}
for name in ("after", "second"):
    DeliveryEngine(create_engine(settings.database_url), settings, MemoryBackend(), lambda _: None)
    figures[name] = {"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count()}
print(json.dumps(figures))
"""


def test_the_first_engine_of_a_process_freezes_long_lived_objects_and_collects_less() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    before, after, second = figures["before"], figures["after"], figures["second"]
    assert before["threshold"][0] != GC_YOUNG_THRESHOLD and before["frozen"] == 0
    assert after["threshold"][0] == GC_YOUNG_THRESHOLD
    assert after["threshold"][1:] == before["threshold"][1:]
    # The modules, mappings and settings alive then: tens of thousands of objects.
    assert after["frozen"] > 10_000
    assert second == after  # once per process: later engines freeze nothing more
