"""The derived panel verdict and the editorial rules that word it: the one place for both.

Email, plain text, CLI and JSON all read these values, so they can never disagree. Rounding is
half up and exact (integers and ``Decimal``), as the content rules require.

Editorial rules (how a verdict is told to a reader):

- a tool is **the panel's pick** only when its verdict is Ship or Mixed and it ranks first
  alone (``ComparisonVerdict.outcome``): when every tool is Skip the comparison says the panel
  would skip them (``"The panel would skip both"``), and a tie at the top says it is a toss-up;
- a verdict is told in words and numbers: ``"Ship — 4 of 4 reviewers"`` (``ToolVerdict.line``),
  and a percentage always says what it counts: ``"75 % ship"`` (``percent_label``);
- averages are whole numbers in the email (``ToolVerdict.average_whole``) and exact, two
  decimals, in JSON (``ToolVerdict.average_score``);
- a score bar's colour follows the score (``score_band``), never the reviewer's call, so 61 and
  60 look alike;
- a price that repeats its entry price is shown once (``price_line``);
- a card quotes at most one review (``pull_quote``): the dissent from the pick when there is
  one, else the most decisive review (furthest from the middle of the scale), cut at a
  sentence end (``quote_excerpt``);
- a greeting uses a first name (``first_name``): an explicit one when given, else the part
  after the comma of ``"Last, First"``, else the first word; no name, no name in the greeting.
"""

from __future__ import annotations

import enum
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from digest.content.document import ComparisonDoc, ReviewDoc, ToolDoc

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

    @property
    def readers_line(self) -> str:
        """``"Readers: Mixed — 60 % ship of 5 votes"`` for the email, "" without votes."""
        if not self.total:
            return ""
        votes = "vote" if self.total == 1 else "votes"
        return f"Readers: {self.verdict} \u2014 {self.up_percent} % ship of {self.total} {votes}"


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

    @property
    def average_whole(self) -> int:
        """The average score as the email shows it: a whole number, rounded half up."""
        return int(self.average_score.quantize(Decimal(1), rounding=ROUND_HALF_UP))

    @property
    def count_line(self) -> str:
        """``"4 of 4 reviewers"``: how many of the panel would ship it."""
        return f"{self.ship} of {self.reviews} {'reviewer' if self.reviews == 1 else 'reviewers'}"

    @property
    def line(self) -> str:
        """``"Ship — 4 of 4 reviewers"``, ``"Mixed — 2 of 4 reviewers"``."""
        return f"{self.label.value} — {self.count_line}"

    @property
    def percent(self) -> str:
        """``"75 % ship"``."""
        return percent_label(self.ship_percent)


class Outcome(enum.StrEnum):
    PICK = "pick"  # one tool, Ship or Mixed, ranks first alone
    TOSS_UP = "toss-up"  # a tie at the top between tools the panel would not skip
    ALL_SKIP = "all-skip"  # the panel would skip every tool


@dataclass(frozen=True, slots=True)
class ComparisonVerdict:
    tools: tuple[ToolVerdict, ...]
    recommended: ToolVerdict | None  # the top of the ranking; None: a tie at the top

    def for_tool(self, slug: str) -> ToolVerdict:
        return next(tool for tool in self.tools if tool.slug == slug)

    @property
    def outcome(self) -> Outcome:
        if all(tool.label is Label.SKIP for tool in self.tools):
            return Outcome.ALL_SKIP
        return Outcome.PICK if self.recommended is not None else Outcome.TOSS_UP

    @property
    def pick(self) -> ToolVerdict | None:
        """The panel's pick: the recommended tool unless the panel would skip every tool."""
        return self.recommended if self.outcome is Outcome.PICK else None

    @property
    def headline(self) -> str:
        """One line a reader can act on: the pick, the toss-up or the skip."""
        if self.outcome is Outcome.ALL_SKIP:
            count = len(self.tools)
            which = "it" if count == 1 else "both" if count == 2 else f"all {count}"
            return f"The panel would skip {which}"
        if self.pick is not None:
            return f"The panel's pick: {self.pick.name}"
        best = max(tool.ship_percent for tool in self.tools)
        tied = [tool.name for tool in self.tools if tool.ship_percent == best]
        names = " and ".join([", ".join(tied[:-1]), tied[-1]] if len(tied) > 1 else tied)
        return f"Toss-up between {names}"


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


def outcome_tally(outcomes: Iterable[str]) -> str:
    """``"This week: 4 picks, 1 toss-up, 1 to skip."`` (zero counts left out)."""
    counts = Counter(Outcome(value) for value in outcomes)
    parts = []
    for outcome, one, many in (
        (Outcome.PICK, "pick", "picks"),
        (Outcome.TOSS_UP, "toss-up", "toss-ups"),
        (Outcome.ALL_SKIP, "to skip", "to skip"),
    ):
        if counts[outcome]:
            parts.append(f"{counts[outcome]} {one if counts[outcome] == 1 else many}")
    return f"This week: {', '.join(parts)}." if parts else ""


