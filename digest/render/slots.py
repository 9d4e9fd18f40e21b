"""Per-recipient slots: compile once with markers, then fill them with a single string join.

A compiled part (the HTML after MJML, the plain text after Jinja) contains a *marker* wherever
a per-recipient value goes. ``SlotTemplate.parse`` splits the part on its markers once into
literal chunks; ``fill`` then builds a recipient's copy with one ``str.join``: no template
engine, no MJML, no scanning of the document per recipient.

Markers are ``x<nonce>x<slot>x`` with a random 128-bit nonce drawn once per process. They are
made of ASCII letters and digits only, so Jinja's escaper, MJML, the CSS inliner and URL
contexts all pass them through unchanged, and content cannot forge one: it would have to
guess the nonce, which never appears in any output (every marker is replaced). ``parse``
also refuses a part in which a slot is missing, so a template that lost a slot fails at
compile time, not in a subscriber's inbox.

A part with "Would you ship it?" links holds two more kinds: ``Slot.VOTER``, the head of every
vote token of the message (``{subscriber}.{edition}``), and numbered *signature slots*
(``vote_marker(n)``, value index ``VOTE_BASE + n``), one per link, each filled with that link's
12-character signature (``digest.render.votes``). The rest of each link is literal text.

A part with tracked links also holds numbered *link slots* (``link_marker(n)``), one per entry
of the edition's link table (``digest.render.links``), each filled with a tracked or a plain
URL. Link slot ``n`` has the value index ``link_base + n``, where ``link_base`` (given to
``parse``) comes after every signature slot of the email.
"""

from __future__ import annotations

import enum
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from digest.errors import InputError
from digest.message import BodyTemplate
from digest.render.view import SlotMarkers


class Slot(enum.IntEnum):
    """The per-recipient values, in the order ``SlotTemplate.fill`` takes them."""

    GREETING = 0
    UNSUBSCRIBE_URL = 1
    PREFERENCES_URL = 2
    VOTER = 3  # only in a part with vote links


REQUIRED = (Slot.GREETING, Slot.UNSUBSCRIBE_URL, Slot.PREFERENCES_URL)
VOTE_BASE = len(Slot)
_NONCE = secrets.token_hex(16)


def marker(slot: Slot, nonce: str = _NONCE) -> str:
    return f"x{nonce}x{slot.name.lower().replace('_', '')}x"


def markers(nonce: str = _NONCE) -> SlotMarkers:
    """The markers templates print (``slots.greeting`` and so on)."""
    return SlotMarkers(
        greeting=marker(Slot.GREETING, nonce),
        unsubscribe_url=marker(Slot.UNSUBSCRIBE_URL, nonce),
        preferences_url=marker(Slot.PREFERENCES_URL, nonce),
        voter=marker(Slot.VOTER, nonce),
    )


def vote_marker(number: int, nonce: str = _NONCE) -> str:
    """The marker of the signature of vote link ``number`` of the email."""
    return f"x{nonce}xvote{number}x"


def link_marker(number: int, nonce: str = _NONCE) -> str:
    """The marker of link slot ``number`` (link ``number`` of the edition's link table)."""
    return f"x{nonce}xlink{number}x"


def _pattern(nonce: str) -> re.Pattern[str]:
    names = "|".join(slot.name.lower().replace("_", "") for slot in Slot)
    return re.compile(f"x{re.escape(nonce)}x({names}|(?:vote|link)[0-9]{{1,5}})x")


def _index(name: str, link_base: int) -> int:
    found = _BY_NAME.get(name)
    if found is not None:
        return int(found)
    if name.startswith("link"):
        return link_base + int(name.removeprefix("link"))
    return VOTE_BASE + int(name.removeprefix("vote"))


_BY_NAME = {slot.name.lower().replace("_", ""): slot for slot in Slot}


class SlotError(InputError, ValueError):
    """A compiled part lacks a required slot (the template lost it)."""


@dataclass(frozen=True, slots=True)
class SlotTemplate(BodyTemplate):
    """A compiled part split on its markers (``digest.message.BodyTemplate``, the shape a
    message carries to the backends); ``positions`` index ``Slot`` values, stored as plain
    ints because ``fill`` runs once per recipient. Value indices from ``link_base`` on are
    link slots."""

    link_base: int = 1 << 30

    @classmethod
    def parse(
        cls,
        compiled: str,
        *,
        required: Sequence[Slot] = REQUIRED,
        nonce: str = _NONCE,
        link_base: int | None = None,
    ) -> SlotTemplate:
        """Split ``compiled`` on the markers of ``nonce``; every ``required`` slot must occur.
        ``link_base`` is the value index of link slot 0 (default: after this part's highest
        signature slot)."""
        pattern = _pattern(nonce)
        if link_base is None:
            votes = [int(m[4:]) for m in pattern.findall(compiled) if m.startswith("vote")]
            link_base = VOTE_BASE + 1 + max(votes, default=-1)
        pieces = pattern.split(compiled)
        chunks: list[str | None] = []
        positions: list[tuple[int, int]] = []
        for index, piece in enumerate(pieces):
            if index % 2 == 0:
                if piece:
                    chunks.append(piece)
            else:
                positions.append((len(chunks), _index(piece, link_base)))
                chunks.append(None)
        missing = set(required) - {Slot(slot) for _, slot in positions if slot < VOTE_BASE}
        if missing:
            names = ", ".join(sorted(slot.name.lower() for slot in missing))
            raise SlotError(f"the compiled template has no slot for: {names}")
        return cls(tuple(chunks), tuple(positions), link_base)

    def fill_named(self, values: Mapping[Slot, str], links: Sequence[str] = ()) -> str:
        """Fixed values by name, empty signature slots, and ``links`` for the link slots."""
        votes = [""] * (1 + max(self.vote_numbers, default=-1))
        if self.link_numbers:
            votes = [""] * (self.link_base - VOTE_BASE)
        return self.fill([*(values.get(slot, "") for slot in Slot), *votes, *links])

    @property
    def slots(self) -> tuple[Slot, ...]:
        """The fixed slots in document order."""
        return tuple(Slot(index) for _, index in self.positions if index < VOTE_BASE)

    @property
    def vote_numbers(self) -> tuple[int, ...]:
        """The vote links whose signature slots this part holds, in ascending order."""
        base = self.link_base
        return tuple(sorted({i - VOTE_BASE for _, i in self.positions if VOTE_BASE <= i < base}))

    @property
    def link_numbers(self) -> tuple[int, ...]:
        """The link slots this part holds, in ascending order."""
        base = self.link_base
        return tuple(sorted({i - base for _, i in self.positions if i >= base}))
