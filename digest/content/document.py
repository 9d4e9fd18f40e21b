"""The comparison document as typed, validated data: the one in-memory shape of a comparison.

Files, URLs and database rows all become a ``ComparisonDoc``; rendering, the CLI and edition
snapshots read nothing else. Validation lives in ``digest.content.validate``; these classes only
describe the shape (strict, no extra keys), so a document built from trusted rows is cheap.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict

Verdict = Literal["ship", "skip"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Community(_Strict):
    up: int
    down: int


class ToolDoc(_Strict):
    slug: str
    name: str
    category: str
    tagline: str
    description: str
    pricing: str
    entry_price: str
    url: str | None = None
    community: Community | None = None


class ReviewDoc(_Strict):
    persona: str
    tool: str
    score: int
    verdict: Verdict
    text: str


class ComparisonDoc(_Strict):
    slug: str
    title: str
    summary: str
    published_at: dt.datetime
    url: str
    tools: tuple[ToolDoc, ...]
    reviews: tuple[ReviewDoc, ...]

    def reviews_of(self, tool_slug: str) -> list[ReviewDoc]:
        return [review for review in self.reviews if review.tool == tool_slug]

    @property
    def categories(self) -> frozenset[str]:
        return frozenset(tool.category for tool in self.tools)
