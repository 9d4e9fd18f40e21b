"""The one rule for timezone names: an IANA zone that tzdata knows, such as ``Europe/Berlin``.

``ZoneInfo(name)`` alone is not a check: ``Europe`` (a directory of the database) raises
``IsADirectoryError``, and a 10,000-character name reaches the file system. Every way a zone
comes in (settings, sign-up form, CLI, CSV) goes through ``check_zone``, which compares with the
list of zones and never opens a file for a name that is not on it.

The two clock words of local-time delivery are read here too, below the settings that use
them: a send time (``08:00``) and a crontab weekday (``MON``..``SUN``, ``0``-``7``).
"""

from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache
from pathlib import Path
from zoneinfo import available_timezones

MAX_ZONE_LENGTH = 64  # the longest IANA name is 32 characters
WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
_CRONTAB_NUMBERS = {"0": "SUN", "7": "SUN", "1": "MON", "2": "TUE", "3": "WED", "4": "THU"}
_CRONTAB_NUMBERS |= {"5": "FRI", "6": "SAT"}
_HH_MM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def parse_send_time(text: str) -> dt.time:
    """``"08:00"`` as a time; ``ValueError`` with one line otherwise."""
    if not _HH_MM.match(text):
        raise ValueError(f"must look like 08:00 (24-hour HH:MM), got {text[:20]!r}")
    return dt.time.fromisoformat(text)


def parse_weekday(text: str) -> int:
    """A crontab day (``MON``..``SUN``, ``0``-``7``, any case) as Monday = 0 .. Sunday = 6."""
    name = _CRONTAB_NUMBERS.get(text.strip(), text.strip().upper())
    if name not in WEEKDAYS:
        raise ValueError(f"unknown day of week {text[:20]!r} (use MON..SUN or 0-7)")
    return WEEKDAYS.index(name)


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


def known_zones() -> frozenset[str]:
    """Every IANA zone name tzdata knows."""
    return _zones()


def check_zone(name: str) -> str:
    """``name`` if it is an IANA zone, else ``ValueError`` with a one-line, bounded message."""
    if len(name) <= MAX_ZONE_LENGTH and name in _zones():
        return name
    shown = repr(name) if len(name) <= MAX_ZONE_LENGTH else f"{name[:MAX_ZONE_LENGTH]!r}..."
    raise ValueError(f"unknown timezone {shown} (use an IANA name such as Europe/Berlin)")
