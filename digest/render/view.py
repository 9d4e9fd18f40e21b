"""Template-ready view models: comparison documents plus their derived verdicts, flattened.

Templates (HTML and plain text alike) read only these objects, so both parts show the same
numbers and wording. Verdicts come from ``digest.content.verdicts`` and nowhere else; this
module only formats them (colours, labels, excerpts, week labels). Every string here is raw
content: escaping is the template engine's job.
"""

from __future__ import annotations

import datetime as dt
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from digest.content.document import ComparisonDoc, ToolDoc
from digest.content.verdicts import Label, ToolVerdict, comparison_verdict
from digest.content.weeks import IsoWeek

EXCERPT_LENGTH = 140
TOOLS_PER_ROW = 2
AVATAR_COLOURS = (
    "#4f46e5",
    "#0e7490",
    "#7c3aed",
    "#be185d",
    "#c2410c",
    "#0f766e",
    "#1d4ed8",
    "#4d7c0f",
)
# URL characters left as they are; anything else (quotes, angle brackets, spaces, non-ASCII)
# is percent-encoded so that a URL can never leave the attribute it is written into.
_URL_SAFE = ":/?#[]@!$&()*+,;=%-._~"
_SPACES = re.compile(r"\s+")
_TRAILING_PUNCTUATION = " ,;:.-–—"


@dataclass(frozen=True, slots=True)
class Badge:
    """The colours of a verdict label: text, background and the bar/accent colour."""

    label: str
    fg: str
    bg: str
    accent: str


BADGES = {
    Label.SHIP: Badge("Ship", "#166534", "#dcfce7", "#16a34a"),
    Label.MIXED: Badge("Mixed", "#92400e", "#fef3c7", "#d97706"),
    Label.SKIP: Badge("Skip", "#991b1b", "#fee2e2", "#dc2626"),
}
CALL_COLOURS = {"ship": BADGES[Label.SHIP].accent, "skip": BADGES[Label.SKIP].accent}


@dataclass(frozen=True, slots=True)
class ScoreView:
    """One persona's score for one tool: the bar is ``score`` percent wide."""

    persona: str
    score: int
    verdict: str
    colour: str


@dataclass(frozen=True, slots=True)
class QuoteView:
    """The start of one review, for the "from the panel" lines."""

    persona: str
    tool_name: str
    verdict: str
    excerpt: str


@dataclass(frozen=True, slots=True)
class ToolView:
    slug: str
    name: str
    initial: str
    avatar_colour: str
    category: str
    tagline: str
    pricing: str
    entry_price: str
    url: str | None
    badge: Badge
    ship_percent: int
    ship: int
    skip: int
    average_score: str
    community: str
    recommended: bool
    scores: tuple[ScoreView, ...]
    quotes: tuple[QuoteView, ...]

    @property
    def split(self) -> str:
        """``"2 ship / 2 skip"``."""
        return f"{self.ship} ship / {self.skip} skip"


@dataclass(frozen=True, slots=True)
class ComparisonView:
    slug: str
    title: str
    summary: str
    url: str
    tools: tuple[ToolView, ...]
    rows: tuple[tuple[ToolView, ...], ...]
    recommended: str | None

    @property
    def quotes(self) -> tuple[QuoteView, ...]:
        """Every review's opening, tool by tool."""
        return tuple(quote for tool in self.tools for quote in tool.quotes)

    @property
    def pick(self) -> str:
        """``"Recommended: X"`` or the toss-up line."""
        return (
            f"Recommended: {self.recommended}" if self.recommended else "Toss-up: no clear winner"
        )


@dataclass(frozen=True, slots=True)
class SlotMarkers:
    """What templates print where a per-recipient value goes (see ``digest.render.slots``)."""

    greeting: str
    unsubscribe_url: str
    preferences_url: str


@dataclass(frozen=True, slots=True)
class EditionView:
    site_name: str
    week: str
    week_label: str
    subject: str
    preheader: str
    comparisons: tuple[ComparisonView, ...]
    archive_url: str
    base_url: str
    postal_address: str
    slots: SlotMarkers

    @property
    def count(self) -> int:
        return len(self.comparisons)


