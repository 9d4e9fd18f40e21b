"""The edition report: what readers did with one edition, beside its send status.

``edition_report`` first classifies the edition's hits on tracked links again
(``digest.clicks.rules``; the time each message was accepted comes from the ledger's
``sent_at``), then counts, per comparison and per tool, human clicks, unique human clickers,
the click-through rate (unique human clickers of messages sent) and the automated hits removed
by each rule. Beside them: sent, and delivered, bounced and complained from provider events
(counted by the webhooks package and passed in), unsubscribes and votes by edition, human
clicks by hour of day, and the trend over the newsletter's last 12 editions.

Opens are reported only where they are measured (``DIGEST_TRACK_OPENS``, or fetches stored
for the edition earlier): fetches of the pixel, those no rule removed, unique openers and the
open rate (unique openers of messages delivered, or of messages sent when no provider reported
deliveries), always marked unreliable (``"reliable": false``), because Apple Mail Privacy
Protection and Gmail's image proxy fetch images for readers who never look, and a reader who
blocks images opens without a fetch. Opens are never clicks: they have their own tables
(``digest.clicks.opens``) and no click figure, rule or trend reads them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from digest.clicks import opens as pixel
from digest.clicks import store as clicks
from digest.clicks.rules import Reason
from digest.config import Settings
from digest.db import aware, immediate_transaction
from digest.delivery.ledger import DELIVERY
from digest.delivery.models import DeliveryState
from digest.editions.models import Edition, EditionComparison
from digest.errors import NotFoundError
from digest.votes.models import VoteEvent
from subscribers.models import Subscriber

EDITION = cast(sa.Table, sa.inspect(Edition).local_table)
EDITION_COMPARISON = cast(sa.Table, sa.inspect(EditionComparison).local_table)
VOTE_EVENT = cast(sa.Table, sa.inspect(VoteEvent).local_table)
SUBSCRIBER = cast(sa.Table, sa.inspect(Subscriber).local_table)
TREND_EDITIONS = 12
OPENS_OFF_NOTE = (
    "Opens are not measured (DIGEST_TRACK_OPENS is off: emails carry no open pixel). They would "
    "be unreliable anyway: Apple Mail Privacy Protection and other clients fetch images for "
    "every message."
)
OPENS_NOTE = (
    "Opens are unreliable: Apple Mail Privacy Protection fetches the images of every message "
    "on delivery, Gmail fetches them through its image proxy, and readers who block images "
    "open without any fetch. Read them as a rough signal, never as a count of readers."
)
OPEN_RULES = (Reason.HEAD, Reason.SCANNER_AGENT)  # the rules a pixel fetch is asked


@dataclass(frozen=True, slots=True)
class Engagement:
    """Clicks on one link or a group of links."""

    human: int = 0
    clickers: int = 0
    ctr: float = 0.0  # unique human clickers / messages sent
    automated: dict[str, int] = field(default_factory=dict)  # by rule


@dataclass(frozen=True, slots=True)
class ToolLine:
    slug: str
    name: str
    clicks: Engagement


@dataclass(frozen=True, slots=True)
class ComparisonLine:
    position: int
    slug: str
    title: str
    clicks: Engagement  # the comparison's own link and its tools' links together
    link: Engagement  # "Read the full comparison"
    tools: tuple[ToolLine, ...]


@dataclass(frozen=True, slots=True)
class TrendPoint:
    edition_id: int
    week: str
    sent: int
    human_clicks: int
    clickers: int
    ctr: float


@dataclass(frozen=True, slots=True)
class OpenFigures:
    """The open pixel's fetches of one edition: never reliable (see the module docstring)."""

    hits: int  # every fetch
    counted: int  # fetches no rule removed
    openers: int  # distinct subscribers with a counted fetch
    removed: dict[str, int]  # automated fetches by rule, every rule listed
    base: str  # what the open rate divides by: "delivered" or "sent"
    messages: int  # how many messages that is

    @property
    def rate(self) -> float:
        return _rate(self.openers, self.messages)

    def as_json(self) -> dict[str, Any]:
        return {
            "reported": True,
            "reliable": False,
            "note": OPENS_NOTE,
            "hits": self.hits,
            "counted": self.counted,
            "automated": sum(self.removed.values()),
            "automated_by_rule": self.removed,
            "unique_openers": self.openers,
            "open_rate": self.rate,
            "rate_of": self.base,
        }