def percent_label(percent: int) -> str:
    """A ship percentage that says what it counts: ``"75 % ship"``."""
    return f"{percent} % ship"


class ScoreBand(enum.StrEnum):
    HIGH = "high"
    MID = "mid"
    LOW = "low"


SCORE_HIGH_AT_LEAST = 70
SCORE_LOW_BELOW = 50


def score_band(score: int) -> ScoreBand:
    """The colour band of a 0–100 score: by the score alone, never by the reviewer's call."""
    if score >= SCORE_HIGH_AT_LEAST:
        return ScoreBand.HIGH
    return ScoreBand.LOW if score < SCORE_LOW_BELOW else ScoreBand.MID


_SPACES = re.compile(r"\s+")
_PRICE_NOISE = re.compile(r"[\s·,;:.()\-–—]+")


def price_line(entry_price: str, pricing: str) -> str:
    """The price, once: ``pricing`` when it starts with (or equals) the entry price, the entry
    price when ``pricing`` is empty, else ``"entry · pricing"``."""
    entry, full = _SPACES.sub(" ", entry_price).strip(), _SPACES.sub(" ", pricing).strip()
    if not full:
        return entry
    if not entry:
        return full
    folded_entry = _PRICE_NOISE.sub(" ", entry.casefold()).strip()
    folded_full = _PRICE_NOISE.sub(" ", full.casefold()).strip()
    if folded_full == folded_entry or folded_full.startswith(folded_entry + " "):
        return full
    if folded_entry.startswith(folded_full + " "):
        return entry
    return f"{entry} · {full}"


QUOTE_LENGTH = 200
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"”’)]*\s+")


def quote_excerpt(text: str, limit: int = QUOTE_LENGTH) -> str:
    """The opening of a review for a pull quote: whole sentences up to ``limit`` characters;
    only a first sentence longer than that is cut, at a word boundary, with ``…``."""
    flat = _SPACES.sub(" ", text).strip()
    if len(flat) <= limit:
        return flat
    kept = ""
    for match in _SENTENCE_END.finditer(flat):
        candidate = flat[: match.start()].rstrip()
        if len(candidate) > limit:
            break
        kept = candidate
    if kept:
        return kept
    cut = flat[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit * 2 // 3:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-–—") + "…"


QUESTION_LENGTH = 120


def question_line(summary: str, limit: int = QUESTION_LENGTH) -> str:
    """The card's one-line question: the summary's whole opening sentences up to ``limit``
    characters (``"Which one should you ship with?"``); the full summary stays on the web."""
    return quote_excerpt(summary, limit) if summary.strip() else ""


@dataclass(frozen=True, slots=True)
class PullQuote:
    review: ReviewDoc
    tool_name: str
    dissent: bool  # the reviewer voted against the panel's pick

    @property
    def excerpt(self) -> str:
        return quote_excerpt(self.review.text)


def pull_quote(comparison: ComparisonDoc, verdict: ComparisonVerdict) -> PullQuote | None:
    """The one review a card quotes: a dissent from the pick, else the most decisive review."""
    names = {tool.slug: tool.name for tool in comparison.tools}
    pick = verdict.pick
    if pick is not None:
        dissents = [r for r in comparison.reviews_of(pick.slug) if r.verdict == "skip"]
        if dissents:
            review = min(dissents, key=lambda r: r.score)
            return PullQuote(review, names[review.tool], dissent=True)
    reviews = [r for r in comparison.reviews if r.tool in names]
    if not reviews:
        return None
    order = {slug: index for index, slug in enumerate(names)}
    # Most decisive: furthest from 50; the pick's reviews and earlier tools win ties.
    review = max(
        reviews,
        key=lambda r: (
            abs(r.score - 50),
            pick is not None and r.tool == pick.slug,
            -order[r.tool],
        ),
    )
    return PullQuote(review, names[review.tool], dissent=False)


NEUTRAL_GREETING = "Hi there,"
MAX_FIRST_NAME = 40


def first_name(name: str, explicit: str = "") -> str:
    """The name a greeting uses: ``explicit`` when given, else the part after the comma of
    ``"Last, First"``, else the first word of ``name``; ``""`` when there is none."""
    for candidate in (explicit, name):
        flat = _SPACES.sub(" ", candidate or "").strip()
        if not flat:
            continue
        if candidate is name and "," in flat:
            flat = flat.split(",", 1)[1].strip() or flat.split(",", 1)[0].strip()
        word = flat if candidate is explicit else flat.split(" ", 1)[0]
        word = word.strip(" ,;:.\"'()[]<>")
        if word:
            return word[:MAX_FIRST_NAME]
    return ""


def greeting(name: str, explicit: str = "") -> str:
    """``"Hi Astrid,"`` for ``"Lindqvist, Astrid"``; ``"Hi there,"`` without a name."""
    first = first_name(name, explicit)
    return f"Hi {first}," if first else NEUTRAL_GREETING
