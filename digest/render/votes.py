"""The "Would you ship it?" links of each tool: built once per compiled email, filled per
recipient.

Each tool of a card has a vote slot (``digest.render.slots.vote_marker``). Its value is the
whole row, the question with a Ship and a Skip link, so a subscriber who turned vote links off
gets an empty slot and no row. The row's markup comes from the templates
(``email/partials/vote.html.j2`` and ``vote.txt.j2``), rendered once per tool when the email
is compiled and split around its two URLs; per recipient only the two signed tokens are made
(``TokenSigner.vote_tokens``) and joined in.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, MutableSequence, Sequence
from dataclasses import dataclass, field

import jinja2
import markupsafe

from digest.render.slots import VOTE_BASE
from digest.render.view import EditionView
from subscribers.tokens import (
    TokenSigner,
    vote_day,
    vote_slot,
    vote_token_head,
    vote_token_middles,
)

HTML_ROW = "email/partials/vote.html.j2"
TEXT_ROW = "email/partials/vote.txt.j2"


@dataclass(frozen=True, slots=True)
class VoteRow:
    """One tool's row split around its URLs: ``html[0] + ship + html[1] + skip + html[2]``,
    and where its signatures sit in a subscriber's stream (``slot``: Ship; Skip is next)."""

    comparison: int
    tool: int
    slot: int
    html: tuple[str, str, str]
    text: tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class VoteRows:
    """The vote rows of one compiled email, for the tools that have a card in it.

    A link is the prefix, the token's head (``vote_token_head``), its middle
    (``vote_token_middles``) and its signature; everything but the head and the signatures is
    joined once per day (``_parts``), so a recipient costs one hash call and two joins per row.
    """

    edition_id: int
    prefix: str  # "https://…/vote/"
    prefix_html: str
    ordinals: tuple[int, ...]  # vote slots present in the email
    rows: tuple[VoteRow, ...]  # aligned with ``ordinals``
    slot_count: int  # fixed slots + every vote slot of the view
    _by_day: dict[int, list[tuple[int, int, tuple[str, ...], tuple[str, ...]]]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @property
    def tools(self) -> tuple[tuple[int, int], ...]:
        """(comparison, tool) positions of each row."""
        return tuple((row.comparison, row.tool) for row in self.rows)

    def values(self) -> tuple[list[str], list[str]]:
        """Empty HTML and text values for every slot (what an opted-out recipient gets)."""
        return [""] * self.slot_count, [""] * self.slot_count

    def _parts(self, day: int) -> list[tuple[int, int, tuple[str, ...], tuple[str, ...]]]:
        parts = self._by_day.get(day)
        if parts is None:
            parts = []
            for ordinal, row in zip(self.ordinals, self.rows, strict=True):
                ship, skip = vote_token_middles(row.comparison, row.tool, day)
                html, text = row.html, row.text
                parts.append(
                    (
                        VOTE_BASE + ordinal,
                        row.slot * 12,
                        (
                            html[0] + self.prefix_html,
                            ship,
                            html[1] + self.prefix_html,
                            skip,
                            html[2],
                        ),
                        (text[0] + self.prefix, ship, text[1] + self.prefix, skip, text[2]),
                    )
                )
            self._by_day.clear()  # one day at a time
            self._by_day[day] = parts
        return parts

    def fill(
        self,
        signer: TokenSigner,
        subscriber_id: int,
        html_values: MutableSequence[str],
        text_values: MutableSequence[str],
    ) -> None:
        """Write ``subscriber_id``'s rows into the slot values (the per-recipient path).
        Tokens are URL-safe ASCII: they need no escaping in HTML or text."""
        if not self.rows:
            return
        day = vote_day()
        parts = self._parts(day)
        last = max(row.slot for row in self.rows) + 2
        signatures = signer.vote_signatures(subscriber_id, self.edition_id, day, last)
        head = vote_token_head(subscriber_id, self.edition_id)
        for index, at, (a, s, b, k, c), (ta, _s, tb, _k, tc) in parts:
            ship, skip = signatures[at : at + 12], signatures[at + 12 : at + 24]
            html_values[index] = f"{a}{head}{s}{ship}{b}{head}{k}{skip}{c}"
            text_values[index] = f"{ta}{head}{s}{ship}{tb}{head}{k}{skip}{tc}"


def _split(rendered: str, ship: str, skip: str) -> tuple[str, str, str]:
    before, found_ship, rest = rendered.partition(ship)
    between, found_skip, after = rest.partition(skip)
    if not (found_ship and found_skip) or ship in after or skip in after:
        raise ValueError("a vote row template must print ship_url and skip_url once each")
    return before, between, after


def build_vote_rows(
    environment: jinja2.Environment,
    view: EditionView,
    *,
    ordinals: Sequence[int],
    positions: Mapping[str, int],
    edition_id: int,
    base_url: str,
) -> VoteRows:
    """The rows of the vote slots ``ordinals`` of ``view`` (those its compiled email holds);
    ``positions`` gives each comparison's position in the edition."""
    ship, skip = f"s{secrets.token_hex(8)}", f"k{secrets.token_hex(8)}"
    cards = {comparison.slug: comparison for comparison in view.comparisons + view.folded}
    html_template = environment.get_template(HTML_ROW)
    text_template = environment.get_template(TEXT_ROW)
    rows = []
    for ordinal in ordinals:
        slug, position = view.votes[ordinal]
        card = cards[slug]
        context = {
            "ship_url": ship,
            "skip_url": skip,
            "tool": card.tools[position].name,
            "comparison": card.title,
        }
        rows.append(
            VoteRow(
                comparison=positions[slug],
                tool=position,
                slot=vote_slot(positions[slug], position, "ship"),
                html=_split(html_template.render(context), ship, skip),
                text=_split(text_template.render(context), ship, skip),
            )
        )
    prefix = f"{base_url}/vote/"
    return VoteRows(
        edition_id=edition_id,
        prefix=prefix,
        prefix_html=str(markupsafe.escape(prefix)),
        ordinals=tuple(ordinals),
        rows=tuple(rows),
        slot_count=VOTE_BASE + len(view.votes),
    )
