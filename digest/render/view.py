"""Template-ready view models: comparison documents plus their derived verdicts, flattened.

Templates (HTML and plain text alike) read only these objects, so both parts show the same
numbers and wording. Verdicts and the editorial rules that word them (the pick, labelled
percentages, whole averages, prices once, the one pull quote) come from
``digest.content.verdicts`` and nowhere else; this module only maps them to colours, CSS
classes, safe URLs and week labels. Every string here is raw
content: escaping is the template engine's job.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from urllib.parse import quote, urlsplit

from digest.content.document import ComparisonDoc, ToolDoc
from digest.content.verdicts import (
    CommunityVotes,
    Label,
    ScoreBand,
    ToolVerdict,
    comparison_verdict,
    outcome_tally,
    price_line,
    pull_quote,
    question_line,
    score_band,
)
from digest.content.weeks import IsoWeek

# URL characters left as they are; anything else (quotes, angle brackets, spaces, non-ASCII)
# is percent-encoded so that a URL can never leave the attribute it is written into.
_URL_SAFE = ":/?#[]@!$&()*+,;=%-._~"
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Badge:
    """A verdict label as printed: its word, CSS class and the light-mode colours that go
    into ``bgcolor``/``color`` fallbacks (the dark palette lives in the template's styles)."""

    label: str
    css: str
    fg: str
    bg: str


BADGES = {
    Label.SHIP: Badge("Ship", "ship", "#14532d", "#dcfce7"),
    Label.MIXED: Badge("Mixed", "mixed", "#713f12", "#fef3c7"),
    Label.SKIP: Badge("Skip", "skip", "#7f1d1d", "#fee2e2"),
}
# Score bars colour by the score's band (``digest.content.verdicts.score_band``).
BAND_COLOURS = {ScoreBand.HIGH: "#15803d", ScoreBand.MID: "#b45309", ScoreBand.LOW: "#b91c1c"}


@dataclass(frozen=True, slots=True)
class ScoreView:
    """One persona's score for one tool: the bar is ``score`` percent wide."""

    persona: str
    score: int
    verdict: str
    band: str
    colour: str


@dataclass(frozen=True, slots=True)
class QuoteView:
    """The card's one pull quote: who said it, about which tool, and whether it dissents."""

    persona: str
    tool_name: str
    verdict: str
    excerpt: str
    dissent: bool


@dataclass(frozen=True, slots=True)
class ToolView:
    slug: str
    name: str
    category: str
    tagline: str
    price: str
    url: str | None
    badge: Badge
    line: str  # "Ship — 4 of 4 reviewers"
    count_line: str  # "4 of 4 reviewers"
    percent: str  # "100 % ship"
    ship: int
    skip: int
    average: int
    community: str
    pick: bool
    scores: tuple[ScoreView, ...]
    readers: str = ""  # the community figure, "" without votes
    vote_ship: str = ""  # the "Would you ship it?" links, with slot markers ("" without)
    vote_skip: str = ""

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
    outcome: str  # digest.content.verdicts.Outcome value
    headline: str  # "The panel's pick: X", "Toss-up between X and Y", "The panel would skip both"
    pick: str | None
    quote: QuoteView | None


@dataclass(frozen=True, slots=True)
class RecapView:
    """One comparison of the previous edition in the "What readers said" block: its title,
    link, and each voted tool's community line."""

    title: str
    url: str
    tools: tuple[tuple[str, str], ...]  # (tool name, "Readers: Ship — 80 % ship of 10 votes")


@dataclass(frozen=True, slots=True)
class SlotMarkers:
    """What templates print where a per-recipient value goes (see ``digest.render.slots``)."""

    greeting: str
    unsubscribe_url: str
    preferences_url: str
    voter: str = ""


@dataclass(frozen=True, slots=True)
class EditionView:
    """One email's content. ``comparisons`` get full cards; ``folded`` ones (what the size
    budget did not fit) get one line each; ``unlisted`` more are only counted, with the link
    to the archive."""

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
    folded: tuple[ComparisonView, ...] = ()
    unlisted: int = 0
    # (comparison slug, tool position) of each vote slot, by ordinal (empty: no vote links).
    votes: tuple[tuple[str, int], ...] = ()
    recap: tuple[RecapView, ...] = ()  # what readers said of the previous edition
    honeypot: str = ""  # the marker of the hidden honeypot link ("" without tracked links)
    pixel: str = ""  # the marker of the open pixel's slot ("" without open tracking)

    @property
    def count(self) -> int:
        """Every comparison of the email, full or folded."""
        return len(self.comparisons) + len(self.folded) + self.unlisted

    @property
    def tally(self) -> str:
        """``"This week: 4 picks, 1 toss-up, 1 to skip."`` over every comparison listed."""
        return outcome_tally(c.outcome for c in self.comparisons + self.folded)

    @property
    def more(self) -> int:
        """Comparisons without a full card."""
        return len(self.folded) + self.unlisted

    def with_budget(self, full: int, listed: int) -> EditionView:
        """This view with only ``full`` full cards and ``listed`` one-line entries."""
        every = self.comparisons + self.folded
        return replace(
            self,
            comparisons=every[:full],
            folded=every[full : full + listed],
            unlisted=len(every) + self.unlisted - full - listed,
        )


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
    comparison: ComparisonDoc,
    tool: ToolDoc,
    verdict: ToolVerdict,
    pick: bool,
    readers: CommunityVotes | None,
) -> ToolView:
    scores = []
    for review in comparison.reviews_of(tool.slug):
        band = score_band(review.score)
        scores.append(
            ScoreView(review.persona, review.score, review.verdict, band.value, BAND_COLOURS[band])
        )
    return ToolView(
        slug=tool.slug,
        name=tool.name,
        category=tool.category,
        tagline=tool.tagline,
        price=price_line(tool.entry_price, tool.pricing),
        url=safe_url(tool.url),
        badge=BADGES[verdict.label],
        line=verdict.line,
        count_line=verdict.count_line,
        percent=verdict.percent,
        ship=verdict.ship,
        skip=verdict.skip,
        average=verdict.average_whole,
        community=verdict.community.label,
        pick=pick,
        scores=tuple(scores),
        readers=readers.readers_line if readers is not None else "",
    )


