"""The one rule for timezone names: an IANA zone that tzdata knows, such as ``Europe/Berlin``.

``ZoneInfo(name)`` alone is not a check: ``Europe`` (a directory of the database) raises
``IsADirectoryError``, and a 10,000-character name reaches the file system. Every way a zone
comes in (settings, sign-up form, CLI, CSV) goes through ``check_zone``, which compares with the
list of zones and never opens a file for a name that is not on it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from zoneinfo import available_timezones

MAX_ZONE_LENGTH = 64  # the longest IANA name is 32 characters


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    # tzdata's own list of its zones is one small file; listing the zone directories
    # (``available_timezones``) costs some 50 ms, at the start of every command.
    try:
        import tzdata

        listed = (Path(tzdata.__file__).parent / "zones").read_text(encoding="utf-8").split()
    except (ImportError, OSError):
        return frozenset(available_timezones())
    return frozenset(listed)


def check_zone(name: str) -> str:
    """``name`` if it is an IANA zone, else ``ValueError`` with a one-line, bounded message."""
    if len(name) <= MAX_ZONE_LENGTH and name in _zones():
        return name
    shown = repr(name) if len(name) <= MAX_ZONE_LENGTH else f"{name[:MAX_ZONE_LENGTH]!r}..."
    raise ValueError(f"unknown timezone {shown} (use an IANA name such as Europe/Berlin)")
