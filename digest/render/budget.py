"""The size budget: no email is ever clipped, however many comparisons an edition carries.

Gmail clips an HTML part over 102 KB and hides the rest, the unsubscribe link included. The
renderer therefore measures the compiled HTML of a variant (its literal text plus the largest
value each per-recipient slot can take: a tracked link's slot its prefix and token, the open
pixel's slot its whole image element too) against ``settings.email_size_budget_kb`` (KiB). When
the full edition is over, the last comparisons become compact one-line entries ("And 6 more
verdicts this week", each linking to the web); in the extreme, when even one line each is too
much, the rest are only counted, with the link to the archive.

``fit`` finds the most full cards (then the most one-line entries) that fit with a binary
search over compiles; sizes grow with either count, and MJML compiles are cached by source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

KIB = 1024
# The most a slot's value adds per occurrence: a 40-character first name as character
# references, or a link prefix plus a signed token.
SLOT_RESERVE = 512
# The vote links' values: the voter (two ids of up to 19 digits) and one signature each.
VOTER_RESERVE = 40
SIGNATURE_RESERVE = 12


@dataclass(frozen=True, slots=True)
class Fit:
    """What the budget allowed: full cards, one-line entries, and the measured size."""

    full: int
    listed: int
    total: int
    size: int  # bytes of the HTML with the largest slot values
    budget: int  # bytes

    @property
    def folded(self) -> int:
        """Comparisons without a full card."""
        return self.total - self.full

    def report(self) -> str:
        """One line for the preview and ``send --dry-run``."""
        head = f"HTML {self.size / KIB:.1f} KB of a {self.budget / KIB:.0f} KB budget"
        if not self.folded:
            return f"{head}; all {self.total} comparisons as full cards"
        unlisted = self.total - self.full - self.listed
        tail = f", {unlisted} only counted" if unlisted else ""
        return (
            f"{head}; {self.full} of {self.total} comparisons as full cards, "
            f"{self.folded} folded into one-line entries{tail}"
        )


def fit(total: int, budget: int, measure: Callable[[int, int], int]) -> Fit:
    """The largest (full, listed) whose ``measure(full, listed)`` is within ``budget``.

    Full cards first (``listed`` = the rest), then, with no full card, one-line entries.
    When nothing fits, ``(0, 0)``: the count and the archive link alone.
    """
    size = measure(total, 0)
    if size <= budget:
        return Fit(total, 0, total, size, budget)

    def largest(check: Callable[[int], int], low: int, high: int) -> tuple[int, int]:
        """The largest n in [low, high) with check(n) within budget (low is assumed to fit)."""
        best, best_size = low, check(low)
        while low < high - 1:
            middle = (low + high) // 2
            measured = check(middle)
            if measured <= budget:
                low, best, best_size = middle, middle, measured
            else:
                high = middle
        return best, best_size

    if measure(0, total) <= budget:
        full, size = largest(lambda n: measure(n, total - n), 0, total)
        return Fit(full, total - full, total, size, budget)
    listed, size = largest(lambda n: measure(0, n), 0, total)
    return Fit(0, listed, total, size, budget)
