"""Recording and counting reader votes: the only module that writes the vote tables.

Whether a vote link may be used is the edition's to say (``digest.editions.ballots``: the
subscriber exists, the edition carried the comparison, the comparison has the tool).
``record`` stores a press as the subscriber's current vote (an upsert on the unique key, so
the last press counts and concurrent presses leave one row) plus an event. ``tallies`` and
``community`` count them, and ``figures`` gives a renderer each voted tool's community figure,
so every card, archive page and vote page shows the same number
(``content.verdicts.community_verdict``).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from digest.content.document import ComparisonDoc
from digest.content.models import Comparison, Tool
from digest.content.verdicts import CommunityVotes, community_verdict
from digest.votes.models import Vote, VoteEvent
from subscribers.tokens import VoteRef

VOTE = cast(sa.Table, sa.inspect(Vote).local_table)
EVENT = cast(sa.Table, sa.inspect(VoteEvent).local_table)
COMPARISON = cast(sa.Table, sa.inspect(Comparison).local_table)
TOOL = cast(sa.Table, sa.inspect(Tool).local_table)

USER_AGENT_CHARS = 200


@dataclass(frozen=True, slots=True)
class Ballot:
    """A vote link that may be used: what it stands for, with the names to show."""

    ref: VoteRef
    comparison_id: int
    comparison_slug: str
    comparison_title: str
    tool_slug: str
    tool_name: str


@dataclass(frozen=True, slots=True)
class Tally:
    """The newsletter's votes on one tool of one comparison."""

    ship: int = 0
    skip: int = 0
    updated_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class ToolCommunity:
    """One tool's community figure and where its votes came from."""

    slug: str
    name: str
    imported: CommunityVotes
    newsletter: Tally
    combined: CommunityVotes


@functools.cache
def _upsert(dialect_name: str) -> Any:
    """The vote upsert for a dialect, built once (statements are most of a vote's cost)."""
    dialect = sqlite if dialect_name == "sqlite" else postgresql
    insert = dialect.insert(VOTE).values(
        {
            name: sa.bindparam(name)
            for name in (
                "subscriber_id",
                "comparison_id",
                "tool_slug",
                "edition_id",
                "choice",
                "created_at",
                "updated_at",
            )
        }
    )
    return insert.on_conflict_do_update(
        index_elements=["subscriber_id", "comparison_id", "tool_slug"],
        set_={
            "choice": insert.excluded.choice,
            "edition_id": insert.excluded.edition_id,
            "updated_at": insert.excluded.updated_at,
        },
    )


_PRESS = EVENT.insert()


def record(
    connection: Connection,
    ballot: Ballot,
    *,
    network: str,
    user_agent: str,
    now: dt.datetime,
) -> None:
    """Store ``ballot`` as its subscriber's vote on that tool (replacing an earlier one) and the
    press as an event. Run it in a write transaction (``BEGIN IMMEDIATE`` on SQLite)."""
    ref = ballot.ref
    values = {
        "subscriber_id": ref.subscriber_id,
        "comparison_id": ballot.comparison_id,
        "tool_slug": ballot.tool_slug,
        "edition_id": ref.edition_id,
        "choice": ref.choice,
    }
    connection.execute(
        _upsert(connection.dialect.name), {**values, "created_at": now, "updated_at": now}
    )
    connection.execute(
        _PRESS,
        {**values, "at": now, "network": network[:64], "user_agent": user_agent[:USER_AGENT_CHARS]},
    )


def current_choice(connection: Connection, ballot: Ballot) -> str | None:
    """The subscriber's vote that counts now on the ballot's tool, if any."""
    return connection.execute(
        sa.select(VOTE.c.choice).where(
            VOTE.c.subscriber_id == ballot.ref.subscriber_id,
            VOTE.c.comparison_id == ballot.comparison_id,
            VOTE.c.tool_slug == ballot.tool_slug,
        )
    ).scalar()


_TALLIES = sa.select(
    VOTE.c.comparison_id,
    VOTE.c.tool_slug,
    sa.func.sum(sa.case((VOTE.c.choice == "ship", 1), else_=0)).label("ship"),
    sa.func.sum(sa.case((VOTE.c.choice == "skip", 1), else_=0)).label("skip"),
    sa.func.max(VOTE.c.updated_at).label("updated_at"),
).group_by(VOTE.c.comparison_id, VOTE.c.tool_slug)
_ONE_COMPARISON = _TALLIES.where(VOTE.c.comparison_id == sa.bindparam("comparison_id"))
_TOOLS = (
    sa.select(TOOL.c.slug, TOOL.c.name, TOOL.c.community_up, TOOL.c.community_down)
    .where(TOOL.c.comparison_id == sa.bindparam("comparison_id"))
    .order_by(TOOL.c.position)
)


