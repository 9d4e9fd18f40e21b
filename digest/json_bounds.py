"""Bounds on JSON documents, checked before any parser sees them.

A document of a few thousand ``[`` makes Python's ``json`` raise ``RecursionError`` (and would
make any recursive consumer do the same), and a big one costs memory in proportion. Every JSON
that comes from outside (content files and URLs, provider webhooks) is checked here first:
``nesting_problem`` scans the bytes, strings removed, for the deepest ``[``/``{`` nesting without
building anything, and stops at ``MAX_DEPTH``.
"""

from __future__ import annotations

import re
from itertools import accumulate

MAX_DEPTH = 64  # a comparison document nests 5 deep, provider events under 10
MAX_DOCUMENT_BYTES = 10 * 1024 * 1024

# A JSON string (escapes included), in the unrolled form that scans each byte once.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")
_SQUARE = bytes.maketrans(b"{}", b"[]")
_DELTA = [0] * 256
_DELTA[ord("[")] = 1
_DELTA[ord("]")] = -1


def nesting_depth(data: bytes, *, stop_after: int = MAX_DEPTH) -> int:
    """The deepest nesting of arrays and objects in ``data`` (0 for a scalar), exact up to
    ``stop_after`` and at least ``stop_after + 1`` beyond it.

    Each pass of ``replace`` peels the innermost level (``[]`` pairs, in C); what is left after
    ``stop_after`` passes, or unbalanced, is measured with a running sum.
    """
    brackets = _NOT_BRACKET.sub(b"", _STRING.sub(b"", data)).translate(_SQUARE)
    peeled = 0
    while brackets and peeled <= stop_after:
        inner = brackets.replace(b"[]", b"")
        if len(inner) == len(brackets):
            break
        brackets, peeled = inner, peeled + 1
    return peeled + max(0, max(accumulate(map(_DELTA.__getitem__, brackets)), default=0))


def bounds_problem(
    data: bytes, *, max_depth: int = MAX_DEPTH, max_bytes: int = MAX_DOCUMENT_BYTES
) -> str | None:
    """Why ``data`` must not be parsed, as ``too deeply nested (limit N)`` or ``is N bytes;
    the limit is M``; None when it is within bounds."""
    if len(data) > max_bytes:
        return f"is {len(data)} bytes; the limit is {max_bytes}"
    if nesting_depth(data, stop_after=max_depth) > max_depth:
        return f"too deeply nested (limit {max_depth})"
    return None
