"""What an edition says about reader votes: which tool a vote link names (the edition froze its
comparisons in order, and a link carries positions), and which community figures a rendering
of the edition shows.

``ballot_for`` turns a vote link into the tool it names, or None when the link cannot be used
(its subscriber is gone, its edition has no such comparison or tool, or the edition is older
than the links live). ``reader_figures`` gives a renderer the community figure of each tool
readers voted on, for the edition's own cards and for the recap of the newsletter's previous
edition ("What readers said").
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from digest.content.document import ComparisonDoc
from digest.content.models import Comparison
from digest.content.verdicts import CommunityVotes
from digest.db import utcnow
from digest.editions.models import Edition, EditionComparison, EditionStatus
from digest.votes import store
from digest.votes.store import Ballot
from subscribers.models import Subscriber
from subscribers.tokens import VoteRef

COMPARISON = cast(sa.Table, sa.inspect(Comparison).local_table)
EDITION = cast(sa.Table, sa.inspect(Edition).local_table)
EDITION_COMPARISON = cast(sa.Table, sa.inspect(EditionComparison).local_table)
SUBSCRIBER = cast(sa.Table, sa.inspect(Subscriber).local_table)
PUBLISHED = (str(EditionStatus.SENDING), str(EditionStatus.SENT))


@dataclass(frozen=True, slots=True)
class ReaderFigures:
    """The community figures a rendering shows: ``community`` by (comparison slug, tool slug)
    for every voted tool, and ``recap``, the previous edition's comparisons readers voted on."""

    community: dict[tuple[str, str], CommunityVotes] = field(default_factory=dict)
    recap: tuple[ComparisonDoc, ...] = ()


@dataclass(frozen=True, slots=True)
class Card:
    """One comparison of an edition as a vote link needs it: its row, title and tools."""

    comparison_id: int
    slug: str
    title: str
    tools: tuple[tuple[str, str], ...]  # (slug, name) in the frozen order
    edition_created_at: dt.datetime  # vote links expire with their edition's age


class FrozenCards:
    """The cards of editions, read once per process: an edition's snapshots never change,
    and parsing one costs more than the rest of a vote. Least recently used evicted first."""

    def __init__(self, size: int = 512) -> None:
        self._size = size
        self._cards: OrderedDict[tuple[int, int], Card | None] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, connection: Connection, edition_id: int, position: int) -> Card | None:
        key = (edition_id, position)
        with self._lock:
            if key in self._cards:
                self._cards.move_to_end(key)
                return self._cards[key]
        card = read_card(connection, edition_id, position)
        if card is not None:  # an edition may be created later; only what exists is kept
            with self._lock:
                self._cards[key] = card
                while len(self._cards) > self._size:
                    self._cards.popitem(last=False)
        return card


def read_card(connection: Connection, edition_id: int, position: int) -> Card | None:
    row = connection.execute(
        sa.select(
            COMPARISON.c.id,
            COMPARISON.c.slug,
            EDITION_COMPARISON.c.snapshot,
            EDITION.c.created_at,
        )
        .join(EDITION_COMPARISON, EDITION_COMPARISON.c.comparison_id == COMPARISON.c.id)
        .join(EDITION, EDITION.c.id == EDITION_COMPARISON.c.edition_id)
        .where(
            EDITION_COMPARISON.c.edition_id == edition_id,
            EDITION_COMPARISON.c.position == position,
        )
    ).first()
    if row is None:
        return None
    snapshot: dict[str, Any] = row.snapshot
    return Card(
        comparison_id=int(row.id),
        slug=str(row.slug),
        title=str(snapshot.get("title", "")),
        tools=tuple((str(tool["slug"]), str(tool["name"])) for tool in snapshot.get("tools", ())),
        edition_created_at=row.created_at,
    )


def ballot_for(
    connection: Connection,
    ref: VoteRef,
    cards: FrozenCards | None = None,
    *,
    max_age_days: int | None = None,
    now: dt.datetime | None = None,
) -> Ballot | None:
    """The tool ``ref`` names, or None when the link cannot be used: also when its edition is
    older than ``max_age_days`` (``DIGEST_VOTE_LINK_MAX_AGE_DAYS``). ``cards`` keeps the
    editions' cards between calls (the web app holds one)."""
    subscriber = connection.execute(
        sa.select(SUBSCRIBER.c.id).where(SUBSCRIBER.c.id == ref.subscriber_id)
    ).first()
    if subscriber is None:
        return None
    if cards is not None:
        card = cards.get(connection, ref.edition_id, ref.comparison)
    else:
        card = read_card(connection, ref.edition_id, ref.comparison)
    if card is None or ref.tool >= len(card.tools):
        return None
    if max_age_days is not None:
        age = (now or utcnow()) - card.edition_created_at
        if age > dt.timedelta(days=max_age_days):
            return None
    tool_slug, tool_name = card.tools[ref.tool]
    return Ballot(
        ref,
        comparison_id=card.comparison_id,
        comparison_slug=card.slug,
        comparison_title=card.title,
        tool_slug=tool_slug,
        tool_name=tool_name,
    )


def reader_figures(
    connection: Connection, newsletter: str, week: str, docs: Sequence[ComparisonDoc]
) -> ReaderFigures:
    """The figures of a rendering of ``week``'s edition carrying ``docs``: its own voted tools,
    and the comparisons of the newsletter's latest earlier published edition that readers
    voted on (in that edition's order)."""
    previous = connection.execute(
        sa.select(EDITION.c.id)
        .where(
            EDITION.c.newsletter == newsletter,
            EDITION.c.week < week,
            EDITION.c.status.in_(PUBLISHED),
        )
        .order_by(EDITION.c.week.desc(), EDITION.c.id.desc())
        .limit(1)
    ).scalar()
    earlier: list[ComparisonDoc] = []
    if previous is not None:
        earlier = [
            ComparisonDoc.model_validate(snapshot)
            for (snapshot,) in connection.execute(
                sa.select(EDITION_COMPARISON.c.snapshot)
                .where(EDITION_COMPARISON.c.edition_id == previous)
                .order_by(EDITION_COMPARISON.c.position)
            )
        ]
    community = store.figures(connection, [*docs, *earlier])
    voted = {comparison for comparison, _tool in community}
    return ReaderFigures(
        community=community,
        recap=tuple(doc for doc in earlier if doc.slug in voted),
    )