def tallies(
    connection: Connection,
    comparison_ids: Iterable[int] | None = None,
    *,
    since: dt.datetime | None = None,
) -> dict[tuple[int, str], Tally]:
    """The newsletter's votes per (comparison id, tool slug), optionally cast since ``since``."""
    query = _TALLIES
    if comparison_ids is not None:
        query = query.where(VOTE.c.comparison_id.in_(list(comparison_ids)))
    if since is not None:
        query = query.where(VOTE.c.updated_at >= since)
    return _tally_rows(connection.execute(query))


def _tally_rows(rows: Iterable[Any]) -> dict[tuple[int, str], Tally]:
    result: dict[tuple[int, str], Tally] = {}
    for row in rows:
        updated = row.updated_at
        if isinstance(updated, str):  # SQLite returns an aggregate without the column's type
            updated = dt.datetime.fromisoformat(updated)
        if updated is not None and updated.tzinfo is None:
            updated = updated.replace(tzinfo=dt.UTC)
        result[(int(row.comparison_id), str(row.tool_slug))] = Tally(
            int(row.ship or 0), int(row.skip or 0), updated
        )
    return result


def community(connection: Connection, comparison_id: int) -> list[ToolCommunity]:
    """Every tool of a comparison (current content) with its community figure."""
    parameters = {"comparison_id": comparison_id}
    counted = _tally_rows(connection.execute(_ONE_COMPARISON, parameters))
    tools = connection.execute(_TOOLS, parameters)
    figures = []
    for tool in tools:
        imported = CommunityVotes(int(tool.community_up or 0), int(tool.community_down or 0))
        newsletter = counted.get((comparison_id, str(tool.slug)), Tally())
        figures.append(
            ToolCommunity(
                slug=str(tool.slug),
                name=str(tool.name),
                imported=imported,
                newsletter=newsletter,
                combined=community_verdict(imported, newsletter.ship, newsletter.skip),
            )
        )
    return figures


def comparison_id_of(connection: Connection, slug: str) -> int | None:
    value = connection.execute(sa.select(COMPARISON.c.id).where(COMPARISON.c.slug == slug)).scalar()
    return None if value is None else int(value)


def figures(
    connection: Connection, docs: Sequence[ComparisonDoc]
) -> dict[tuple[str, str], CommunityVotes]:
    """The community figure of every tool of ``docs`` that newsletter readers voted on, by
    (comparison slug, tool slug): the imported votes plus the newsletter's."""
    if not docs:
        return {}
    ids = {
        int(comparison_id): str(slug)
        for slug, comparison_id in connection.execute(
            sa.select(COMPARISON.c.slug, COMPARISON.c.id).where(
                COMPARISON.c.slug.in_([doc.slug for doc in docs])
            )
        )
    }
    imported = {
        (doc.slug, tool.slug): CommunityVotes(tool.community.up, tool.community.down)
        for doc in docs
        for tool in doc.tools
        if tool.community is not None
    }
    result = {}
    for (comparison_id, tool_slug), tally in tallies(connection, ids).items():
        key = (ids[comparison_id], tool_slug)
        result[key] = community_verdict(imported.get(key), tally.ship, tally.skip)
    return result


def subscriber_hash(key: bytes, subscriber_id: int) -> str:
    """A stable pseudonym for a subscriber in exports: never the address, not reversible
    without the secret."""
    return hmac.new(key, f"vote-export:{subscriber_id}".encode(), hashlib.sha256).hexdigest()[:16]