def excerpt(text: str, limit: int = EXCERPT_LENGTH) -> str:
    """``text`` on one line, cut at a word boundary near ``limit`` characters with ``…``."""
    flat = _SPACES.sub(" ", text).strip()
    if len(flat) <= limit:
        return flat
    cut = flat[:limit]
    space = cut.rfind(" ")
    if space >= limit * 2 // 3:  # else one very long word (or a script without spaces)
        cut = cut[:space]
    return cut.rstrip(_TRAILING_PUNCTUATION) + "…"


def initial(name: str) -> str:
    """The avatar letter: the first letter or digit of ``name``, upper-cased."""
    for char in name:
        if char.isalnum():
            return char.upper()
    stripped = name.strip()
    return stripped[:1] or "?"


def avatar_colour(slug: str) -> str:
    """A colour picked from the palette by a stable hash of the tool slug."""
    return AVATAR_COLOURS[zlib.crc32(slug.encode("utf-8")) % len(AVATAR_COLOURS)]


def safe_url(url: str | None) -> str | None:
    """An absolute http(s) URL safe to write into an attribute, or None for anything else."""
    if not url:
        return None
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return None
    if scheme not in ("http", "https"):
        return None
    return quote(url.strip(), safe=_URL_SAFE)


def week_label(week: IsoWeek) -> str:
    """``"Week 47 · 16–22 November 2026"`` (month and year written once when shared)."""
    start = week.monday
    end = start + dt.timedelta(days=6)
    if start.year != end.year:
        span = f"{start.day} {start:%B} {start.year} – {end.day} {end:%B} {end.year}"
    elif start.month != end.month:
        span = f"{start.day} {start:%B} – {end.day} {end:%B} {end.year}"
    else:
        span = f"{start.day}–{end.day} {end:%B} {end.year}"
    return f"Week {week.week} · {span}"


def _tool_view(
    comparison: ComparisonDoc, tool: ToolDoc, verdict: ToolVerdict, recommended: bool
) -> ToolView:
    reviews = comparison.reviews_of(tool.slug)
    return ToolView(
        slug=tool.slug,
        name=tool.name,
        initial=initial(tool.name),
        avatar_colour=avatar_colour(tool.slug),
        category=tool.category,
        tagline=tool.tagline,
        pricing=tool.pricing,
        entry_price=tool.entry_price,
        url=safe_url(tool.url),
        badge=BADGES[verdict.label],
        ship_percent=verdict.ship_percent,
        ship=verdict.ship,
        skip=verdict.skip,
        average_score=f"{verdict.average_score:.2f}",
        community=verdict.community.label,
        recommended=recommended,
        scores=tuple(
            ScoreView(
                persona=review.persona,
                score=review.score,
                verdict=review.verdict,
                colour=CALL_COLOURS[review.verdict],
            )
            for review in reviews
        ),
        quotes=tuple(
            QuoteView(
                persona=review.persona,
                tool_name=tool.name,
                verdict=review.verdict,
                excerpt=excerpt(review.text),
            )
            for review in reviews
        ),
    )


def comparison_view(comparison: ComparisonDoc, fallback_url: str) -> ComparisonView:
    """The view of one comparison; ``fallback_url`` replaces a URL that is not http(s)."""
    verdict = comparison_verdict(comparison)
    recommended = verdict.recommended.slug if verdict.recommended else None
    tools = tuple(
        _tool_view(comparison, tool, verdict.for_tool(tool.slug), tool.slug == recommended)
        for tool in comparison.tools
    )
    return ComparisonView(
        slug=comparison.slug,
        title=comparison.title,
        summary=comparison.summary,
        url=safe_url(comparison.url) or fallback_url,
        tools=tools,
        rows=tuple(tools[i : i + TOOLS_PER_ROW] for i in range(0, len(tools), TOOLS_PER_ROW)),
        recommended=verdict.recommended.name if verdict.recommended else None,
    )


def edition_view(
    *,
    site_name: str,
    week: IsoWeek,
    subject: str,
    preheader: str,
    comparisons: Sequence[ComparisonDoc],
    archive_url: str,
    base_url: str,
    postal_address: str,
    slots: SlotMarkers,
) -> EditionView:
    """Everything the digest templates print, in the order given by ``comparisons``."""
    return EditionView(
        site_name=site_name,
        week=str(week),
        week_label=week_label(week),
        subject=subject,
        preheader=preheader,
        comparisons=tuple(comparison_view(doc, base_url) for doc in comparisons),
        archive_url=safe_url(archive_url) or base_url,
        base_url=base_url,
        postal_address=postal_address,
        slots=slots,
    )
