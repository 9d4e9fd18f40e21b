"""The derived panel verdict: the one place that turns reviews into Ship / Mixed / Skip.

Email, plain text, CLI and JSON all read these values, so they can never disagree. Rounding is
half up and exact (integers and ``Decimal``), as the content rules require.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from digest.content.document import ComparisonDoc, ToolDoc

SHIP_AT_LEAST = 75
SKIP_AT_MOST = 25


class Label(enum.StrEnum):
    SHIP = "Ship"
    MIXED = "Mixed"
    SKIP = "Skip"


def round_half_up(numerator: int, denominator: int, places: int = 0) -> Decimal:
    """``numerator / denominator`` rounded half up to ``places`` decimals, exactly."""
    quantum = Decimal(1).scaleb(-places)
    return (Decimal(numerator) / Decimal(denominator)).quantize(quantum, rounding=ROUND_HALF_UP)


def label_for(ship_percent: int) -> Label:
    if ship_percent >= SHIP_AT_LEAST:
        return Label.SHIP
    if ship_percent <= SKIP_AT_MOST:
        return Label.SKIP
    return Label.MIXED


@dataclass(frozen=True, slots=True)
class CommunityVotes:
    up: int
    down: int

    @property
    def total(self) -> int:
        return self.up + self.down

    @property
    def up_percent(self) -> int | None:
        return int(round_half_up(100 * self.up, self.total)) if self.total else None

    @property
    def label(self) -> str:
        if not self.total:
            return "No community votes yet"
        votes = "vote" if self.total == 1 else "votes"
        return f"{self.up_percent}% of {self.total} {votes} up"

    @property
    def verdict(self) -> Label | None:
        """Ship / Mixed / Skip by the panel's thresholds, or None without votes."""
        percent = self.up_percent
        return None if percent is None else label_for(percent)


def community_verdict(imported: CommunityVotes | None, ship: int, skip: int) -> CommunityVotes:
    """A tool's community figure: the votes imported with the comparison plus the newsletter
    readers' ship and skip votes."""
    if min(ship, skip) < 0:
        raise ValueError("vote counts are not negative")
    base = imported or CommunityVotes(0, 0)
    return CommunityVotes(base.up + ship, base.down + skip)


@dataclass(frozen=True, slots=True)
class ToolVerdict:
    slug: str
    name: str
    ship: int
    skip: int
    ship_percent: int
    label: Label
    average_score: Decimal
    community: CommunityVotes

    @property
    def reviews(self) -> int:
        return self.ship + self.skip


@dataclass(frozen=True, slots=True)
class ComparisonVerdict:
    tools: tuple[ToolVerdict, ...]
    recommended: ToolVerdict | None  # None: a toss-up

    def for_tool(self, slug: str) -> ToolVerdict:
        return next(tool for tool in self.tools if tool.slug == slug)


def tool_verdict(comparison: ComparisonDoc, tool: ToolDoc) -> ToolVerdict:
    reviews = comparison.reviews_of(tool.slug)
    if not reviews:
        raise ValueError(f"tool {tool.slug!r} has no review")
    ship = sum(1 for review in reviews if review.verdict == "ship")
    skip = len(reviews) - ship
    ship_percent = int(round_half_up(100 * ship, len(reviews)))
    votes = tool.community
    return ToolVerdict(
        slug=tool.slug,
        name=tool.name,
        ship=ship,
        skip=skip,
        ship_percent=ship_percent,
        label=label_for(ship_percent),
        average_score=round_half_up(sum(review.score for review in reviews), len(reviews), 2),
        community=CommunityVotes(votes.up, votes.down) if votes else CommunityVotes(0, 0),
    )


def comparison_verdict(comparison: ComparisonDoc) -> ComparisonVerdict:
    """Every tool's verdict and the recommended tool (highest ship %, then average; else none)."""
    tools = tuple(tool_verdict(comparison, tool) for tool in comparison.tools)
    ranked = sorted(tools, key=lambda t: (t.ship_percent, t.average_score), reverse=True)
    top = ranked[0]
    tied = len(ranked) > 1 and (ranked[1].ship_percent, ranked[1].average_score) == (
        top.ship_percent,
        top.average_score,
    )
    return ComparisonVerdict(tools=tools, recommended=None if tied else top)