def comparison_view(
    comparison: ComparisonDoc,
    fallback_url: str,
    community: Mapping[tuple[str, str], CommunityVotes] | None = None,
) -> ComparisonView:
    """The view of one comparison; ``fallback_url`` replaces a URL that is not http(s).
    ``community`` holds the figures of the tools readers voted on (their readers line)."""
    community = community or {}
    verdict = comparison_verdict(comparison)
    pick = verdict.pick
    tools = tuple(
        _tool_view(
            comparison,
            tool,
            verdict.for_tool(tool.slug),
            pick is not None and tool.slug == pick.slug,
            community.get((comparison.slug, tool.slug)),
        )
        for tool in comparison.tools
    )
    quote = pull_quote(comparison, verdict)
    return ComparisonView(
        slug=comparison.slug,
        title=comparison.title,
        summary=question_line(comparison.summary),
        url=safe_url(comparison.url) or fallback_url,
        tools=tools,
        outcome=verdict.outcome.value,
        headline=verdict.headline,
        pick=pick.name if pick else None,
        quote=QuoteView(
            persona=quote.review.persona,
            tool_name=quote.tool_name,
            verdict=quote.review.verdict,
            excerpt=quote.excerpt,
            dissent=quote.dissent,
        )
        if quote
        else None,
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
    vote_links: Callable[[int, str, int], tuple[str, str]] | None = None,
    community: Mapping[tuple[str, str], CommunityVotes] | None = None,
    recap: Sequence[ComparisonDoc] = (),
    link_marker: Callable[[int], str] | None = None,
    links: Mapping[tuple[str, str], int] | None = None,
    pixel: str = "",
) -> EditionView:
    """Everything the digest templates print, in the order given by ``comparisons``.

    With ``vote_links`` every tool gets its Ship and Skip links: ``vote_links(ordinal,
    comparison slug, tool position)``, tools numbered in card order. ``community`` holds the
    figures of the tools readers voted on; ``recap``, the previous edition's comparisons to show
    them for. With ``link_marker``, each comparison and tool link named in ``links``
    (``(comparison slug, tool slug or "")`` -> link, ``digest.render.links``) becomes that
    link's slot, and the view has a honeypot slot (link 0). ``pixel`` is the marker of the open
    pixel's slot, printed at the end of the footer (the slot's value is the whole image)."""
    community = community or {}
    views = tuple(comparison_view(doc, base_url, community) for doc in comparisons)
    if link_marker is not None and links is not None:
        views = tuple(_linked(view, link_marker, links) for view in views)
    votes: list[tuple[str, int]] = []
    if vote_links is not None:
        numbered = []
        for view in views:
            tools = []
            for position, tool in enumerate(view.tools):
                ship, skip = vote_links(len(votes), view.slug, position)
                tools.append(replace(tool, vote_ship=ship, vote_skip=skip))
                votes.append((view.slug, position))
            numbered.append(replace(view, tools=tuple(tools)))
        views = tuple(numbered)
    return EditionView(
        site_name=site_name,
        week=str(week),
        week_label=week_label(week),
        subject=subject,
        preheader=preheader,
        comparisons=views,
        archive_url=safe_url(archive_url) or base_url,
        base_url=base_url,
        postal_address=postal_address,
        slots=slots,
        votes=tuple(votes),
        recap=tuple(_recap_view(doc, base_url, community) for doc in recap),
        honeypot=link_marker(0) if link_marker is not None and links is not None else "",
        pixel=pixel,
    )


def _linked(
    view: ComparisonView, marker: Callable[[int], str], links: Mapping[tuple[str, str], int]
) -> ComparisonView:
    """``view`` with its links replaced by the markers of their link slots."""
    tools = tuple(
        replace(tool, url=marker(links[view.slug, tool.slug]))
        if tool.url and (view.slug, tool.slug) in links
        else tool
        for tool in view.tools
    )
    link = links.get((view.slug, ""))
    return replace(view, url=marker(link) if link is not None else view.url, tools=tools)


def _recap_view(
    doc: ComparisonDoc, fallback_url: str, community: Mapping[tuple[str, str], CommunityVotes]
) -> RecapView:
    lines = tuple(
        (tool.name, community[doc.slug, tool.slug].readers_line)
        for tool in doc.tools
        if (doc.slug, tool.slug) in community
    )
    return RecapView(doc.title, safe_url(doc.url) or fallback_url, lines)
