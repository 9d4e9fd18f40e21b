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

from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import NamedTuple

import orjson

from digest.message import BodyTemplate, OutgoingMessage


class Escaped(NamedTuple):
    """A string JSON-escaped, without its quotes: ``b"".join(pieces)``, ``size`` bytes long."""

    pieces: list[bytes]
    size: int

    @classmethod
    def of(cls, text: str) -> Escaped:
        escaped = _escaped(text)
        return cls([escaped], len(escaped))


@dataclass(frozen=True, slots=True)
class _EscapedTemplate:
    """A template's literal text escaped, split at its slots: the escaped body is
    ``literals[0] + value(slots[0]) + literals[1] + ... + literals[-1]`` (a literal is empty
    where two slots meet)."""

    literals: tuple[bytes, ...]  # one more than there are slots
    slots: tuple[int, ...]  # the value index of each slot, in body order
    literal_length: int  # characters of literal text (of the unescaped body)
    literal_bytes: int  # bytes of escaped literal text

    @classmethod
    def of(cls, template: BodyTemplate) -> _EscapedTemplate:
        literals = [b""]
        slots: list[int] = []
        slot_at = dict(template.positions)
        for position, chunk in enumerate(template.chunks):
            if chunk is None:
                slots.append(slot_at[position])
                literals.append(b"")
            else:
                literals[-1] += _escaped(chunk)
        return cls(tuple(literals), tuple(slots), template.size, sum(map(len, literals)))

    def fill(self, body: str, values: Sequence[str]) -> Escaped | None:
        """``body`` escaped; None when ``body`` is not this template filled with ``values``
        (its length differs: replaced after rendering)."""
        slots = self.slots
        if not slots:
            if len(body) != self.literal_length:
                return None
            return Escaped(list(self.literals), self.literal_bytes)
        pick = (lambda items: [items[slots[0]]]) if len(slots) == 1 else itemgetter(*slots)
        if len(body) != self.literal_length + sum(map(len, pick(values))):
            return None
        placed = pick(_escaped_all(values))  # each value escaped once, placed at every use
        pieces: list[bytes] = [b""] * (2 * len(slots) + 1)
        pieces[0::2] = self.literals
        pieces[1::2] = placed
        return Escaped(pieces, self.literal_bytes + len(b"".join(placed)))


# Templates by identity: every message of a variant shares its two template objects, and
# hashing a template by value (hundreds of chunks) would cost more than filling it.
_ESCAPED: dict[int, tuple[BodyTemplate, _EscapedTemplate]] = {}
_ESCAPED_MAX = 256


def _escaped_template(template: BodyTemplate) -> _EscapedTemplate:
    known = _ESCAPED.get(id(template))
    if known is None or known[0] is not template:
        if len(_ESCAPED) >= _ESCAPED_MAX:
            _ESCAPED.clear()
        known = _ESCAPED[id(template)] = (template, _EscapedTemplate.of(template))
    return known[1]


def _escaped(text: str) -> bytes:
    return orjson.dumps(text)[1:-1]


def _escaped_all(values: Sequence[str]) -> list[bytes]:
    """Each value escaped, in one call: in the encoded array ``","`` occurs only between two
    elements (a quote inside an element is always written ``\\"``)."""
    if not values:
        return []
    return orjson.dumps(list(values))[2:-2].split(b'","')


def escaped_pieces(body: str, template: BodyTemplate | None, values: Sequence[str]) -> Escaped:
    """``body`` JSON-escaped, without the quotes, in pieces: from ``template`` and ``values``
    when ``body`` was made from them (its length is checked, so a body replaced after
    rendering is escaped as it is), else from ``body`` itself."""
    if template is not None:
        escaped = _escaped_template(template).fill(body, values)
        if escaped is not None:
            return escaped
    return Escaped.of(body)


def body_pieces(message: OutgoingMessage) -> tuple[Escaped, Escaped]:
    """The HTML and the text body of ``message`` JSON-escaped (see ``escaped_pieces``)."""
    merge = message.merge
    if merge is None:
        return Escaped.of(message.html), Escaped.of(message.text)
    return (
        escaped_pieces(message.html, merge.html_template, merge.html_values),
        escaped_pieces(message.text, merge.text_template, merge.text_values),
    )