@dataclass(frozen=True, slots=True)
class EditionReport:
    edition_id: int
    week: str
    subject: str
    sent: int
    webhook: dict[str, int]
    unsubscribes: int
    votes: int
    voters: int
    human: int
    automated: int
    clickers: int
    removed: dict[str, int]  # automated hits by rule, every rule listed
    comparisons: tuple[ComparisonLine, ...]
    hours: tuple[int, ...]  # human clicks by UTC hour
    trend: tuple[TrendPoint, ...]  # oldest first, this edition last
    opens: OpenFigures | None = None  # None: opens are not measured

    @property
    def ctr(self) -> float:
        return _rate(self.clickers, self.sent)

    def as_json(self) -> dict[str, Any]:
        return {
            "edition": self.edition_id,
            "week": self.week,
            "subject": self.subject,
            "clicks": {"human": self.human, "automated": self.automated},
            "unique_human_clickers": self.clickers,
            "ctr": self.ctr,
            "automated_by_rule": self.removed,
            "sent": self.sent,
            "delivered": self.webhook.get("delivered", 0),
            "bounced": self.webhook.get("bounced", 0),
            "complained": self.webhook.get("complained", 0),
            "unsubscribes": self.unsubscribes,
            "votes": {"votes": self.votes, "voters": self.voters},
            "opens": self.opens.as_json()
            if self.opens is not None
            else {"reported": False, "reliable": False, "note": OPENS_OFF_NOTE},
            "comparisons": [asdict(line) for line in self.comparisons],
            "hours_utc": list(self.hours),
            "trend": [asdict(point) for point in self.trend],
        }


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def accepted_times(connection: Connection, edition_id: int) -> dict[int, dt.datetime]:
    """When the provider accepted each subscriber's message of ``edition_id``."""
    rows = connection.execute(
        sa.select(DELIVERY.c.subscriber_id, DELIVERY.c.sent_at).where(
            DELIVERY.c.edition_id == edition_id,
            DELIVERY.c.sent_at.is_not(None),
            DELIVERY.c.subscriber_id.is_not(None),
        )
    ).all()
    return {int(row.subscriber_id): aware(row.sent_at) for row in rows}


def classify(engine: Engine, settings: Settings, edition_id: int) -> int:
    """Classify ``edition_id``'s hits with the current rules; how many verdicts changed."""
    with immediate_transaction(engine) as connection:
        return clicks.classify_edition(
            connection,
            edition_id,
            accepted=accepted_times(connection, edition_id),
            min_seconds=settings.click_min_seconds,
        )


def retire_old_hits(engine: Engine, settings: Settings, now: dt.datetime) -> int:
    """Fold raw link hits and pixel fetches older than ``click_retention_days`` into daily
    counts (classifying the hits' editions first, so the counts keep the verdicts; fetches are
    classified when stored); how many raw rows were deleted."""
    cutoff = now - dt.timedelta(days=settings.click_retention_days)
    with engine.connect() as connection:
        editions = clicks.editions_with_hits_before(connection, cutoff)
    for edition_id in editions:
        classify(engine, settings, edition_id)
    with immediate_transaction(engine) as connection:
        folded = clicks.fold_old_hits(connection, older_than=cutoff)
        return folded + pixel.fold_old_opens(connection, older_than=cutoff)


def open_figures(
    connection: Connection,
    settings: Settings,
    edition_id: int,
    *,
    sent: int,
    delivered: int,
) -> OpenFigures | None:
    """``edition_id``'s opens, or None when they are not measured (the setting is off and no
    fetch was stored)."""
    found = pixel.counts(connection, edition_id)
    if not settings.track_opens and not found.hits:
        return None
    removed = {str(reason): 0 for reason in OPEN_RULES}
    for reason, hits in found.automated.items():
        removed[reason] = removed.get(reason, 0) + hits
    base, messages = ("delivered", delivered) if delivered else ("sent", sent)
    return OpenFigures(found.hits, found.counted, found.openers, removed, base, messages)


