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

Besides the fixed ``Slot`` values, a part may hold numbered *vote slots*, one per tool of the
email (``vote_marker(n)``): each is filled with that tool's "Would you ship it?" links, or
with nothing for a subscriber who turned them off. Vote slot ``n`` has the value index
``VOTE_BASE + n``.
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
    )


def vote_marker(ordinal: int, nonce: str = _NONCE) -> str:
    """The marker of vote slot ``ordinal`` (the ``ordinal``-th tool of the email)."""
    return f"x{nonce}xvote{ordinal}x"


def _pattern(nonce: str) -> re.Pattern[str]:
    names = "|".join(slot.name.lower().replace("_", "") for slot in Slot)
    return re.compile(f"x{re.escape(nonce)}x({names}|vote[0-9]{{1,5}})x")


def _index(name: str) -> int:
    return VOTE_BASE + int(name[4:]) if name.startswith("vote") else int(_BY_NAME[name])


_BY_NAME = {slot.name.lower().replace("_", ""): slot for slot in Slot}


class SlotError(InputError, ValueError):
    """A compiled part lacks a required slot (the template lost it)."""


@dataclass(frozen=True, slots=True)
class SlotTemplate(BodyTemplate):
    """A compiled part split on its markers (``digest.message.BodyTemplate``, the shape a
    message carries to the backends); ``positions`` index ``Slot`` values, stored as plain
    ints because ``fill`` runs once per recipient."""

    @classmethod
    def parse(
        cls, compiled: str, *, required: Sequence[Slot] = tuple(Slot), nonce: str = _NONCE
    ) -> SlotTemplate:
        """Split ``compiled`` on the markers of ``nonce``; every ``required`` slot must occur."""
        pieces = _pattern(nonce).split(compiled)
        chunks: list[str | None] = []
        positions: list[tuple[int, int]] = []
        for index, piece in enumerate(pieces):
            if index % 2 == 0:
                if piece:
                    chunks.append(piece)
            else:
                positions.append((len(chunks), _index(piece)))
                chunks.append(None)
        missing = set(required) - {Slot(slot) for _, slot in positions if slot < VOTE_BASE}
        if missing:
            names = ", ".join(sorted(slot.name.lower() for slot in missing))
            raise SlotError(f"the compiled template has no slot for: {names}")
        return cls(tuple(chunks), tuple(positions))

    def fill_named(self, values: Mapping[Slot, str]) -> str:
        votes = [""] * (1 + max(self.vote_ordinals, default=-1))
        return self.fill([*(values[slot] for slot in Slot), *votes])

    @property
    def slots(self) -> tuple[Slot, ...]:
        """The fixed slots in document order."""
        return tuple(Slot(index) for _, index in self.positions if index < VOTE_BASE)

    @property
    def vote_ordinals(self) -> tuple[int, ...]:
        """The vote slots this part holds, in ascending order."""
        return tuple(sorted({i - VOTE_BASE for _, i in self.positions if i >= VOTE_BASE}))
