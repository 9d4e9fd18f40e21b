"""Tracked links: the edition's link table, and the link slots of a compiled email.

An edition's *link table* numbers every link its emails can carry: link 0 is the honeypot (a
link no person can see or reach, ``HONEYPOT``), then for each comparison, in the edition's
order, the comparison's own link ("Read the full comparison", the folded entry) and each
tool's link, and last the open pixel (``LinkKind.OPEN``: an image, answered with a GIF instead
of a redirect). ``link_table`` is the one rule that numbers them; the edition stores its table
when it is created (``digest.editions.service``), and a tracked link's token carries only the
number, so the redirect's target never comes from the URL. The pixel comes last so that the
content links of a table frozen before it existed keep their numbers.

``LinkSlots`` fills the link slots of one compiled email per recipient: with
``{base_url}/r/{token}`` when the recipient is tracked, with the plain URLs otherwise (and in
the archive copy). The pixel's slot holds the whole ``<img>`` element (``PIXEL_HEAD``, the
URL, ``PIXEL_TAIL``) in the HTML part of a tracked recipient's message and nothing otherwise:
an opted-out recipient and the archive get no image at all, and the text part never has one.
Unsubscribe, preferences and vote links are not in the table and are never tracked.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, MutableSequence, Sequence
from dataclasses import dataclass

from digest.content.document import ComparisonDoc
from digest.render.view import safe_url
from subscribers.tokens import TokenSigner, click_token_parts

HONEYPOT = 0
TOKEN_RESERVE = 48  # characters a click token may take, for the size budget
# The open pixel around its URL: a 1x1 transparent GIF that takes no room, hidden from screen
# readers by its empty alt text. Kept short: it is in every tracked message.
PIXEL_HEAD = '<img src="'
PIXEL_TAIL = (
    '" width="1" height="1" alt="" border="0" '
    'style="display:block;width:1px;height:1px;border:0;margin:0;padding:0;opacity:0">'
)
PIXEL_RESERVE = len(PIXEL_HEAD) + len(PIXEL_TAIL)  # what the element adds to its URL


class LinkKind(enum.StrEnum):
    HONEYPOT = "honeypot"
    COMPARISON = "comparison"
    TOOL = "tool"
    OPEN = "open"


@dataclass(frozen=True, slots=True)
class LinkTarget:
    """One entry of an edition's link table."""

    link: int
    kind: LinkKind
    url: str
    comparison: int | None = None  # the comparison's position in the edition
    tool: str | None = None  # the tool's slug (tool links)


def link_table(comparisons: Sequence[ComparisonDoc], base_url: str) -> tuple[LinkTarget, ...]:
    """The link table of an edition carrying ``comparisons`` in this order. A comparison whose
    URL is not http(s) links to ``base_url`` (as its card does); a tool without one has no
    link. The open pixel is last (its URL is never followed: the route answers an image)."""
    table = [LinkTarget(HONEYPOT, LinkKind.HONEYPOT, f"{base_url}/")]
    for position, doc in enumerate(comparisons):
        url = safe_url(doc.url) or base_url
        table.append(LinkTarget(len(table), LinkKind.COMPARISON, url, position))
        for tool in doc.tools:
            tool_url = safe_url(tool.url)
            if tool_url:
                table.append(LinkTarget(len(table), LinkKind.TOOL, tool_url, position, tool.slug))
    table.append(LinkTarget(len(table), LinkKind.OPEN, f"{base_url}/"))
    return tuple(table)


def open_link(table: Sequence[LinkTarget]) -> int | None:
    """The number of the open pixel in ``table`` (None: a table without one)."""
    return table[-1].link if table and table[-1].kind == LinkKind.OPEN else None


