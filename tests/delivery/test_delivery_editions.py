"""Editions: created once per week however many callers race, with the week's new comparisons
frozen; and the ledger: one row per mailable, matching subscriber, resumable after a crash."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
import sqlalchemy as sa
from delivery_support import DELIVERY, W47, add_subscribers, ledger
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from digest.config import Settings
from digest.content.weeks import IsoWeek
from digest.db import session_scope
from digest.delivery.prepare import complete_ledger, plan_send, prepare_edition
from digest.editions.models import Edition, EditionComparison, EditionStatus
from digest.editions.service import (
    edition_documents,
    get_or_create_edition,
    open_edition,
)
from digest.render.edition import subject_for
from digest.render.variants import key_of
from subscribers import lifecycle
from subscribers.models import Cause, SuppressionReason
from subscribers.suppression import add as suppress


def test_an_edition_freezes_the_weeks_new_comparisons(
    loaded: Engine, send_settings: Settings
) -> None:
    outcome = open_edition(loaded, send_settings, W47, subject_for=subject_for(send_settings, W47))
    assert outcome.created and outcome.edition is not None
    edition = outcome.edition
    assert edition.id is not None
    assert (edition.newsletter, edition.week, edition.status) == ("weekly", "2026-W47", "sending")
    assert edition.subject == "Deskpilot vs Ticketsmith, and 5 more verdicts"
    assert not edition.ledger_complete
    with session_scope(loaded) as session:
        docs = edition_documents(session, edition.id)
        positions = session.exec(
            select(EditionComparison.position).where(EditionComparison.edition_id == edition.id)
        ).all()
    assert len(docs) == 6 and sorted(positions) == list(range(6))
    assert [doc.published_at for doc in docs] == sorted(doc.published_at for doc in docs)

    again = open_edition(loaded, send_settings, W47, subject_for=subject_for(send_settings, W47))
    assert not again.created and again.edition is not None and again.edition.id == edition.id


def test_comparisons_carried_by_an_edition_are_not_new_again(
    loaded: Engine, send_settings: Settings
) -> None:
    first = get_or_create_edition(
        loaded, send_settings, W47, subject_for=subject_for(send_settings, W47)
    )
    assert first is not None
    # The same week in another newsletter finds nothing new: all six are carried.
    other = send_settings.model_copy(update={"newsletter": "other"})
    outcome = open_edition(loaded, other, W47, subject_for=subject_for(other, W47))
    assert outcome.edition is None
    assert outcome.reason.startswith("no edition for 2026-W47: 0 new comparisons")


def test_too_few_new_comparisons_make_no_edition(loaded: Engine, send_settings: Settings) -> None:
    demanding = send_settings.model_copy(update={"min_new_comparisons": 7})
    outcome = open_edition(loaded, demanding, W47, subject_for=subject_for(demanding, W47))
    assert outcome.edition is None and not outcome.created
    assert "6 new comparisons, at least 7 needed" in outcome.reason
    assert (
        get_or_create_edition(loaded, demanding, W47, subject_for=subject_for(demanding, W47))
        is None
    )
    empty_week = open_edition(
        loaded,
        send_settings,
        IsoWeek(2026, 30),
        subject_for=subject_for(send_settings, IsoWeek(2026, 30)),
    )
    assert empty_week.edition is None and "0 new comparisons" in empty_week.reason
    with Session(loaded) as session:
        assert session.exec(select(Edition)).all() == []


def test_racing_callers_get_one_edition(loaded: Engine, send_settings: Settings) -> None:
    add_subscribers(loaded, 40)
    barrier = threading.Barrier(6)
    ids: list[int | None] = []
    errors: list[BaseException] = []

    def create() -> None:
        try:
            barrier.wait()
            outcome = prepare_edition(loaded, send_settings, W47)
            assert outcome.edition is not None
            ids.append(outcome.edition.id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert len(set(ids)) == 1 and len(ids) == 6
    with Session(loaded) as session:
        assert len(session.exec(select(Edition)).all()) == 1
    rows = ledger(loaded)
    assert len(rows) == 40
    assert len({row.subscriber_id for row in rows}) == 40


def test_the_ledger_holds_mailable_matching_subscribers_only(
    loaded: Engine, send_settings: Settings
) -> None:
    with session_scope(loaded) as session:
        people = {
            name: lifecycle.signup(
                session, f"{name}@example.com", name=name, categories=categories, confirmed=True
            ).subscriber
            for name, categories in [
                ("all", []),
                ("dev", ["developer tools"]),
                ("video", ["Image & Video"]),  # nothing in W47
                ("paused", []),
                ("gone", []),
                ("suppressed", []),
                ("bounced", []),
            ]
        }
        lifecycle.signup(session, "pending@example.com")  # never confirmed
        ids = {name: person.id for name, person in people.items() if person is not None}
        lifecycle.update_preferences(session, ids["paused"], paused=True, actor="test")
        lifecycle.unsubscribe(session, ids["gone"], cause=Cause.LINK, actor="test")
        suppress(session, "suppressed@example.com", SuppressionReason.ADMIN)
        lifecycle.record_bounce(session, "bounced@example.com", hard=True, actor="test")

    outcome = prepare_edition(loaded, send_settings, W47)
    assert outcome.edition is not None and outcome.edition.ledger_complete
    rows = ledger(loaded)
    assert {row.email for row in rows} == {"all@example.com", "dev@example.com"}
    by_email = {row.email: row for row in rows}
    with session_scope(loaded) as session:
        assert outcome.edition.id is not None
        docs = edition_documents(session, outcome.edition.id)
    assert by_email["all@example.com"].variant == key_of(docs)
    dev_docs = [doc for doc in docs if "Developer Tools" in doc.categories]
    assert by_email["dev@example.com"].variant == key_of(dev_docs)
    assert all(row.state == "pending" and row.attempts == 0 for row in rows)
    assert all(row.message_id.startswith("<") and row.message_id.endswith(">") for row in rows)
    assert len({row.message_id for row in rows}) == len(rows)


def test_a_ledger_cut_short_is_completed_without_duplicates(
    loaded: Engine, send_settings: Settings
) -> None:
    add_subscribers(loaded, 300)
    outcome = prepare_edition(loaded, send_settings, W47)
    edition = outcome.edition
    assert edition is not None and edition.id is not None
    before = {row.subscriber_id: row.message_id for row in ledger(loaded)}
    # As if the process died after the first rows: some rows missing, the flag not set.
    with loaded.begin() as connection:
        connection.execute(sa.delete(DELIVERY).where(DELIVERY.c.subscriber_id % 3 == 0))
        connection.execute(
            sa.update(Edition).where(Edition.id == edition.id).values(ledger_complete=False)
        )
    with session_scope(loaded) as session:
        cut = session.get(Edition, edition.id)
        assert cut is not None and not cut.ledger_complete
    again = prepare_edition(loaded, send_settings, W47)
    assert again.edition is not None and again.edition.ledger_complete
    after = {row.subscriber_id: row.message_id for row in ledger(loaded)}
    assert set(after) == set(before)
    # Rows that survived keep their Message-ID (a retry must reuse it).
    assert all(after[key] == before[key] for key in after if key % 3 != 0)
    assert complete_ledger(loaded, send_settings, again.edition) == len(before)


def test_a_ledger_of_thousands_is_built_in_bulk(loaded: Engine, send_settings: Settings) -> None:
    add_subscribers(loaded, 5000, categories=[[], ["Image & Video"]])
    outcome = prepare_edition(loaded, send_settings, W47)
    assert outcome.edition is not None
    rows = ledger(loaded)
    assert len(rows) == 2500
    assert Counter(row.variant for row in rows).most_common(1)[0][1] == 2500


def test_dry_run_plans_without_writing(loaded: Engine, send_settings: Settings) -> None:
    add_subscribers(loaded, 8)
    plan = plan_send(loaded, send_settings, W47)
    assert plan.edition is None and plan.recipients == 8
    assert plan.subject == "Deskpilot vs Ticketsmith, and 5 more verdicts"
    assert sorted(variant.comparisons for variant in plan.variants) == [1, 2, 2, 6]
    assert all(variant.recipients == 2 for variant in plan.variants)
    with Session(loaded) as session:
        assert session.exec(select(Edition)).all() == []
    outcome = prepare_edition(loaded, send_settings, W47)
    assert outcome.edition is not None
    planned = plan_send(loaded, send_settings, W47)
    assert planned.edition is not None and planned.edition.id == outcome.edition.id
    assert planned.recipients == len(ledger(loaded))


@pytest.mark.parametrize("status", [EditionStatus.CANCELLED, EditionStatus.SENT])
def test_an_existing_edition_is_returned_whatever_its_status(
    loaded: Engine, send_settings: Settings, status: EditionStatus
) -> None:
    outcome = prepare_edition(loaded, send_settings, W47)
    assert outcome.edition is not None
    with loaded.begin() as connection:
        connection.execute(sa.update(Edition).values(status=str(status)))
    again = prepare_edition(loaded, send_settings, W47)
    assert again.edition is not None and again.edition.status == status and not again.created
