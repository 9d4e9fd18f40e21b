"""A message body as a JSON string, escaped once per template rather than once per message.

A rendered message's body is its variant's template filled with this subscriber's values
(``digest.message.MergeParts``). JSON escapes a string character by character, so the escaped
body is the escaped literal text of the template with the escaped values in the slots: the
literal text (nearly all of a 60 KB digest) is escaped once per template and every message
costs a join of bytes. The result is byte for byte what ``orjson.dumps(body)`` writes
(tests compare the two).

Besides the escaping, this spares each message the buffer ``orjson.dumps`` reserves for the
worst case of a long string (four bytes a character, rounded up to a power of two: 512 KB for
a digest, above glibc's mmap threshold, so mapped and unmapped again for every message).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter

import orjson

from digest.message import BodyTemplate, OutgoingMessage


@dataclass(frozen=True, slots=True)
class _EscapedTemplate:
    """A template's literal chunks escaped, and how to lay out a message's escaped values
    among them: piece ``k`` of the body is ``(literals + values)[order[k]]``."""

    literals: list[bytes]
    order: tuple[int, ...]
    slots: tuple[int, ...]  # the value index of each slot, in body order
    literal_length: int

    @classmethod
    @functools.lru_cache(maxsize=256)
    def of(cls, template: BodyTemplate) -> _EscapedTemplate:
        literals: list[bytes] = []
        order: list[int] = []
        slot_at = dict(template.positions)
        count = len(template.literals)
        for position, chunk in enumerate(template.chunks):
            if chunk is None:
                order.append(count + slot_at[position])
            else:
                order.append(len(literals))
                literals.append(_escaped(chunk))
        slots = tuple(slot_at[position] for position in sorted(slot_at))
        return cls(literals, tuple(order), slots, template.size)

    def fill(self, body: str, values: Sequence[str]) -> list[bytes] | None:
        """The escaped pieces of ``body``; None when ``body`` is not this template filled
        with ``values`` (its length differs: replaced after rendering)."""
        if not self.slots:
            return list(self.literals) if len(body) == self.literal_length else None
        if len(self.slots) == 1:
            picked: Sequence[str] = [values[self.slots[0]]]
        else:
            picked = itemgetter(*self.slots)(values)
        if len(body) != self.literal_length + sum(map(len, picked)):
            return None
        combined = self.literals + _escaped_all(values)
        if len(self.order) == 1:
            return [combined[self.order[0]]]
        return list(itemgetter(*self.order)(combined))


def _escaped(text: str) -> bytes:
    return orjson.dumps(text)[1:-1]


def _escaped_all(values: Sequence[str]) -> list[bytes]:
    """Each value escaped, in one call: in the encoded array ``","`` occurs only between two
    elements (a quote inside an element is always written ``\\"``)."""
    if not values:
        return []
    return orjson.dumps(list(values))[2:-2].split(b'","')


def escaped_pieces(body: str, template: BodyTemplate | None, values: Sequence[str]) -> list[bytes]:
    """``body`` JSON-escaped, without the quotes, as pieces to join: from ``template`` and
    ``values`` when ``body`` was made from them (its length is checked, so a body replaced
    after rendering is escaped as it is), else from ``body`` itself."""
    if template is not None:
        pieces = _EscapedTemplate.of(template).fill(body, values)
        if pieces is not None:
            return pieces
    return [_escaped(body)]


def body_pieces(message: OutgoingMessage) -> tuple[list[bytes], list[bytes]]:
    """The HTML and the text body of ``message`` JSON-escaped (see ``escaped_pieces``)."""
    merge = message.merge
    if merge is None:
        return [_escaped(message.html)], [_escaped(message.text)]
    return (
        escaped_pieces(message.html, merge.html_template, merge.html_values),
        escaped_pieces(message.text, merge.text_template, merge.text_values),
    )
