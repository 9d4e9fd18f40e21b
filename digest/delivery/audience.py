"""Who gets nothing this week, and why: the active subscribers an edition leaves out.

An active subscriber is not sent an edition when they paused their subscription, when their
address is on the suppression list, or when none of the edition's comparisons is in the
categories they follow (nobody gets an empty digest). ``digest send`` and its dry run print
the count per reason, so that a short recipient list is never a mystery.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session, col

from digest.content.document import ComparisonDoc
from digest.render.variants import select
from subscribers.lifecycle import mailable_subscribers_query
from subscribers.models import Status, Subscriber


@dataclass(frozen=True)
class LeftOut:
    """Active subscribers who get nothing, per reason (each counted once, in this order)."""

    paused: int = 0
    suppressed: int = 0
    no_comparison: int = 0

    @property
    def total(self) -> int:
        return self.paused + self.suppressed + self.no_comparison

    def describe(self) -> str:
        """One line, e.g. ``3 active subscribers get nothing this week: 2 paused, 1 follows
        only categories without a comparison this week``; empty when nobody is left out."""
        if not self.total:
            return ""
        reasons = []
        if self.paused:
            reasons.append(f"{self.paused} paused")
        if self.suppressed:
            reasons.append(f"{self.suppressed} on the suppression list")
        if self.no_comparison:
            verb = "follows" if self.no_comparison == 1 else "follow"
            reasons.append(
                f"{self.no_comparison} {verb} only categories without a comparison this week"
            )
        who = "subscriber gets" if self.total == 1 else "subscribers get"
        return f"{self.total} active {who} nothing this week: {', '.join(reasons)}"


def left_out(session: Session, comparisons: Sequence[ComparisonDoc]) -> LeftOut:
    """The active subscribers an edition carrying ``comparisons`` leaves out, per reason."""
    active = col(Subscriber.status) == str(Status.ACTIVE)
    counts = session.connection().execute(
        sa.select(col(Subscriber.paused), sa.func.count())
        .where(active)
        .group_by(col(Subscriber.paused))
    )
    by_paused = {bool(paused): int(count) for paused, count in counts}
    choices: Counter[tuple[str, ...]] = Counter(
        tuple(row[0] or ())
        for row in session.connection().execute(
            mailable_subscribers_query().with_only_columns(col(Subscriber.categories))
        )
    )
    mailable = sum(choices.values())
    no_comparison = sum(
        count for choice, count in choices.items() if not select(comparisons, choice)
    )
    return LeftOut(
        paused=by_paused.get(True, 0),
        suppressed=by_paused.get(False, 0) - mailable,
        no_comparison=no_comparison,
    )
