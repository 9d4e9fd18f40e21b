"""Subscriber lifecycle: transitions, the audit entries they write, and what never reactivates."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from sqlmodel import Session, col, select

from digest.db import utcnow
from digest.errors import InputError, NotFoundError
from subscribers import audit, lifecycle, suppression
from subscribers.audit import Action
from subscribers.lifecycle import (
    confirm,
    is_mailable,
    mailable_subscribers_query,
    record_bounce,
    record_complaint,
    remove,
    signup,
    unsubscribe,
    update_preferences,
)
from subscribers.models import AuditEntry, Cause, Status, Subscriber, SuppressionReason


def _entries(session: Session, key: str) -> list[tuple[str, str | None, str | None]]:
    return [(e.action, e.old_status, e.new_status) for e in audit.trail(session, key)]


def _new_active(session: Session, email: str = "ada@example.com") -> Subscriber:
    outcome = signup(session, email, name="Ada", actor="test")
    assert outcome.subscriber is not None and outcome.subscriber.id is not None
    confirmed = confirm(session, outcome.subscriber.id, actor="test")
    assert confirmed is not None
    session.commit()
    return confirmed


def test_signup_creates_pending_and_audits(session: Session) -> None:
    outcome = signup(
        session,
        " Ada@Example.com ",
        name="Ada Berger",
        timezone="Europe/Berlin",
        categories=["Developer Tools", " Developer Tools"],
        actor="web",
    )
    session.commit()
    subscriber = outcome.subscriber
    assert outcome.created and outcome.should_send_confirmation
    assert subscriber is not None
    assert (subscriber.email, subscriber.email_key) == ("Ada@example.com", "ada@example.com")
    assert subscriber.status == Status.PENDING
    assert subscriber.categories == ["Developer Tools"]
    assert subscriber.confirmed_at is None
    [entry] = audit.trail(session, "ada@example.com")
    assert (entry.action, entry.cause, entry.actor) == ("signup", "signup", "web")
    assert (entry.old_status, entry.new_status) == (None, "pending")
    assert entry.subscriber_id == subscriber.id
    assert entry.at.tzinfo is not None


def test_signup_refuses_bad_input_without_writing(session: Session) -> None:
    for kwargs in ({"timezone": "Mars/Base"}, {"categories": [""]}):
        with pytest.raises(InputError):
            signup(session, "ada@example.com", **kwargs)
    with pytest.raises(InputError):
        signup(session, "not-an-address")
    assert session.exec(select(Subscriber)).all() == []


def test_confirmed_signup_is_active_and_records_consent(session: Session) -> None:
    outcome = signup(session, "ada@example.com", confirmed=True, source="event:booth", actor="cli")
    session.commit()
    assert outcome.created and not outcome.should_send_confirmation
    assert outcome.subscriber is not None
    assert outcome.subscriber.status == Status.ACTIVE
    assert outcome.subscriber.confirmed_at is not None
    assert outcome.subscriber.source == "event:booth"
    [entry] = audit.trail(session, "ada@example.com")
    assert (entry.cause, entry.new_status) == ("admin", "active")
    assert entry.detail == {"source": "event:booth", "consent": "recorded"}


def test_repeated_signup_of_pending_resends_only_after_ten_minutes(session: Session) -> None:
    first = signup(session, "ada@example.com")
    assert first.subscriber is not None
    first.subscriber.confirmation_sent_at = utcnow()
    session.commit()
    again = signup(session, "ADA@example.com")
    assert not again.created and not again.should_send_confirmation
    assert again.subscriber is not None and again.subscriber.id == first.subscriber.id
    with time_machine.travel(utcnow() + dt.timedelta(minutes=11)):
        later = signup(session, "ada@example.com")
    assert later.should_send_confirmation and not later.created
    assert len(session.exec(select(Subscriber)).all()) == 1
    assert _entries(session, "ada@example.com") == [("signup", None, "pending")]


def test_signup_of_active_changes_nothing(session: Session) -> None:
    subscriber = _new_active(session)
    before = _entries(session, subscriber.email_key)
    outcome = signup(session, "ada@example.com", name="Mallory", categories=["Other"])
    session.commit()
    assert not outcome.created and not outcome.should_send_confirmation
    session.refresh(subscriber)
    assert subscriber.status == Status.ACTIVE
    assert subscriber.name == "Ada" and subscriber.categories == []
    assert _entries(session, subscriber.email_key) == before


def test_confirm_is_idempotent_and_audited_once(session: Session) -> None:
    outcome = signup(session, "ada@example.com")
    assert outcome.subscriber is not None and outcome.subscriber.id is not None
    first = confirm(session, outcome.subscriber.id, actor="web")
    second = confirm(session, outcome.subscriber.id, actor="web")
    session.commit()
    assert first is not None and second is not None
    assert second.status == Status.ACTIVE and second.confirmed_at is not None
    assert _entries(session, "ada@example.com") == [
        ("signup", None, "pending"),
        ("confirm", "pending", "active"),
    ]
    assert confirm(session, 999_999, actor="web") is None


def test_unsubscribe_is_idempotent_and_suppresses(session: Session) -> None:
    subscriber = _new_active(session)
    assert subscriber.id is not None
    first = unsubscribe(session, subscriber.id, cause=Cause.ONE_CLICK, actor="web")
    second = unsubscribe(session, subscriber.id, cause=Cause.LINK, actor="web")
    session.commit()
    assert first is not None and second is not None
    assert second.status == Status.UNSUBSCRIBED and second.unsubscribed_at is not None
    entries = [e for e in audit.trail(session, "ada@example.com") if e.action == "unsubscribe"]
    assert len(entries) == 1
    assert (entries[0].cause, entries[0].old_status) == ("one-click", "active")
    entry = suppression.get(session, "ada@example.com")
    assert entry is not None and entry.reason == SuppressionReason.UNSUBSCRIBED
    assert not is_mailable(session, second)
    assert unsubscribe(session, 999_999, cause=Cause.LINK, actor="web") is None


def test_web_signup_after_unsubscribe_needs_a_new_confirmation(session: Session) -> None:
    subscriber = _new_active(session)
    assert subscriber.id is not None
    unsubscribe(session, subscriber.id, cause=Cause.LINK, actor="web")
    session.commit()

    outcome = signup(session, "ada@example.com", categories=["Image & Video"], actor="web")
    session.commit()
    assert outcome.subscriber is not None
    assert outcome.subscriber.status == Status.PENDING  # not active: never silently reactivated
    assert outcome.should_send_confirmation and not outcome.created
    assert outcome.subscriber.categories == ["Image & Video"]
    assert suppression.is_suppressed(session, "ada@example.com")  # until confirmed
    assert not is_mailable(session, outcome.subscriber)

    confirm(session, subscriber.id, actor="web")
    session.commit()
    session.refresh(subscriber)
    assert subscriber.status == Status.ACTIVE
    assert not suppression.is_suppressed(session, "ada@example.com")
    assert is_mailable(session, subscriber)
    assert _entries(session, "ada@example.com")[-2:] == [
        ("signup", "unsubscribed", "pending"),
        ("confirm", "pending", "active"),
    ]


def test_confirmed_signup_never_reactivates_an_unsubscribed_address(session: Session) -> None:
    subscriber = _new_active(session)
    assert subscriber.id is not None
    unsubscribe(session, subscriber.id, cause=Cause.LINK, actor="web")
    session.commit()
    for cause in (Cause.ADMIN, Cause.IMPORT):
        outcome = signup(session, "ada@example.com", confirmed=True, cause=cause, actor="cli")
        assert not outcome.should_send_confirmation
        assert outcome.subscriber is not None
        assert outcome.subscriber.status == Status.UNSUBSCRIBED
    pending_import = signup(session, "ada@example.com", cause=Cause.IMPORT, actor="cli")
    assert pending_import.subscriber is not None
    assert pending_import.subscriber.status == Status.UNSUBSCRIBED
    assert not pending_import.should_send_confirmation


def test_confirm_does_not_revive_an_unsubscribed_row(session: Session) -> None:
    subscriber = _new_active(session)
    assert subscriber.id is not None
    unsubscribe(session, subscriber.id, cause=Cause.LINK, actor="web")
    result = confirm(session, subscriber.id, actor="web")  # an old confirm link
    session.commit()
    assert result is not None and result.status == Status.UNSUBSCRIBED


@pytest.mark.parametrize(
    ("record", "status", "reason"),
    [
        ("bounce", Status.BOUNCED, SuppressionReason.BOUNCED),
        ("complaint", Status.COMPLAINED, SuppressionReason.COMPLAINED),
    ],
)
def test_bounce_and_complaint_are_final(
    session: Session, record: str, status: Status, reason: SuppressionReason
) -> None:
    subscriber = _new_active(session)
    assert subscriber.id is not None
    if record == "bounce":
        record_bounce(session, "ADA@example.com", hard=True, actor="webhook:postmark", detail="550")
    else:
        record_complaint(session, "ada@example.com", actor="webhook:ses", detail="abuse")
    session.commit()
    session.refresh(subscriber)
    assert subscriber.status == status
    entry = suppression.get(session, "ada@example.com")
    assert entry is not None and entry.reason == reason
    last = audit.trail(session, "ada@example.com")[-1]
    assert (last.action, last.old_status, last.new_status) == (record, "active", str(status))
    assert last.actor.startswith("webhook:")

    # Neither a signup, an import nor a confirm link brings it back.
    for kwargs in ({}, {"confirmed": True}, {"cause": Cause.IMPORT}):
        outcome = signup(session, "ada@example.com", **kwargs)
        assert not outcome.should_send_confirmation
    assert confirm(session, subscriber.id, actor="web") is not None
    session.commit()
    session.refresh(subscriber)
    assert subscriber.status == status
    assert not is_mailable(session, subscriber)


def test_complaint_outranks_bounce_and_unsubscribe(session: Session) -> None:
    subscriber = _new_active(session)
    assert subscriber.id is not None
    unsubscribe(session, subscriber.id, cause=Cause.LINK, actor="web")
    record_bounce(session, "ada@example.com", hard=True, actor="webhook:x")
    record_complaint(session, "ada@example.com", actor="webhook:x")
    record_bounce(session, "ada@example.com", hard=True, actor="webhook:x")
    session.commit()
    session.refresh(subscriber)
    assert subscriber.status == Status.COMPLAINED
    entry = suppression.get(session, "ada@example.com")
    assert entry is not None and entry.reason == SuppressionReason.COMPLAINED
    # The last bounce changed nothing, so it wrote nothing.
    assert [e[0] for e in _entries(session, "ada@example.com")][-3:] == [
        "unsubscribe",
        "bounce",
        "complaint",
    ]


def test_soft_bounce_only_audits(session: Session) -> None:
    subscriber = _new_active(session)
    record_bounce(session, "ada@example.com", hard=False, actor="webhook:x", detail="mailbox full")
    session.commit()
    session.refresh(subscriber)
    assert subscriber.status == Status.ACTIVE
    assert not suppression.is_suppressed(session, "ada@example.com")
    last = audit.trail(session, "ada@example.com")[-1]
    assert (last.action, last.cause, last.detail) == (
        "soft-bounce",
        "bounce",
        {"detail": "mailbox full"},
    )


def test_bounce_for_an_unknown_address_suppresses_it(session: Session) -> None:
    assert record_bounce(session, "ghost@example.com", hard=True, actor="webhook:x") is None
    session.commit()
    assert suppression.is_suppressed(session, "ghost@example.com")
    outcome = signup(session, "Ghost@example.com")
    session.commit()
    assert outcome.subscriber is None
    assert not outcome.created and not outcome.should_send_confirmation
    assert session.exec(select(Subscriber)).all() == []
    assert _entries(session, "ghost@example.com") == [("bounce", None, None)]


def test_suppression_and_audit_survive_remove(session: Session) -> None:
    subscriber = _new_active(session)
    record_bounce(session, "ada@example.com", hard=True, actor="webhook:x", detail="550")
    session.commit()
    removed = remove(session, "Ada@Example.com", actor="cli")
    session.commit()
    session.expire_all()
    assert removed.id == subscriber.id
    assert session.get(Subscriber, subscriber.id) is None
    assert suppression.is_suppressed(session, "ada@example.com")
    trail = audit.trail(session, "ada@example.com")
    assert [e.action for e in trail] == ["signup", "confirm", "bounce", "remove"]
    assert all(e.subscriber_id is None for e in trail)  # the foreign key was set to NULL
    assert trail[-1].old_status == "bounced"
    # Signing up again does not bring the bounced address back.
    outcome = signup(session, "ada@example.com")
    assert outcome.subscriber is None and not outcome.should_send_confirmation
    with pytest.raises(NotFoundError):
        remove(session, "ada@example.com", actor="cli")


def test_new_rows_never_reuse_the_id_of_a_removed_one(session: Session) -> None:
    first = _new_active(session, "first@example.com")
    remove(session, "first@example.com", actor="cli")
    session.commit()
    second = signup(session, "second@example.com").subscriber
    session.commit()
    assert second is not None and first.id is not None and second.id is not None
    assert second.id > first.id


def test_removed_unsubscriber_may_opt_in_again(session: Session) -> None:
    subscriber = _new_active(session)
    assert subscriber.id is not None
    unsubscribe(session, subscriber.id, cause=Cause.LINK, actor="web")
    remove(session, "ada@example.com", actor="cli")
    session.commit()
    outcome = signup(session, "ada@example.com")
    session.commit()
    assert outcome.created and outcome.should_send_confirmation
    assert outcome.subscriber is not None and outcome.subscriber.status == Status.PENDING


def test_admin_unsubscribe(session: Session) -> None:
    _new_active(session)
    result = lifecycle.admin_unsubscribe(session, "ADA@example.com", actor="cli")
    session.commit()
    assert result.status == Status.UNSUBSCRIBED
    last = audit.trail(session, "ada@example.com")[-1]
    assert (last.cause, last.actor) == ("admin", "cli")
    with pytest.raises(NotFoundError):
        lifecycle.admin_unsubscribe(session, "nobody@example.com", actor="cli")


def test_update_preferences_audits_the_changes(session: Session) -> None:
    subscriber = _new_active(session)
    assert subscriber.id is not None
    result = update_preferences(
        session, subscriber.id, categories=["Image & Video"], paused=True, actor="web"
    )
    same = update_preferences(
        session, subscriber.id, categories=["Image & Video"], paused=True, actor="web"
    )
    session.commit()
    assert result is not None and same is not None
    assert result.categories == ["Image & Video"] and result.paused
    entries = [e for e in audit.trail(session, "ada@example.com") if e.action == "preferences"]
    assert len(entries) == 1  # the second call changed nothing
    assert entries[0].cause == "preference-page"
    assert entries[0].detail == {
        "changes": {"categories": [[], ["Image & Video"]], "paused": [False, True]}
    }
    assert not is_mailable(session, result)  # paused
    with pytest.raises(InputError):
        update_preferences(session, subscriber.id, categories=[""], paused=None, actor="web")
    assert update_preferences(session, 999_999, categories=[], paused=False, actor="w") is None


def test_mailable_query(session: Session) -> None:
    active = _new_active(session, "active@example.com")
    paused = _new_active(session, "paused@example.com")
    suppressed = _new_active(session, "suppressed@example.com")
    signup(session, "pending@example.com")
    assert paused.id is not None
    update_preferences(session, paused.id, categories=None, paused=True, actor="t")
    suppression.suppress(session, "suppressed@example.com", actor="cli")
    session.commit()
    mailable = session.exec(mailable_subscribers_query()).all()
    assert [s.email for s in mailable] == ["active@example.com"]
    assert is_mailable(session, active)
    assert not is_mailable(session, suppressed)
    # The query composes with the delivery engine's own filters.
    narrowed = mailable_subscribers_query().where(col(Subscriber.id) > (active.id or 0))
    assert session.exec(narrowed).all() == []


def test_every_change_writes_exactly_one_entry(session: Session) -> None:
    subscriber = _new_active(session)
    assert subscriber.id is not None
    update_preferences(session, subscriber.id, categories=["A"], paused=None, actor="web")
    unsubscribe(session, subscriber.id, cause=Cause.LINK, actor="web")
    signup(session, "ada@example.com")
    confirm(session, subscriber.id, actor="web")
    record_complaint(session, "ada@example.com", actor="webhook:x")
    session.commit()
    actions = [
        Action(e.action)
        for e in session.exec(select(AuditEntry).order_by(col(AuditEntry.id))).all()
    ]
    assert actions == [
        Action.SIGNUP,
        Action.CONFIRM,
        Action.PREFERENCES,
        Action.UNSUBSCRIBE,
        Action.SIGNUP,
        Action.CONFIRM,
        Action.COMPLAINT,
    ]


def test_admin_cannot_confirm_a_renewed_opt_in_for_the_person(session: Session) -> None:
    subscriber = _new_active(session)
    assert subscriber.id is not None
    unsubscribe(session, subscriber.id, cause=Cause.LINK, actor="web")
    signup(session, "ada@example.com", actor="web")  # pending again, still suppressed
    outcome = signup(session, "ada@example.com", confirmed=True, actor="cli")
    session.commit()
    assert outcome.subscriber is not None
    assert outcome.subscriber.status == Status.PENDING
    assert not outcome.should_send_confirmation
    assert suppression.is_suppressed(session, "ada@example.com")


def test_admin_may_activate_a_plain_pending_signup(session: Session) -> None:
    signup(session, "ada@example.com", actor="web")
    outcome = signup(session, "ada@example.com", confirmed=True, source="phone call", actor="cli")
    session.commit()
    assert outcome.subscriber is not None and outcome.subscriber.status == Status.ACTIVE
    last = audit.trail(session, "ada@example.com")[-1]
    assert (last.action, last.cause, last.detail) == ("confirm", "admin", {"source": "phone call"})
