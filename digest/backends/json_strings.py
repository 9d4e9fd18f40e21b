"""A message body as a JSON string, escaped once per template rather than once per message.

A rendered message's body is its variant's template filled with this subscriber's values
(``digest.message.MergeParts``). JSON escapes a string character by character, so the escaped
body is the escaped literal text of the template with the escaped values in the slots: the
literal text (nearly all of a 60 KB digest) is escaped once per template, and every message
only escapes its values and lists the pieces (joined as the request is written). The result
is byte for byte what ``orjson.dumps(body)`` writes (tests compare the two). A message whose
body was replaced after rendering no longer matches its merge parts
(``OutgoingMessage.merged``) and is escaped as it is.

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
    def whole(cls, text: str) -> Escaped:
        escaped = _escaped(text)
        return cls([escaped], len(escaped))


@dataclass(frozen=True, slots=True)
class _EscapedTemplate:
    """A template's literal text escaped, split at its slots: the escaped body is
    ``literals[0] + value(slots[0]) + literals[1] + ... + literals[-1]`` (a literal is empty
    where two slots meet)."""

    literals: tuple[bytes, ...]  # one more than there are slots
    slots: tuple[int, ...]  # the value index of each slot, in body order
    literal_bytes: int

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
        return cls(tuple(literals), tuple(slots), sum(map(len, literals)))

    def fill(self, values: Sequence[str]) -> Escaped:
        """The template filled with ``values``, escaped, in pieces (joined only as the request
        is written): each value escaped once (all in one call), placed at every slot that
        uses it."""
        slots = self.slots
        if not slots:
            return Escaped(list(self.literals), self.literal_bytes)
        escaped = _escaped_all(values)
        placed = [escaped[slots[0]]] if len(slots) == 1 else itemgetter(*slots)(escaped)
        pieces: list[bytes] = [b""] * (2 * len(slots) + 1)
        pieces[0::2] = self.literals
        pieces[1::2] = placed
        return Escaped(pieces, self.literal_bytes + sum(map(len, placed)))


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


def escaped_body(template: BodyTemplate, values: Sequence[str]) -> Escaped:
    """``template.fill(values)`` JSON-escaped, without the quotes."""
    return _escaped_template(template).fill(values)


def escaped_bodies(message: OutgoingMessage) -> tuple[Escaped, Escaped]:
    """The HTML and the text body of ``message`` JSON-escaped, without the quotes: from the
    templates and values they were made from, or, for a message without merge parts or with
    a body replaced after rendering (``OutgoingMessage.merged``), from the bodies themselves."""
    merge = message.merged
    if merge is None:
        return Escaped.whole(message.html), Escaped.whole(message.text)
    return (
        escaped_body(merge.html_template, merge.html_values),
        escaped_body(merge.text_template, merge.text_values),
    )
