"""Content variants: which comparisons a subscriber gets, and the key that names that choice.

A subscriber who follows categories gets the comparisons having at least one tool in a
followed category; following none means following all. Category names match
case-insensitively (``developer tools`` follows ``Developer Tools``). Subscribers whose choice
selects the same comparisons share one variant, named by a stable hash of the selected slugs
in edition order, so a key computed in one process means the same in another.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from itertools import combinations

from digest.content.document import ComparisonDoc

KEY_LENGTH = 16
# Above this many distinct categories in one edition, ``key_to_categories`` stops enumerating.
MAX_ENUMERATED_CATEGORIES = 16


def folded(categories: Sequence[str]) -> frozenset[str]:
    return frozenset(" ".join(name.split()).casefold() for name in categories)


def select(comparisons: Sequence[ComparisonDoc], categories: Sequence[str]) -> list[ComparisonDoc]:
    """The comparisons for a subscriber following ``categories`` (empty: all), order kept."""
    followed = folded(categories)
    if not followed:
        return list(comparisons)
    return [doc for doc in comparisons if not followed.isdisjoint(folded(list(doc.categories)))]


def variant_key(slugs: Sequence[str]) -> str:
    """A stable name for a selection: SHA-256 of the slugs in order, shortened."""
    digest = hashlib.sha256("\n".join(slugs).encode("utf-8")).hexdigest()
    return digest[:KEY_LENGTH]


def key_of(comparisons: Sequence[ComparisonDoc]) -> str:
    return variant_key([doc.slug for doc in comparisons])


def category_choices(comparisons: Sequence[ComparisonDoc]) -> Iterator[tuple[str, ...]]:
    """Every non-empty set of the edition's categories, smallest first.

    Together with the empty choice ("all") these produce every selection a subscriber can
    get, which is how a key is resolved back to its comparisons in a fresh process.
    """
    names = sorted({name for doc in comparisons for name in doc.categories}, key=str.casefold)
    if len(names) > MAX_ENUMERATED_CATEGORIES:
        raise ValueError(
            f"{len(names)} categories in one edition; variant keys cannot be enumerated"
        )
    for size in range(1, len(names) + 1):
        yield from combinations(names, size)