def _sent(connection: Connection, edition_id: int) -> int:
    return int(
        connection.execute(
            sa.select(sa.func.count()).where(
                DELIVERY.c.edition_id == edition_id,
                DELIVERY.c.state == str(DeliveryState.SENT),
            )
        ).scalar_one()
    )


def _engagement(
    counts: Mapping[int, clicks.LinkCount], links: list[int], clickers: int, sent: int
) -> Engagement:
    automated: dict[str, int] = {}
    for link in links:
        for reason, hits in counts[link].automated.items() if link in counts else ():
            automated[reason] = automated.get(reason, 0) + hits
    human = sum(counts[link].human for link in links if link in counts)
    return Engagement(human, clickers, _rate(clickers, sent), automated)


def _comparisons(connection: Connection, edition_id: int, sent: int) -> tuple[ComparisonLine, ...]:
    counts = clicks.counts(connection, edition_id)
    table = clicks.links(connection, edition_id)
    snapshots = connection.execute(
        sa.select(EDITION_COMPARISON.c.position, EDITION_COMPARISON.c.snapshot)
        .where(EDITION_COMPARISON.c.edition_id == edition_id)
        .order_by(EDITION_COMPARISON.c.position)
    ).all()
    lines = []
    for position, snapshot in snapshots:
        mine = [link for link in table if link.comparison == position]
        own = [link.link for link in mine if link.kind == "comparison"]
        names = {tool["slug"]: tool["name"] for tool in snapshot.get("tools", [])}
        tools = []
        for link in mine:
            if link.kind == "tool" and link.tool is not None:
                unique = counts[link.link].clickers if link.link in counts else 0
                tools.append(
                    ToolLine(
                        link.tool,
                        str(names.get(link.tool, link.tool)),
                        _engagement(counts, [link.link], unique, sent),
                    )
                )
        every = [link.link for link in mine]
        own_unique = counts[own[0]].clickers if own and own[0] in counts else 0
        lines.append(
            ComparisonLine(
                position=position,
                slug=str(snapshot.get("slug", "")),
                title=str(snapshot.get("title", "")),
                clicks=_engagement(
                    counts, every, clicks.human_clickers(connection, edition_id, every), sent
                ),
                link=_engagement(counts, own, own_unique, sent),
                tools=tuple(tools),
            )
        )
    return tuple(lines)


def _totals(connection: Connection, edition_id: int) -> tuple[int, dict[str, int], int]:
    """Human hits, automated hits by rule, unique human clickers."""
    counts = clicks.counts(connection, edition_id)
    removed = {str(reason): 0 for reason in Reason}
    for count in counts.values():
        for reason, hits in count.automated.items():
            removed[reason] = removed.get(reason, 0) + hits
    human = sum(count.human for count in counts.values())
    unique = clicks.human_clickers(connection, edition_id, list(counts))
    return human, removed, unique


def _window(connection: Connection, edition: Any) -> tuple[dt.datetime, dt.datetime | None]:
    """From this edition's creation to the next edition's of the same newsletter."""
    following = connection.execute(
        sa.select(sa.func.min(EDITION.c.created_at)).where(
            EDITION.c.newsletter == edition.newsletter, EDITION.c.id > edition.id
        )
    ).scalar()
    return aware(edition.created_at), None if following is None else aware(following)


