"""From a week to something to send: open the edition, complete its ledger, and build the
messages of its rows; also the dry run and the single test copy of ``digest send``, and when
one subscriber receives the edition of a week (``digest preview --as``).

``prepare_edition`` is what ``digest send`` and the scheduler call: it creates the edition
(``digest.editions.service``) and then completes its ledger if a previous run died before, so
it is the one safe way in however often it runs. ``message_factories`` gives the delivery
engine, per edition, a function from a claimed row to its message: the renderer is rebuilt
from the edition's frozen snapshots (never from the current content) and every variant the
ledger names is compiled once, up front, per process.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col
from sqlmodel import select as select_rows

from digest.backends.base import EmailBackend, SendResult
from digest.config import Settings
from digest.content.document import ComparisonDoc
from digest.content.weeks import IsoWeek
from digest.db import aware, immediate_session, session_scope, utcnow
from digest.delivery.build import VariantKey, ensure_ledger
from digest.delivery.ledger import DELIVERY, EDITION, ClaimedRow
from digest.delivery.local_time import (
    LocalSchedule,
    delivery_day,
    delivery_weekday,
    parse_send_time,
    state_key,
    zone_of,
)
from digest.delivery.models import DeliveryState
from digest.delivery.sender import MessageFactory
from digest.delivery.status import utc_iso
from digest.editions.models import Edition, EditionStatus
from digest.editions.selection import new_comparisons
from digest.editions.service import (
    EditionOutcome,
    edition_documents,
    find_edition,
    get_edition,
    open_edition,
    too_few_reason,
)
from digest.editions.votes import ReaderFigures, reader_figures
from digest.errors import NotFoundError
from digest.message import OutgoingMessage
from digest.render.archive import archive_url
from digest.render.compose import Recipient, new_message_id
from digest.render.edition import EditionRenderer, subject_for
from digest.render.subject import SubjectFields, render_subject
from digest.render.variants import key_of, select
from digest.state import read_state, write_state
from subscribers.lifecycle import mailable_subscribers_query
from subscribers.models import Subscriber
from subscribers.normalize import normalize_email
from subscribers.tokens import TokenSigner

TEST_SUBJECT_PREFIX = "[TEST] "
TEST_SUBSCRIBER_ID = 0  # its links sign a subscriber that does not exist: they do nothing


def variant_keys(comparisons: Sequence[ComparisonDoc]) -> VariantKey:
    """Categories -> variant key, without compiling anything (the renderer's own rule)."""

    def key(categories: Sequence[str]) -> str | None:
        selected = select(comparisons, categories)
        return key_of(selected) if selected else None

    return key


def renderer_for(
    settings: Settings,
    week: IsoWeek | str,
    comparisons: Sequence[ComparisonDoc],
    *,
    signer: TokenSigner | None = None,
    edition_id: int | None = None,
    figures: ReaderFigures | None = None,
) -> EditionRenderer:
    """The renderer of ``week``'s edition: its vote links name ``edition_id``, and its cards
    show the community ``figures`` (``digest.editions.votes.reader_figures``)."""
    week = week if isinstance(week, IsoWeek) else IsoWeek.parse(week)
    figures = figures or ReaderFigures()
    return EditionRenderer(
        settings,
        comparisons,
        week=week,
        archive_url=archive_url(settings, str(week)),
        signer=signer,
        edition_id=edition_id,
        community=figures.community,
        recap=figures.recap,
    )


def prepare_edition(engine: Engine, settings: Settings, week: IsoWeek) -> EditionOutcome:
    """The edition of ``week`` with a complete ledger (created and built if needed)."""
    outcome = open_edition(engine, settings, week, subject_for=subject_for(settings, week))
    edition = outcome.edition
    if edition is not None and edition.status == EditionStatus.SENDING:
        complete_ledger(engine, settings, edition)
    return outcome


def complete_ledger(
    engine: Engine, settings: Settings, edition: Edition, *, on_delivery_day: bool = False
) -> int:
    """Build whatever is missing of ``edition``'s ledger; rows in the ledger.

    In local-time delivery the rows are due at the send time of the edition's delivery day
    (``on_delivery_day``: the weekly job) or at the next one from now (a manual send), each
    in the subscriber's zone; see ``ledger_schedule``.
    """
    assert edition.id is not None
    with session_scope(engine) as session:
        documents = edition_documents(session, edition.id)
    return ensure_ledger(
        engine,
        edition,
        variant_keys(documents),
        partial(new_message_id, settings.sender_address.domain),
        schedule=ledger_schedule(engine, settings, edition, on_delivery_day=on_delivery_day),
    )


def ledger_schedule(
    engine: Engine, settings: Settings, edition: Edition, *, on_delivery_day: bool = False
) -> LocalSchedule | None:
    """The local-time schedule of ``edition``'s ledger; None when its rows are due at once.

    Chosen once, when the ledger is started in ``local-time`` mode, and kept with the edition
    (``ServiceState[local_time:<id>]``): a resumed build, every claim and ``digest status``
    use that rule, whatever the settings say later. The edition row is locked meanwhile, so
    two processes starting the same ledger agree on one rule.
    """
    assert edition.id is not None
    key = state_key(edition.id)
    with immediate_session(engine) as session:
        locked = sa.select(EDITION.c.id).where(EDITION.c.id == edition.id)
        if session.get_bind().dialect.name == "postgresql":
            locked = locked.with_for_update()
        session.connection().execute(locked)
        stored = read_state(session, key)
        if stored is not None:
            return LocalSchedule.from_dict(stored)
        if settings.delivery_mode != "local-time" or edition.ledger_complete:
            return None
        day = None
        if on_delivery_day:
            weekday = delivery_weekday(settings.delivery_day, settings.schedule)
            day = delivery_day(IsoWeek.parse(edition.week).monday, weekday)
        schedule = LocalSchedule(
            parse_send_time(settings.local_send_time), settings.zone, utcnow(), day
        )
        write_state(session, key, schedule.as_dict())
        return schedule


def edition_schedule(engine: Engine, edition_id: int) -> LocalSchedule | None:
    """The stored local-time schedule of an edition (None: at once)."""
    with session_scope(engine) as session:
        stored = read_state(session, state_key(edition_id))
    return None if stored is None else LocalSchedule.from_dict(stored)


def delivery_time(
    session: Session,
    settings: Settings,
    week: IsoWeek,
    subscriber: Subscriber,
    *,
    now: dt.datetime | None = None,
) -> str | None:
    """When ``subscriber`` receives the edition of ``week``, in words (``digest preview --as``):
    sent already, due at their send time (by the rule kept with the edition, or the one the
    weekly job would use), or None when delivery is at once."""
    now = now or utcnow()
    edition = find_edition(session, settings.newsletter, week)
    stored = None if edition is None else read_state(session, state_key(edition.id or 0))
    if edition is not None and subscriber.id is not None:
        sent_at = (
            session.connection()
            .execute(
                sa.select(DELIVERY.c.sent_at).where(
                    DELIVERY.c.edition_id == edition.id,
                    DELIVERY.c.subscriber_id == subscriber.id,
                    DELIVERY.c.state == str(DeliveryState.SENT),
                )
            )
            .scalar()
        )
        if sent_at is not None:
            return f"{subscriber.email} was sent this edition at {utc_iso(aware(sent_at))}"
    if stored is not None:
        schedule = LocalSchedule.from_dict(stored)
    elif settings.delivery_mode == "local-time" and (
        edition is None or not edition.ledger_complete
    ):
        weekday = delivery_weekday(settings.delivery_day, settings.schedule)
        day = delivery_day(week.monday, weekday)
        schedule = LocalSchedule(parse_send_time(settings.local_send_time), settings.zone, now, day)
        if schedule.due(subscriber.timezone) < now:  # a send now: the next send time
            schedule = LocalSchedule(schedule.at, schedule.default_zone, now)
    else:
        return None
    due = schedule.due(subscriber.timezone)
    zone = zone_of(subscriber.timezone, schedule.default_zone)
    local = due.astimezone(zone)
    verb = "is due" if due > now else "was due (it goes at once)"
    return (
        f"{subscriber.email} {verb} this edition at {local:%a %d %b %Y %H:%M} {zone.key}"
        f" ({utc_iso(due)})"
    )


def complete_ledgers(engine: Engine, settings: Settings) -> int:
    """Finish the ledger of every sending edition left incomplete (a send that died while
    building it); how many editions were completed."""
    with session_scope(engine) as session:
        unfinished = session.exec(
            select_rows(Edition).where(
                Edition.status == str(EditionStatus.SENDING),
                col(Edition.ledger_complete).is_(False),
            )
        ).all()
    for edition in unfinished:
        complete_ledger(engine, settings, edition)
    return len(unfinished)


def message_factories(
    engine: Engine, settings: Settings, *, signer: TokenSigner | None = None
) -> Callable[[int], MessageFactory]:
    """For ``DeliveryEngine``: edition id -> the function building a claimed row's message."""

    def for_edition(edition_id: int) -> MessageFactory:
        with session_scope(engine) as session:
            edition = get_edition(session, edition_id)
            documents = edition_documents(session, edition_id)
            figures = reader_figures(
                session.connection(), settings.newsletter, edition.week, documents
            )
            keys = [
                str(row[0])
                for row in session.connection().execute(
                    sa.select(DELIVERY.c.variant)
                    .where(DELIVERY.c.edition_id == edition_id)
                    .distinct()
                )
            ]
        renderer = renderer_for(
            settings,
            edition.week,
            documents,
            signer=signer,
            edition_id=edition_id,
            figures=figures,
        )
        for key in keys:  # compiled before the first claim, not inside it
            renderer.variant_by_key(key)

        def build(row: ClaimedRow) -> OutgoingMessage:
            variant = renderer.variant_by_key(row.variant, votes=row.vote_links)
            # The Message-ID doubles as the idempotency key: a provider that deduplicates
            # turns the resend of an ``unknown`` row into a no-op.
            return variant.message_for(
                Recipient(
                    row.subscriber_id,
                    row.email,
                    row.name,
                    row.first_name,
                    track_clicks=row.track_clicks,
                ),
                message_id=row.message_id,
                idempotency_key=row.message_id,
            )

        return build

    return for_edition


# -- dry run and test copy -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VariantPlan:
    key: str
    subject: str
    comparisons: int
    recipients: int


@dataclass(frozen=True, slots=True)
class SendPlan:
    """What ``digest send`` would do for a week, computed without writing anything."""

    week: IsoWeek
    edition: Edition | None
    subject: str
    titles: tuple[str, ...]
    variants: tuple[VariantPlan, ...]
    reason: str = ""
    documents: tuple[ComparisonDoc, ...] = ()  # what the edition carries (for the size line)

    @property
    def recipients(self) -> int:
        return sum(variant.recipients for variant in self.variants)


def plan_send(engine: Engine, settings: Settings, week: IsoWeek) -> SendPlan:
    """The edition of ``week`` and its recipients per variant: from the ledger when the edition
    exists, else from the current subscribers and the week's new comparisons."""
    with session_scope(engine) as session:
        edition = find_edition(session, settings.newsletter, week)
        if edition is not None:
            assert edition.id is not None
            documents = edition_documents(session, edition.id)
            rows = session.connection().execute(
                sa.select(DELIVERY.c.variant, sa.func.count())
                .where(DELIVERY.c.edition_id == edition.id)
                .group_by(DELIVERY.c.variant)
            )
            counts = Counter({str(key): int(count) for key, count in rows})
        else:
            documents = [doc for _id, doc in new_comparisons(session, week, settings)]
            if len(documents) < settings.min_new_comparisons:
                reason = too_few_reason(week, len(documents), settings)
                return SendPlan(week, None, "", tuple(d.title for d in documents), (), reason)
            key = variant_keys(documents)
            counts = Counter()
            by_choice: Counter[tuple[str, ...]] = Counter(
                tuple(row[0] or ())
                for row in session.connection().execute(
                    mailable_subscribers_query().with_only_columns(col(Subscriber.categories))
                )
            )
            for choice, count in by_choice.items():
                variant = key(choice)
                if variant is not None:
                    counts[variant] += count
    by_key = _selections(documents)
    variants = tuple(
        VariantPlan(
            key=variant,
            subject=_subject(settings, week, by_key.get(variant, documents)),
            comparisons=len(by_key.get(variant, documents)),
            recipients=count,
        )
        for variant, count in counts.most_common()
    )
    subject = edition.subject if edition else _subject(settings, week, documents)
    titles = tuple(doc.title for doc in documents)
    return SendPlan(week, edition, subject, titles, variants, documents=tuple(documents))


def _selections(documents: Sequence[ComparisonDoc]) -> dict[str, list[ComparisonDoc]]:
    from itertools import chain

    from digest.render.variants import category_choices

    found: dict[str, list[ComparisonDoc]] = {}
    for choice in chain([()], category_choices(documents)):
        selected = select(documents, choice)
        if selected:
            found.setdefault(key_of(selected), selected)
    return found


def _subject(settings: Settings, week: IsoWeek, documents: Sequence[ComparisonDoc]) -> str:
    return render_subject(
        settings.subject_template, SubjectFields.of(documents, week, settings.site_name)
    )


def send_test_copy(
    engine: Engine, settings: Settings, backend: EmailBackend, week: IsoWeek, address: str
) -> SendResult:
    """Send one copy of the week's edition (every comparison) to ``address``, subject prefixed
    ``[TEST]``; the ledger is not touched. Uses the edition's snapshots when it exists."""
    recipient = normalize_email(address)
    with session_scope(engine) as session:
        edition = find_edition(session, settings.newsletter, week)
        if edition is not None and edition.id is not None:
            documents = edition_documents(session, edition.id)
        else:
            documents = [doc for _id, doc in new_comparisons(session, week, settings)]
    if not documents:
        raise NotFoundError(f"no comparisons for {week}: nothing to send a test copy of")
    variant = renderer_for(settings, week, documents).variant_for(())
    assert variant is not None
    message = variant.message_for(
        Recipient(TEST_SUBSCRIBER_ID, recipient.email), message_id=new_message_id(settings)
    )
    message = dataclasses.replace(message, subject=TEST_SUBJECT_PREFIX + message.subject)
    return backend.send_batch([message])[0]
