"""Recording and counting hits on tracked links: the only module that writes the click tables.

An edition stores its link table when it is created (``digest.editions.service``); ``target``
reads a link's kind and URL for the redirect. ``record`` inserts raw hits (dropping those whose
subscriber or edition is gone). ``classify_edition`` runs the rules (``digest.clicks.rules``)
over one edition's hits and stores each verdict and reason; ``counts`` gives the report its
figures. ``fold_old_hits`` turns raw hits older than the retention into daily counts. Fetches
of the open pixel are not hits on links: ``digest.clicks.opens`` owns their tables.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from digest.clicks.models import ClickDaily, ClickHit, EditionLink
from digest.clicks.rules import AUTOMATED, HUMAN, Hit, classify
from digest.render.links import HONEYPOT
from subscribers.models import Subscriber

LINK = cast(sa.Table, sa.inspect(EditionLink).local_table)
HIT = cast(sa.Table, sa.inspect(ClickHit).local_table)
DAILY = cast(sa.Table, sa.inspect(ClickDaily).local_table)
SUBSCRIBER = cast(sa.Table, sa.inspect(Subscriber).local_table)
USER_AGENT_CHARS = 200


@dataclass(frozen=True, slots=True)
class RawHit:
    """A hit as the redirect saw it, before it is stored."""

    edition_id: int
    subscriber_id: int
    link: int
    at: dt.datetime
    method: str
    user_agent: str
    network: str


class Target(NamedTuple):
    """A link of an edition's table as the redirect needs it."""

    kind: str  # ``digest.render.links.LinkKind``: "open" is the pixel, answered with an image
    url: str


def target(connection: Connection, edition_id: int, link: int) -> Target | None:
    """The kind and URL of ``link`` in ``edition_id``'s link table, or None."""
    row = connection.execute(
        sa.select(LINK.c.kind, LINK.c.url).where(
            LINK.c.edition_id == edition_id, LINK.c.link == link
        )
    ).first()
    return None if row is None else Target(str(row.kind), str(row.url))


def links(connection: Connection, edition_id: int) -> list[EditionLink]:
    rows = connection.execute(
        sa.select(LINK).where(LINK.c.edition_id == edition_id).order_by(LINK.c.link)
    ).all()
    return [EditionLink.model_validate(dict(row._mapping)) for row in rows]


def request_columns(method: str, user_agent: str, network: str) -> dict[str, str]:
    """What a stored hit keeps of its request, cut to its columns' widths."""
    return {
        "method": method[:8],
        "user_agent": user_agent[:USER_AGENT_CHARS],
        "network": network[:64],
    }


def _row(hit: RawHit) -> dict[str, Any]:
    return {
        "edition_id": hit.edition_id,
        "subscriber_id": hit.subscriber_id,
        "link": hit.link,
        "at": hit.at,
        **request_columns(hit.method, hit.user_agent, hit.network),
        "verdict": "",
        "reason": "",
    }


class _Recorded(Protocol):
    @property
    def edition_id(self) -> int: ...

    @property
    def subscriber_id(self) -> int: ...


def insert_existing(
    connection: Connection,
    table: sa.Table,
    rows: Sequence[tuple[_Recorded, dict[str, Any]]],
    *,
    tracking_only: bool = False,
) -> int:
    """Insert the row of each recorded fetch whose subscriber and edition (with a link table)
    still exist and, with ``tracking_only``, whose subscriber still tracks; how many were
    stored. Shared by click hits and pixel fetches (``digest.clicks.opens``)."""
    if not rows:
        return 0
    who: sa.ColumnElement[bool] = SUBSCRIBER.c.id.in_({seen.subscriber_id for seen, _ in rows})
    if tracking_only:
        who = sa.and_(who, SUBSCRIBER.c.track_clicks.is_(True))
    known = set(connection.execute(sa.select(SUBSCRIBER.c.id).where(who)).scalars())
    editions = {seen.edition_id for seen, _ in rows}
    linked = set(
        connection.execute(
            sa.select(LINK.c.edition_id).where(LINK.c.edition_id.in_(editions)).distinct()
        ).scalars()
    )
    kept = [row for seen, row in rows if seen.subscriber_id in known and seen.edition_id in linked]
    if kept:
        try:
            connection.execute(table.insert(), kept)
        except IntegrityError:  # pragma: no cover - an erasure between the check and the insert
            return 0
    return len(kept)


def record(connection: Connection, hits: Sequence[RawHit]) -> int:
    """Insert ``hits``; those naming a subscriber or edition that no longer exists are dropped.
    How many were stored."""
    return insert_existing(connection, HIT, [(hit, _row(hit)) for hit in hits])


def classify_edition(
    connection: Connection,
    edition_id: int,
    *,
    accepted: Mapping[int, dt.datetime],
    min_seconds: float,
) -> int:
    """Classify every hit of ``edition_id`` again (a later hit can change an earlier one's
    verdict) and store the verdicts that changed; how many changed."""
    rows = connection.execute(
        sa.select(
            HIT.c.id,
            HIT.c.subscriber_id,
            HIT.c.link,
            HIT.c.at,
            HIT.c.method,
            HIT.c.user_agent,
            HIT.c.network,
            HIT.c.verdict,
            HIT.c.reason,
        )
        .where(HIT.c.edition_id == edition_id)
        .order_by(HIT.c.at, HIT.c.id)
    ).all()
    hits = [Hit(r.subscriber_id, r.link, r.at, r.method, r.user_agent, r.network) for r in rows]
    reasons = classify(hits, accepted=accepted, min_seconds=min_seconds, honeypot=HONEYPOT)
    changes = []
    for row, reason in zip(rows, reasons, strict=True):
        verdict, why = (HUMAN, "") if reason is None else (AUTOMATED, str(reason))
        if (row.verdict, row.reason) != (verdict, why):
            changes.append({"hit_id": row.id, "verdict": verdict, "reason": why})
    if changes:
        connection.execute(
            HIT.update()
            .where(HIT.c.id == sa.bindparam("hit_id"))
            .values(verdict=sa.bindparam("verdict"), reason=sa.bindparam("reason")),
            changes,
        )
    return len(changes)


