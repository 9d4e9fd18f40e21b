"""The "Would you ship it?" links of each tool: written into the template with slot markers,
signed per recipient.

A link is ``{base}/vote/`` + the voter slot (``Slot.VOTER``: ``{subscriber}.{edition}``) + the
token's literal middle (``.{card}.{tool}.s.``, ``subscribers.tokens.vote_token_middles``) + its
signature slot (``vote_marker(n)``). Templates print the links like any other URL, and MJML and
the CSS inliner see letters, digits and dots. Per recipient, one hash call gives every
signature (``TokenSigner.vote_signatures``) and each signature slot takes its 12 characters, so
a message costs one call and a few slices, and a merge provider's per-recipient values stay
short. Links are numbered ``2 × tool ordinal`` (Ship) and the next number (Skip).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableSequence, Sequence
from dataclasses import dataclass

from digest.render.slots import VOTE_BASE, Slot, marker, vote_marker
from digest.render.view import EditionView
from subscribers.tokens import TokenSigner, vote_slot, vote_token_head, vote_token_middles

SIGNATURE_CHARS = 12


def link_maker(
    base_url: str, positions: Mapping[str, int]
) -> Callable[[int, str, int], tuple[str, str]]:
    """``edition_view``'s ``vote_links``: the Ship and Skip URLs of a tool, with slot markers.
    ``positions`` gives each comparison's position in the edition."""
    prefix = f"{base_url}/vote/{marker(Slot.VOTER)}"

    def links(ordinal: int, comparison: str, tool: int) -> tuple[str, str]:
        ship, skip = vote_token_middles(positions[comparison], tool)
        return (
            f"{prefix}{ship}{vote_marker(2 * ordinal)}",
            f"{prefix}{skip}{vote_marker(2 * ordinal + 1)}",
        )

    return links


@dataclass(frozen=True, slots=True)
class VoteSlots:
    """The vote links of one compiled email: which signature slots it holds and where each
    one's signature sits in a subscriber's signature string."""

    edition_id: int
    numbers: tuple[int, ...]  # the links present (full cards only)
    offsets: tuple[int, ...]  # aligned: character offset of each signature
    stream_slots: int  # how many signatures to compute
    slot_count: int  # values a message needs: fixed slots and every link number

    def fill(
        self,
        signer: TokenSigner,
        subscriber_id: int,
        html_values: MutableSequence[str],
        text_values: MutableSequence[str],
    ) -> None:
        """Write ``subscriber_id``'s voter and signatures into the slot values (the
        per-recipient path; the values are URL-safe ASCII, the same in HTML and text)."""
        signatures = signer.vote_signatures(subscriber_id, self.edition_id, self.stream_slots)
        voter = vote_token_head(subscriber_id, self.edition_id)
        html_values[Slot.VOTER] = text_values[Slot.VOTER] = voter
        values = [signatures[at : at + SIGNATURE_CHARS] for at in self.offsets]
        if self.contiguous:  # every card's links: one slice assignment
            start = VOTE_BASE + self.numbers[0]
            html_values[start : start + len(values)] = values
            text_values[start : start + len(values)] = values
            return
        for number, value in zip(self.numbers, values, strict=True):
            html_values[VOTE_BASE + number] = text_values[VOTE_BASE + number] = value

    @property
    def contiguous(self) -> bool:
        numbers = self.numbers
        return bool(numbers) and numbers[-1] - numbers[0] == len(numbers) - 1


def vote_slots(
    view: EditionView,
    numbers: Sequence[int],
    *,
    positions: Mapping[str, int],
    edition_id: int,
) -> VoteSlots:
    """The vote slots of the links ``numbers`` of ``view`` (those its compiled email holds)."""
    slots = []
    for number in numbers:
        ordinal, skip = divmod(number, 2)
        comparison, tool = view.votes[ordinal]
        slots.append(vote_slot(positions[comparison], tool, "skip" if skip else "ship"))
    return VoteSlots(
        edition_id=edition_id,
        numbers=tuple(numbers),
        offsets=tuple(slot * SIGNATURE_CHARS for slot in slots),
        stream_slots=max(slots, default=-1) + 1,
        slot_count=VOTE_BASE + 2 * len(view.votes),
    )