def link_ids(
    table: Sequence[LinkTarget], positions: Mapping[str, int]
) -> dict[tuple[str, str], int]:
    """``(comparison slug, tool slug or "")`` -> link, for a renderer's cards; ``positions``
    maps each comparison's slug to its position in the edition."""
    slugs = {position: slug for slug, position in positions.items()}
    ids: dict[tuple[str, str], int] = {}
    for target in table:
        if target.comparison is not None:
            ids[slugs[target.comparison], target.tool or ""] = target.link
    return ids


@dataclass(frozen=True, slots=True)
class LinkSlots:
    """The link slots of one compiled email: ``base`` is link slot 0's value index."""

    edition_id: int
    base: int
    numbers: tuple[int, ...]  # link slots present in the email (links of the table)
    plain: tuple[str, ...]  # the untracked URL of each present slot ("" for the pixel)
    plain_html: tuple[str, ...]
    prefix: str  # "https://…/r/"
    prefix_html: str
    # Per link: its number and the URL's text around the subscriber and the signature
    # (HTML-escaped prefix, plain prefix, and what follows the subscriber), joined once.
    parts: tuple[tuple[int, str, str, str], ...] = ()
    pixel: int | None = None  # the open pixel's link, when the email holds its slot

    @property
    def slot_count(self) -> int:
        return self.base + 1 + max(self.numbers, default=-1)

    def fill_plain(
        self, html_values: MutableSequence[str], text_values: MutableSequence[str]
    ) -> None:
        """Write the untracked URLs (an opted-out recipient, the archive copy); the pixel's
        slot stays empty."""
        base = self.base
        for number, url, url_html in zip(self.numbers, self.plain, self.plain_html, strict=True):
            html_values[base + number] = url_html
            text_values[base + number] = url

    def fill(
        self,
        signer: TokenSigner,
        subscriber_id: int,
        html_values: MutableSequence[str],
        text_values: MutableSequence[str],
    ) -> None:
        """Write ``subscriber_id``'s tracked URLs and open pixel (the per-recipient path)."""
        signatures = signer.click_signatures(self.edition_id, subscriber_id, max(self.numbers) + 1)
        subscriber, base = str(subscriber_id), self.base
        # Tokens are URL-safe ASCII: they need no escaping in HTML or text.
        for number, head_html, head, tail in self.parts:
            signature = signatures[number * 12 : number * 12 + 12]
            text_values[base + number] = url = f"{head}{subscriber}{tail}{signature}"
            html_values[base + number] = (
                url if head_html is head else f"{head_html}{subscriber}{tail}{signature}"
            )
        pixel = self.pixel
        if pixel is not None:
            html_values[base + pixel] = PIXEL_HEAD + html_values[base + pixel] + PIXEL_TAIL
            text_values[base + pixel] = ""


def build_link_slots(
    table: Sequence[LinkTarget],
    *,
    numbers: Sequence[int],
    base: int,
    edition_id: int,
    base_url: str,
) -> LinkSlots:
    """The link slots ``numbers`` (those a compiled email holds) of ``table``; the open
    pixel's, when among them, gets the whole image element (see ``LinkSlots.fill``)."""
    # Imported here: editions number their links with this module and must not load the
    # template engine (``digest status`` stays light).
    from digest.render.compose import escape_html

    pixel = open_link(table)
    if pixel not in numbers:
        pixel = None
    plain = tuple("" if number == pixel else table[number].url for number in numbers)
    prefix = f"{base_url}/r/"
    prefix_html = escape_html(prefix)
    parts = []
    for number in numbers:
        head, tail = click_token_parts(edition_id, number)
        plain_head = prefix + head
        # The same string object when escaping changes nothing: one URL serves both parts.
        html_head = plain_head if prefix_html == prefix else prefix_html + head
        parts.append((number, html_head, plain_head, tail))
    return LinkSlots(
        edition_id=edition_id,
        base=base,
        numbers=tuple(numbers),
        plain=plain,
        plain_html=tuple(escape_html(url) for url in plain),
        prefix=prefix,
        prefix_html=prefix_html,
        parts=tuple(parts),
        pixel=pixel,
    )
