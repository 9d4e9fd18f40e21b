"""Generated subscriber CSVs for the import benchmarks (``csv_import.py``, ``csv_memory.py``).

Rows cycle through a few timezones, category sets and domains (one of them an IDN), so the
import validates and normalizes every kind of field it meets in real lists.
"""

from __future__ import annotations

import csv
from pathlib import Path

TIMEZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney"]
CATEGORIES = ["Developer Tools", "Data & Analytics", "Image & Video", "Writing & Content"]
DOMAINS = ["example.com", "example.org", "example.net", "mail.example.com", "bücher.example"]


def write_csv(
    path: Path,
    rows: int,
    *,
    email: str = "reader.{index}+news@{domain}",
    name: str = "Reader Nº {index}",
) -> None:
    """``rows`` subscribers (``email``, ``name``, ``timezone``, ``categories``) in ``path``;
    ``email`` and ``name`` are format strings of ``index`` (and ``domain``)."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name", "timezone", "categories"])
        for index in range(rows):
            writer.writerow(
                [
                    email.format(index=index, domain=DOMAINS[index % len(DOMAINS)]),
                    name.format(index=index),
                    TIMEZONES[index % len(TIMEZONES)],
                    ";".join(CATEGORIES[: index % (len(CATEGORIES) + 1)]),
                ]
            )
