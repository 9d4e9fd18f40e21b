"""Helpers shared by the rendering tests (imported by name: test modules and conftest)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from digest.config import Settings
from digest.content.document import ComparisonDoc
from digest.content.validate import validate_comparison
from digest.content.weeks import IsoWeek
from digest.render.compose import Recipient
from digest.render.edition import EditionRenderer

RendererFactory = Callable[..., EditionRenderer]

TEST_SECRET = "Jt7fQm2VxR9kLp4WzN8cYd3HbG6sKe1TqA5uXo0iMv"
W47 = IsoWeek(2026, 47)
SEED_SLUG = "claude-haiku-open-weights-vs-hugging-face-inference-providers-hub"
ARCHIVE = "https://verdicts.example.com/editions/47"
READER = Recipient(subscriber_id=42, email="zoe@example.com", name="Zoë Fontaine")
REPO_ROOT = Path(__file__).resolve().parents[2]


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "_env_file": None,
        "environment": "test",
        "database_url": "sqlite://",
        "secret_key": TEST_SECRET,
        "base_url": "https://verdicts.example.com",
    }
    values.update(overrides)
    return Settings(**values)


def load_docs(directory: Path) -> list[ComparisonDoc]:
    """Every comparison file of ``directory``, validated, in publication order."""
    docs = [
        validate_comparison(json.loads(path.read_text(encoding="utf-8")), path.name)
        for path in sorted(directory.glob("*.json"))
    ]
    return sorted(docs, key=lambda doc: (doc.published_at.astimezone(dt.UTC), doc.slug))


def comparison_data(**overrides: Any) -> dict[str, Any]:
    """A small valid comparison as JSON data; override any top-level field."""
    data: dict[str, Any] = {
        "slug": "alpha-vs-beta",
        "title": "Alpha vs Beta",
        "summary": "Two tools.",
        "published_at": "2026-11-18T10:00:00Z",
        "url": "https://verdicts.example.com/compare/alpha-vs-beta",
        "tools": [
            {
                "slug": "alpha",
                "name": "Alpha",
                "category": "Developer Tools",
                "tagline": "Fast",
                "description": "Alpha does things.",
                "pricing": "Free",
                "entry_price": "Free",
            },
            {
                "slug": "beta",
                "name": "Beta",
                "category": "Productivity",
                "tagline": "Calm",
                "description": "Beta does other things.",
                "pricing": "$5/mo",
                "entry_price": "$5/mo",
            },
        ],
        "reviews": [
            {
                "persona": "Builder",
                "tool": "alpha",
                "score": 80,
                "verdict": "ship",
                "text": "Good.",
            },
            {"persona": "Builder", "tool": "beta", "score": 40, "verdict": "skip", "text": "Meh."},
        ],
    }
    data.update(overrides)
    return data


def make_doc(**overrides: Any) -> ComparisonDoc:
    return validate_comparison(comparison_data(**overrides), "test")


class _Parsed(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.text: list[str] = []
        self.hrefs: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag in ("style", "title"):
            self._skip += 1
        if tag == "a":
            self.hrefs.append(dict(attrs).get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "title"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.text.append(data)


def parse_html(html: str) -> _Parsed:
    """Tags, links and visible text of ``html`` (entities decoded, whitespace collapsed)."""
    parsed = _Parsed()
    parsed.feed(html)
    parsed.close()
    return parsed


def visible_text(html: str) -> str:
    return " ".join(" ".join(parse_html(html).text).split())
