"""One owner of state: only ``digest.delivery.ledger`` writes ledger rows, and only
``digest.editions.status`` changes an edition's status."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted([*(ROOT / "digest").rglob("*.py"), *(ROOT / "subscribers").rglob("*.py")])
LEDGER_WRITES = re.compile(
    r"update\(\s*(DELIVERY|Delivery)\b|UPDATE\s+delivery\b|\.state\s*=(?!=)", re.IGNORECASE
)


def _writers(pattern: re.Pattern[str]) -> set[str]:
    found = set()
    for path in SOURCES:
        if "migrations" in path.parts:
            continue
        if pattern.search(path.read_text()):
            found.add(str(path.relative_to(ROOT)))
    return found


def test_only_the_ledger_module_updates_delivery_rows() -> None:
    assert _writers(LEDGER_WRITES) == {"digest/delivery/ledger.py"}


def test_only_the_editions_status_module_changes_an_edition() -> None:
    writers = {
        path
        for path in _writers(re.compile(r"update\(\s*(EDITION|Edition)\b|UPDATE\s+edition\b"))
        if path != "digest/editions/service.py"  # mark_ledger_complete: not the status
    }
    assert writers == {"digest/editions/status.py"}
    service = (ROOT / "digest/editions/service.py").read_text()
    update = service[service.index("def mark_ledger_complete") :]
    assert "status" not in update