def per_vote_rows(
    connection: Connection, key: bytes, *, since: dt.datetime | None = None
) -> list[dict[str, Any]]:
    """One anonymised row per current vote: who (a stable hash), what, when, and how many
    presses from how many networks led to it (several networks hint at a forwarded email)."""
    events = (
        sa.select(
            EVENT.c.subscriber_id,
            EVENT.c.comparison_id,
            EVENT.c.tool_slug,
            sa.func.count().label("presses"),
            sa.func.count(sa.distinct(EVENT.c.network)).label("networks"),
        )
        .group_by(EVENT.c.subscriber_id, EVENT.c.comparison_id, EVENT.c.tool_slug)
        .subquery()
    )
    query = (
        sa.select(
            VOTE.c.subscriber_id,
            COMPARISON.c.slug.label("comparison"),
            VOTE.c.tool_slug,
            VOTE.c.choice,
            VOTE.c.edition_id,
            VOTE.c.updated_at,
            events.c.presses,
            events.c.networks,
        )
        .join(COMPARISON, COMPARISON.c.id == VOTE.c.comparison_id)
        .outerjoin(
            events,
            sa.and_(
                events.c.subscriber_id == VOTE.c.subscriber_id,
                events.c.comparison_id == VOTE.c.comparison_id,
                events.c.tool_slug == VOTE.c.tool_slug,
            ),
        )
        .order_by(VOTE.c.updated_at, VOTE.c.id)
    )
    if since is not None:
        query = query.where(VOTE.c.updated_at >= since)
    return [
        {
            "subscriber": subscriber_hash(key, int(row.subscriber_id)),
            "comparison": row.comparison,
            "tool": row.tool_slug,
            "choice": row.choice,
            "edition": row.edition_id,
            "at": row.updated_at.isoformat(),
            "presses": int(row.presses or 0),
            "networks": int(row.networks or 0),
        }
        for row in connection.execute(query)
    ]


def aggregate_rows(
    connection: Connection, *, since: dt.datetime | None = None
) -> list[dict[str, Any]]:
    """One object per voted tool: the newsletter's ``ship`` and ``skip`` counts and the
    community figure they make with the imported votes."""
    counted = tallies(connection, since=since)
    if not counted:
        return []
    ids = {comparison_id for comparison_id, _ in counted}
    tools = {
        (int(row.comparison_id), str(row.slug)): row
        for row in connection.execute(
            sa.select(
                TOOL.c.comparison_id,
                TOOL.c.slug,
                TOOL.c.name,
                TOOL.c.community_up,
                TOOL.c.community_down,
                COMPARISON.c.slug.label("comparison"),
            )
            .join(COMPARISON, COMPARISON.c.id == TOOL.c.comparison_id)
            .where(TOOL.c.comparison_id.in_(ids))
        )
    }
    slugs = dict(
        connection.execute(
            sa.select(COMPARISON.c.id, COMPARISON.c.slug).where(COMPARISON.c.id.in_(ids))
        ).all()
    )
    rows = []
    for (comparison_id, tool_slug), tally in sorted(
        counted.items(), key=lambda item: (slugs.get(item[0][0], ""), item[0][1])
    ):
        tool = tools.get((comparison_id, tool_slug))
        imported = (
            CommunityVotes(int(tool.community_up or 0), int(tool.community_down or 0))
            if tool is not None
            else CommunityVotes(0, 0)
        )
        combined = community_verdict(imported, tally.ship, tally.skip)
        rows.append(
            {
                "comparison": slugs.get(comparison_id, ""),
                "tool": tool_slug,
                "name": tool.name if tool is not None else tool_slug,
                "ship": tally.ship,
                "skip": tally.skip,
                "community_ship": combined.up,
                "community_skip": combined.down,
                "community_share": combined.up_percent,
                "community_label": str(combined.verdict) if combined.verdict else None,
                "updated_at": tally.updated_at.isoformat() if tally.updated_at else None,
            }
        )
    return rows


def votes_of_subscriber(connection: Connection, subscriber_id: int) -> list[dict[str, Any]]:
    """A subscriber's own votes, for their data export."""
    query = (
        sa.select(
            COMPARISON.c.slug, VOTE.c.tool_slug, VOTE.c.choice, VOTE.c.created_at, VOTE.c.updated_at
        )
        .join(COMPARISON, COMPARISON.c.id == VOTE.c.comparison_id)
        .where(VOTE.c.subscriber_id == subscriber_id)
        .order_by(VOTE.c.id)
    )
    return [
        {
            "comparison": row.slug,
            "tool": row.tool_slug,
            "choice": row.choice,
            "first_voted_at": row.created_at.isoformat(),
            "voted_at": row.updated_at.isoformat(),
        }
        for row in connection.execute(query)
    ]
