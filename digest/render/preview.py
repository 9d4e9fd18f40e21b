"""The editor's preview: exactly the message one subscriber would get for a week, unsent.

``build_preview`` reads the week's comparisons and the subscriber in a read-only transaction
(SQLite ``PRAGMA query_only``, PostgreSQL ``SET TRANSACTION READ ONLY``, rolled back at the
end), renders with the same ``EditionRenderer`` and ``compose`` as a real send, and lints the
result. Without a subscriber it uses a sample reader who follows every category.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import jinja2
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from digest.backends.message import OutgoingMessage
from digest.config import Settings
from digest.content.store import comparisons_for_week
from digest.content.weeks import IsoWeek
from digest.db import is_sqlite
from digest.editions.models import Edition
from digest.errors import NotFoundError
from digest.render.archive import archive_url
from digest.render.compose import Recipient
from digest.render.edition import CompiledVariant, EditionRenderer
from digest.render.lint import LintWarning, lint_message
from digest.render.mjml import MjmlCompiler
from subscribers.models import Status, Subscriber
from subscribers.normalize import normalize_email

SAMPLE_RECIPIENT = Recipient(subscriber_id=0, email="reader@example.com", name="")


@dataclass(frozen=True, slots=True)
class Preview:
    """What the preview shows: the message (None when the subscriber would get nothing)."""

    week: IsoWeek
    recipient: Recipient
    categories: tuple[str, ...]
    message: OutgoingMessage | None
    variant: CompiledVariant | None
    warnings: tuple[LintWarning, ...]
    notes: tuple[str, ...]


@contextmanager
def read_only_session(engine: Engine) -> Iterator[Session]:
    """A session whose transaction refuses writes and is always rolled back."""
    with engine.connect() as connection:
        sqlite = is_sqlite(connection)
        if sqlite:
            connection.exec_driver_sql("PRAGMA query_only = ON")
        else:
            connection.exec_driver_sql("SET TRANSACTION READ ONLY")
        try:
            with Session(bind=connection) as session:
                yield session
        finally:
            connection.rollback()
            if sqlite:
                connection.exec_driver_sql("PRAGMA query_only = OFF")
                connection.rollback()


def find_subscriber(session: Session, email: str) -> Subscriber:
    """The subscriber with this address (matched case-insensitively), or ``NotFoundError``."""
    key = normalize_email(email).key
    subscriber = session.exec(select(Subscriber).where(Subscriber.email_key == key)).first()
    if subscriber is None:
        raise NotFoundError(f"no subscriber with address {email!r}")
    return subscriber


def edition_archive_url(session: Session, settings: Settings, week: IsoWeek) -> str:
    """The archive URL of the week's edition (by id once it exists, else by week)."""
    edition = session.exec(
        select(Edition).where(Edition.newsletter == settings.newsletter, Edition.week == str(week))
    ).first()
    return archive_url(settings, edition.id if edition and edition.id else str(week))


def build_preview(
    settings: Settings,
    engine: Engine,
    week: IsoWeek,
    *,
    email: str | None = None,
    environment: jinja2.Environment | None = None,
    compiler: MjmlCompiler | None = None,
) -> Preview:
    """Render ``week`` for the subscriber ``email`` (or the sample reader); send nothing."""
    notes: list[str] = []
    categories: tuple[str, ...] = ()
    with read_only_session(engine) as session:
        comparisons = comparisons_for_week(session, week, settings.zone, only_new=False)
        if not comparisons:
            raise NotFoundError(f"no comparisons published in {week} ({settings.timezone})")
        if email is None:
            recipient = SAMPLE_RECIPIENT
        else:
            subscriber = find_subscriber(session, email)
            if subscriber.id is None:  # pragma: no cover - a stored row always has an id
                raise NotFoundError(f"subscriber {email!r} has no id")
            recipient = Recipient(subscriber.id, subscriber.email, subscriber.name)
            categories = tuple(subscriber.categories)
            if subscriber.status != Status.ACTIVE or subscriber.paused:
                state = "paused" if subscriber.paused else subscriber.status
                notes.append(f"{subscriber.email} is {state}: a real send would skip them")
        url = edition_archive_url(session, settings, week)
    renderer = EditionRenderer(
        settings,
        comparisons,
        week=week,
        archive_url=url,
        environment=environment,
        compiler=compiler,
    )
    variant = renderer.variant_for(categories)
    if variant is None:
        notes.append(
            f"none of the {len(comparisons)} comparisons of {week} is in the categories "
            f"{recipient.email} follows ({', '.join(categories)}): they get no email this week"
        )
        return Preview(week, recipient, categories, None, None, (), tuple(notes))
    message = variant.message_for(recipient, message_id=variant.new_message_id())
    return Preview(
        week, recipient, categories, message, variant, tuple(lint_message(message)), tuple(notes)
    )
