"""Recording and counting fetches of the open pixel: the only module that writes the open
tables (``open_hit``, ``open_daily``).

The tracked-link route answers the pixel's link with a GIF and queues a ``RawOpen`` on the
process's ``ClickRecorder``. ``record`` classifies each fetch when it stores it
(``digest.clicks.rules.classify_open``: HEAD requests and scanner agents are automated) and
drops those whose edition or subscriber is gone, or whose subscriber has turned tracking off
since the email was sent. ``counts`` gives the report its figures; ``fold_old_opens`` turns
raw fetches older than the retention into daily counts, with no subscriber.

Open figures are never reliable: Apple Mail Privacy Protection fetches every image of a
message on delivery, Gmail fetches them through its proxy, and a reader who blocks images
opens without a fetch. The report says so beside every figure.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from digest.clicks.models import OpenDaily, OpenHit
from digest.clicks.rules import AUTOMATED, HUMAN, Hit, classify_open
from digest.clicks.store import fold_into_daily, insert_existing, request_columns

OPEN = cast(sa.Table, sa.inspect(OpenHit).local_table)
OPEN_DAILY = cast(sa.Table, sa.inspect(OpenDaily).local_table)


@dataclass(frozen=True, slots=True)
class RawOpen:
    """A fetch of the open pixel as the route saw it, before it is stored."""

    edition_id: int
    subscriber_id: int
    at: dt.datetime
    method: str
    user_agent: str
    network: str


def _row(fetch: RawOpen) -> dict[str, Any]:
    # The pixel is no link of the content: -1 stands for it in the rules' view of a hit.
    hit = Hit(fetch.subscriber_id, -1, fetch.at, fetch.method, fetch.user_agent, fetch.network)
    reason = classify_open(hit)
    return {
        "edition_id": fetch.edition_id,
        "subscriber_id": fetch.subscriber_id,
        "at": fetch.at,
        **request_columns(fetch.method, fetch.user_agent, fetch.network),
        "verdict": HUMAN if reason is None else AUTOMATED,
        "reason": "" if reason is None else str(reason),
    }


def record(connection: Connection, fetches: Sequence[RawOpen]) -> int:
    """Classify and insert ``fetches``; those of an edition or subscriber that no longer exists,
    or of a subscriber who turned tracking off, are dropped. How many were stored."""
    return insert_existing(
        connection, OPEN, [(fetch, _row(fetch)) for fetch in fetches], tracking_only=True
    )


@dataclass(frozen=True, slots=True)
class OpenCount:
    """The pixel fetches of one edition (raw and folded together)."""

    hits: int = 0  # every fetch, automated ones included
    counted: int = 0  # fetches no rule removed
    openers: int = 0  # distinct subscribers with a counted fetch (raw fetches only)
    automated: dict[str, int] = field(default_factory=dict)  # by rule


def counts(connection: Connection, edition_id: int) -> OpenCount:
    """Fetches of ``edition_id``'s pixel: all, counted, distinct openers, automated by rule."""
    raw = connection.execute(
        sa.select(OPEN.c.verdict, OPEN.c.reason, sa.func.count())
        .where(OPEN.c.edition_id == edition_id)
        .group_by(OPEN.c.verdict, OPEN.c.reason)
    ).all()
    folded = connection.execute(
        sa.select(OPEN_DAILY.c.verdict, OPEN_DAILY.c.reason, sa.func.sum(OPEN_DAILY.c.hits))
        .where(OPEN_DAILY.c.edition_id == edition_id)
        .group_by(OPEN_DAILY.c.verdict, OPEN_DAILY.c.reason)
    ).all()
    hits = counted = 0
    automated: dict[str, int] = {}
    for verdict, reason, number in [*raw, *folded]:
        hits += int(number)
        if verdict == AUTOMATED:
            automated[reason] = automated.get(reason, 0) + int(number)
        else:
            counted += int(number)
    openers = connection.execute(
        sa.select(sa.func.count(sa.distinct(OPEN.c.subscriber_id))).where(
            OPEN.c.edition_id == edition_id, OPEN.c.verdict != AUTOMATED
        )
    ).scalar_one()
    return OpenCount(hits, counted, int(openers), automated)


def fold_old_opens(connection: Connection, *, older_than: dt.datetime) -> int:
    """Count raw fetches before ``older_than`` into ``open_daily`` and delete them; how many
    were folded."""
    return fold_into_daily(connection, OPEN, OPEN_DAILY, ("edition_id",), older_than=older_than)
