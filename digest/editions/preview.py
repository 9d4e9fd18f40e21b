"""The editor's preview: exactly the message one subscriber would get for a week, unsent.

``build_preview`` reads the week's comparisons and the subscriber in a read-only transaction
(SQLite ``PRAGMA query_only``, PostgreSQL ``SET TRANSACTION READ ONLY``, rolled back at the
end), renders with the same ``EditionRenderer`` and ``compose`` as a real send, and lints the
result. Without a subscriber it uses a sample reader who follows every category.

Once the week's edition exists, a send uses its frozen snapshots, so the preview does too (and
says so in a note); before that it shows the current selection, the new comparisons that
opening the edition would freeze (``digest.editions.selection``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import jinja2
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from digest.config import Settings
from digest.content.weeks import IsoWeek
from digest.db import is_sqlite
from digest.editions.service import week_comparisons
from digest.editions.votes import reader_figures
from digest.errors import NotFoundError
from digest.message import OutgoingMessage
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
    edition_id: int | None  # the edition whose snapshots were rendered; None: the selection
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
    vote_links = True
    with read_only_session(engine) as session:
        edition, comparisons = week_comparisons(session, settings, week)
        edition_id = edition.id if edition is not None else None
        figures = reader_figures(session.connection(), settings.newsletter, str(week), comparisons)
        if edition is not None:
            notes.append(
                f"rendered from edition {edition_id} of {week} ({edition.status}): "
                f"its {len(comparisons)} frozen comparison snapshot(s), as a send uses them"
            )
        if email is None:
            recipient = SAMPLE_RECIPIENT
        else:
            subscriber = find_subscriber(session, email)
            if subscriber.id is None:  # pragma: no cover - a stored row always has an id
                raise NotFoundError(f"subscriber {email!r} has no id")
            recipient = Recipient(
                subscriber.id,
                subscriber.email,
                subscriber.name,
                subscriber.first_name,
                track_clicks=subscriber.track_clicks,
            )
            vote_links = subscriber.vote_links
            categories = tuple(subscriber.categories)
            if subscriber.status != Status.ACTIVE or subscriber.paused:
                state = "paused" if subscriber.paused else subscriber.status
                notes.append(f"{subscriber.email} is {state}: a real send would skip them")
    url = archive_url(settings, edition_id if edition_id is not None else str(week))
    renderer = EditionRenderer(
        settings,
        comparisons,
        week=week,
        archive_url=url,
        edition_id=edition_id,
        community=figures.community,
        recap=figures.recap,
        environment=environment,
        compiler=compiler,
    )
    variant = renderer.variant_for(categories, votes=vote_links)
    if variant is None:
        notes.append(
            f"none of the {len(comparisons)} comparisons of {week} is in the categories "
            f"{recipient.email} follows ({', '.join(categories)}): they get no email this week"
        )
        return Preview(week, recipient, categories, edition_id, None, None, (), tuple(notes))
    message = variant.message_for(recipient, message_id=variant.new_message_id())
    notes.append(f"size: {variant.size_report()}")
    pixel = variant.links is not None and variant.links.pixel is not None
    if email is not None and pixel and recipient.track_clicks:
        notes.append(
            f"the HTML carries the open pixel of {recipient.email}, as their email does: "
            "showing it with images loaded counts as their open"
        )
    return Preview(
        week,
        recipient,
        categories,
        edition_id,
        message,
        variant,
        tuple(lint_message(message)),
        tuple(notes),
    )