@dataclass(frozen=True, slots=True)
class LinkCount:
    """The classified hits of one link of an edition (raw and folded together)."""

    link: int
    human: int
    clickers: int  # distinct subscribers with a human hit (raw hits only)
    automated: dict[str, int]  # by reason


def counts(connection: Connection, edition_id: int) -> dict[int, LinkCount]:
    """Per link of ``edition_id``: human hits, unique human clickers, automated by reason."""
    human: dict[int, int] = {}
    clickers: dict[int, int] = {}
    automated: dict[int, dict[str, int]] = {}
    raw = connection.execute(
        sa.select(
            HIT.c.link,
            HIT.c.verdict,
            HIT.c.reason,
            sa.func.count(),
            sa.func.count(sa.distinct(HIT.c.subscriber_id)),
        )
        .where(HIT.c.edition_id == edition_id)
        .group_by(HIT.c.link, HIT.c.verdict, HIT.c.reason)
    ).all()
    folded = connection.execute(
        sa.select(
            DAILY.c.link, DAILY.c.verdict, DAILY.c.reason, sa.func.sum(DAILY.c.hits), sa.literal(0)
        )
        .where(DAILY.c.edition_id == edition_id)
        .group_by(DAILY.c.link, DAILY.c.verdict, DAILY.c.reason)
    ).all()
    for link, verdict, reason, hits, distinct in [*raw, *folded]:
        if verdict == HUMAN:
            human[link] = human.get(link, 0) + int(hits)
            clickers[link] = clickers.get(link, 0) + int(distinct)
        elif verdict == AUTOMATED:
            by_reason = automated.setdefault(link, {})
            by_reason[reason] = by_reason.get(reason, 0) + int(hits)
    every = set(human) | set(automated)
    return {
        link: LinkCount(link, human.get(link, 0), clickers.get(link, 0), automated.get(link, {}))
        for link in sorted(every)
    }


def human_clickers(connection: Connection, edition_id: int, links: Iterable[int]) -> int:
    """Distinct subscribers with a human hit on any of ``links``."""
    return int(
        connection.execute(
            sa.select(sa.func.count(sa.distinct(HIT.c.subscriber_id))).where(
                HIT.c.edition_id == edition_id,
                HIT.c.verdict == HUMAN,
                HIT.c.link.in_(list(links)),
            )
        ).scalar_one()
    )


def human_hours(connection: Connection, edition_id: int) -> list[int]:
    """Human hits by UTC hour of day (24 counts)."""
    hours = [0] * 24
    for (at,) in connection.execute(
        sa.select(HIT.c.at).where(HIT.c.edition_id == edition_id, HIT.c.verdict == HUMAN)
    ):
        hours[at.hour] += 1
    return hours


def editions_with_hits_before(connection: Connection, moment: dt.datetime) -> list[int]:
    return list(
        connection.execute(
            sa.select(HIT.c.edition_id).where(HIT.c.at < moment).distinct()
        ).scalars()
    )


def fold_old_hits(connection: Connection, *, older_than: dt.datetime) -> int:
    """Count classified raw hits before ``older_than`` into ``click_daily`` and delete them
    (unclassified ones are counted as they stand); how many raw hits were folded."""
    return fold_into_daily(connection, HIT, DAILY, ("edition_id", "link"), older_than=older_than)


def fold_into_daily(
    connection: Connection,
    raw: sa.Table,
    daily: sa.Table,
    keys: Sequence[str],
    *,
    older_than: dt.datetime,
) -> int:
    """Count the rows of ``raw`` before ``older_than`` into ``daily`` per ``keys``, UTC day,
    verdict and reason, and delete them; how many were folded. Both kinds of hit (links here,
    the open pixel in ``digest.clicks.opens``) are folded by this one rule."""
    key_columns = [raw.c[key] for key in keys]
    rows = connection.execute(
        sa.select(*key_columns, raw.c.at, raw.c.verdict, raw.c.reason).where(raw.c.at < older_than)
    ).all()
    if not rows:
        return 0
    totals: dict[tuple[Any, ...], int] = {}
    for row in rows:
        *values, at, verdict, reason = row
        key = (*values, at.date(), verdict, reason)
        totals[key] = totals.get(key, 0) + 1
    names = [*keys, "day", "verdict", "reason"]
    for key, hits in totals.items():
        fields = dict(zip(names, key, strict=True))
        key_filter = sa.and_(*(daily.c[name] == value for name, value in fields.items()))
        updated = connection.execute(
            daily.update().where(key_filter).values(hits=daily.c.hits + hits)
        ).rowcount
        if not updated:
            connection.execute(daily.insert().values(**fields, hits=hits))
    connection.execute(raw.delete().where(raw.c.at < older_than))
    return len(rows)