def edition_report(
    engine: Engine,
    settings: Settings,
    edition_id: int,
    *,
    webhook: Mapping[str, int] | None = None,
) -> EditionReport:
    """The report of ``edition_id`` (classifying its hits first)."""
    with engine.connect() as connection:
        edition = connection.execute(sa.select(EDITION).where(EDITION.c.id == edition_id)).first()
        if edition is None:
            raise NotFoundError(f"no edition {edition_id}")
        history = connection.execute(
            sa.select(EDITION.c.id, EDITION.c.week)
            .where(EDITION.c.newsletter == edition.newsletter, EDITION.c.id <= edition_id)
            .order_by(EDITION.c.id.desc())
            .limit(TREND_EDITIONS)
        ).all()
    for past_id, _week in history:
        classify(engine, settings, past_id)
    with engine.connect() as connection:
        sent = _sent(connection, edition_id)
        human, removed, unique = _totals(connection, edition_id)
        start, end = _window(connection, edition)
        unsubscribed = sa.and_(
            SUBSCRIBER.c.unsubscribed_at >= start,
            SUBSCRIBER.c.unsubscribed_at < end if end is not None else sa.true(),
        )
        unsubscribes = int(
            connection.execute(sa.select(sa.func.count()).where(unsubscribed)).scalar_one()
        )
        votes, voters = connection.execute(
            sa.select(
                sa.func.count(), sa.func.count(sa.distinct(VOTE_EVENT.c.subscriber_id))
            ).where(VOTE_EVENT.c.edition_id == edition_id)
        ).one()
        trend = []
        for past_id, week in reversed(history):
            past_sent = _sent(connection, past_id)
            past_human, _removed, past_unique = _totals(connection, past_id)
            trend.append(
                TrendPoint(
                    past_id, week, past_sent, past_human, past_unique, _rate(past_unique, past_sent)
                )
            )
        return EditionReport(
            edition_id=edition_id,
            week=edition.week,
            subject=edition.subject,
            sent=sent,
            webhook=dict(webhook or {}),
            unsubscribes=unsubscribes,
            votes=int(votes),
            voters=int(voters),
            human=human,
            automated=sum(removed.values()),
            clickers=unique,
            removed=removed,
            comparisons=_comparisons(connection, edition_id, sent),
            hours=tuple(clicks.human_hours(connection, edition_id)),
            trend=tuple(trend),
            opens=open_figures(
                connection,
                settings,
                edition_id,
                sent=sent,
                delivered=int((webhook or {}).get("delivered", 0)),
            ),
        )


def report_text(report: EditionReport) -> str:
    """The report as a terminal reads it."""
    hook = report.webhook
    lines = [
        f"Edition {report.edition_id} ({report.week}): {report.subject}",
        f"sent {report.sent} · delivered {hook.get('delivered', 0)} · bounced "
        f"{hook.get('bounced', 0)} · complained {hook.get('complained', 0)} · unsubscribes "
        f"{report.unsubscribes} · votes {report.votes} from {report.voters} readers",
        f"clicks: {report.human} human from {report.clickers} readers "
        f"(CTR {report.ctr:.1%}); {report.automated} automated removed: "
        + ", ".join(f"{reason} {hits}" for reason, hits in report.removed.items()),
        _opens_line(report.opens),
        "",
    ]
    for line in report.comparisons:
        c = line.clicks
        lines.append(
            f"{line.position + 1}. {line.title}: {c.human} human clicks, {c.clickers} readers, "
            f"CTR {c.ctr:.1%}, {sum(c.automated.values())} automated removed"
        )
        for tool in line.tools:
            t = tool.clicks
            lines.append(
                f"     {tool.name}: {t.human} human clicks, {t.clickers} readers, "
                f"{sum(t.automated.values())} automated removed"
            )
    lines.append("")
    lines.append(
        "trend (last editions): "
        + "  ".join(f"{p.week} {p.human_clicks}/{p.ctr:.1%}" for p in report.trend)
    )
    lines.append(OPENS_NOTE if report.opens is not None else OPENS_OFF_NOTE)
    return "\n".join(lines)


def _opens_line(opens: OpenFigures | None) -> str:
    if opens is None:
        return "opens: not measured"
    return (
        f"opens (unreliable): {opens.counted} pixel fetches from {opens.openers} readers "
        f"(open rate {opens.rate:.1%} of {opens.base}); {sum(opens.removed.values())} automated "
        "removed: " + ", ".join(f"{reason} {hits}" for reason, hits in opens.removed.items())
    )
