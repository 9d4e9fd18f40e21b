"""Claims: disjoint batches, the re-check at claim time, deferred rows, and what an expired
lease turns into (pending, or unknown when the attempt had started)."""

from __future__ import annotations

import datetime as dt
import threading

import sqlalchemy as sa
from delivery_support import DELIVERY, W47, add_subscribers, ledger, states
from sqlalchemy.engine import Engine

from digest.config import Settings
from digest.db import immediate_session, session_scope, utcnow
from digest.delivery.ledger import claim_batch, mark_started, release
from digest.delivery.prepare import prepare_edition
from subscribers import lifecycle
from subscribers.models import Cause, SuppressionReason
from subscribers.suppression import add as suppress


def _edition(engine: Engine, settings: Settings, subscribers: int = 20) -> int:
    add_subscribers(engine, subscribers)
    outcome = prepare_edition(engine, settings, W47)
    assert outcome.edition is not None and outcome.edition.id is not None
    return outcome.edition.id


def test_claims_take_disjoint_batches_in_id_order(loaded: Engine, send_settings: Settings) -> None:
    edition_id = _edition(loaded, send_settings, 20)
    first = claim_batch(loaded, worker="a#1", limit=8, lease_seconds=60)
    second = claim_batch(loaded, worker="b#1", limit=8, lease_seconds=60)
    third = claim_batch(loaded, worker="c#1", limit=8, lease_seconds=60)
    assert first.edition_id == edition_id
    ids = [row.id for row in first.rows] + [row.id for row in second.rows]
    assert ids == sorted(ids) and len(set(ids)) == 16
    assert len(third.rows) == 4
    assert not claim_batch(loaded, worker="d#1", limit=8, lease_seconds=60)
    rows = ledger(loaded)
    assert {row.worker for row in rows} == {first.holder, second.holder, third.holder}
    assert first.holder.startswith("a#") and len({first.holder, second.holder}) == 2
    assert all(row.state == "claimed" and row.lease_expires_at is not None for row in rows)


def test_concurrent_claimers_never_share_a_row(loaded: Engine, send_settings: Settings) -> None:
    _edition(loaded, send_settings, 400)
    taken: dict[str, list[int]] = {}
    barrier = threading.Barrier(4)

    def claimer(name: str) -> None:
        barrier.wait()
        mine: list[int] = []
        while claim := claim_batch(loaded, worker=name, limit=7, lease_seconds=60):
            mine.extend(row.id for row in claim.rows)
        taken[name] = mine

    threads = [threading.Thread(target=claimer, args=(f"w{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [row_id for rows in taken.values() for row_id in rows]
    assert len(every) == len(set(every)) == 400


def test_claim_time_recheck_skips_who_may_no_longer_be_mailed(
    loaded: Engine, send_settings: Settings
) -> None:
    ids = add_subscribers(loaded, 6, categories=[[]])
    outcome = prepare_edition(loaded, send_settings, W47)
    assert outcome.edition is not None
    # Between the ledger and the claim: one unsubscribes, one pauses, one is suppressed,
    # one bounces, one is deleted.
    with session_scope(loaded) as session:
        lifecycle.unsubscribe(session, ids[0], cause=Cause.ONE_CLICK, actor="test")
        lifecycle.update_preferences(session, ids[1], paused=True, actor="test")
        suppress(session, "reader2@example.com", SuppressionReason.COMPLAINED)
        lifecycle.record_bounce(session, "reader3@example.com", hard=True, actor="test")
        lifecycle.remove(session, "reader4@example.com", actor="test")
    claim = claim_batch(loaded, worker="w#1", limit=10, lease_seconds=60)
    assert [row.email for row in claim.rows] == ["reader5@example.com"]
    assert claim.skipped == 5
    reasons = {row.email: row.last_error for row in ledger(loaded) if row.state == "skipped"}
    assert reasons == {
        "reader0@example.com": "unsubscribed",
        "reader1@example.com": "paused",
        "reader2@example.com": "suppressed",
        "reader3@example.com": "bounced",
        "reader4@example.com": "subscriber removed",
    }


def test_a_changed_address_is_mailed_at_the_new_one(
    loaded: Engine, send_settings: Settings
) -> None:
    ids = add_subscribers(loaded, 2, categories=[[]])
    prepare_edition(loaded, send_settings, W47)
    with loaded.begin() as connection:
        connection.execute(
            sa.text(
                "UPDATE subscriber SET email = 'new@example.com', email_key = 'new@example.com'"
                " WHERE id = :id"
            ),
            {"id": ids[0]},
        )
    claim = claim_batch(loaded, worker="w#1", limit=10, lease_seconds=60)
    assert [row.email for row in claim.rows] == ["new@example.com", "reader1@example.com"]
    assert ledger(loaded)[0].email == "new@example.com"


def test_rows_due_later_are_not_claimed_yet(loaded: Engine, send_settings: Settings) -> None:
    _edition(loaded, send_settings, 4)
    later = utcnow() + dt.timedelta(minutes=5)
    with loaded.begin() as connection:
        connection.execute(
            sa.update(DELIVERY).where(DELIVERY.c.id <= 2 + _min_id(loaded)).values(not_before=later)
        )
    now_claim = claim_batch(loaded, worker="w", limit=10, lease_seconds=3600)
    assert len(now_claim.rows) == 1
    after = claim_batch(
        loaded, worker="w", limit=10, lease_seconds=3600, now=later + dt.timedelta(seconds=1)
    )
    assert len(after.rows) == 3 and after.expired == 0


def _min_id(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.min(DELIVERY.c.id))).scalar_one())


def test_an_expired_lease_returns_unstarted_rows_to_pending(
    loaded: Engine, send_settings: Settings
) -> None:
    _edition(loaded, send_settings, 5)
    dead = claim_batch(loaded, worker="dead#1", limit=5, lease_seconds=30)
    assert len(dead.rows) == 5
    # Before expiry nobody else gets them.
    assert not claim_batch(loaded, worker="live#1", limit=5, lease_seconds=30)
    later = utcnow() + dt.timedelta(seconds=31)
    taken = claim_batch(loaded, worker="live#2", limit=5, lease_seconds=30, now=later)
    assert taken.expired == 5
    assert sorted(row.id for row in taken.rows) == sorted(row.id for row in dead.rows)
    assert {row.worker for row in ledger(loaded)} == {taken.holder}


def test_an_expired_lease_of_a_started_attempt_is_unknown(
    loaded: Engine, send_settings: Settings
) -> None:
    _edition(loaded, send_settings, 6)
    dead = claim_batch(loaded, worker="dead#1", limit=6, lease_seconds=30)
    in_flight = [row.id for row in dead.rows[:4]]
    with immediate_session(loaded) as session:
        assert mark_started(
            session, in_flight, worker=dead.holder, lease_seconds=30
        ) == dict.fromkeys(in_flight, 1)
    later = utcnow() + dt.timedelta(seconds=31)
    taken = claim_batch(loaded, worker="live#1", limit=10, lease_seconds=30, now=later)
    assert sorted(row.id for row in taken.rows) == sorted(row.id for row in dead.rows[4:])
    assert states(loaded) == {"unknown": 4, "claimed": 2}
    unknown = [row for row in ledger(loaded) if row.state == "unknown"]
    assert all("may have been sent" in row.last_error for row in unknown)
    assert sorted(row.id for row in unknown) == sorted(in_flight)


def test_with_an_idempotent_backend_a_started_attempt_is_retried(
    loaded: Engine, send_settings: Settings
) -> None:
    _edition(loaded, send_settings, 3)
    dead = claim_batch(loaded, worker="dead#1", limit=3, lease_seconds=30)
    with immediate_session(loaded) as session:
        mark_started(session, [row.id for row in dead.rows], worker=dead.holder, lease_seconds=30)
    later = utcnow() + dt.timedelta(seconds=31)
    taken = claim_batch(
        loaded, worker="live#1", limit=10, lease_seconds=30, idempotent=True, now=later
    )
    assert len(taken.rows) == 3 and all(row.attempts == 1 for row in taken.rows)
    # Same Message-ID as before: the provider deduplicates the resend.
    assert [row.message_id for row in taken.rows] == [row.message_id for row in dead.rows]


def test_a_lost_lease_fences_the_old_holder_out(loaded: Engine, send_settings: Settings) -> None:
    _edition(loaded, send_settings, 3)
    dead = claim_batch(loaded, worker="slow#1", limit=3, lease_seconds=30)
    later = utcnow() + dt.timedelta(seconds=31)
    fast = claim_batch(loaded, worker="fast", limit=3, lease_seconds=30, now=later)
    ids = [row.id for row in dead.rows]
    with immediate_session(loaded) as session:
        assert mark_started(session, ids, worker=dead.holder, lease_seconds=30) == {}
        assert release(session, ids, worker=dead.holder) == 0
    assert states(loaded) == {"claimed": 3}
    assert {row.worker for row in ledger(loaded)} == {fast.holder}


def test_release_gives_rows_back_uncounted(loaded: Engine, send_settings: Settings) -> None:
    _edition(loaded, send_settings, 4)
    claim = claim_batch(loaded, worker="w#1", limit=4, lease_seconds=30)
    ids = [row.id for row in claim.rows]
    with immediate_session(loaded) as session:
        mark_started(session, ids[:2], worker=claim.holder, lease_seconds=30)
        assert release(session, ids, worker=claim.holder) == 4
    rows = ledger(loaded)
    assert all(row.state == "pending" and row.attempts == 0 and row.worker is None for row in rows)
    assert all(row.attempt_started_at is None for row in rows)


def test_the_greeting_uses_the_first_name_a_subscriber_gave(
    loaded: Engine, send_settings: Settings
) -> None:
    from digest.delivery.prepare import message_factories

    ids = add_subscribers(loaded, 2, categories=[[]])
    with loaded.begin() as connection:
        connection.execute(
            sa.text("UPDATE subscriber SET name = 'Ops Team', first_name = 'Sam' WHERE id = :id"),
            {"id": ids[0]},
        )
        connection.execute(
            sa.text("UPDATE subscriber SET name = 'Lindqvist, Astrid' WHERE id = :id"),
            {"id": ids[1]},
        )
    edition_id = prepare_edition(loaded, send_settings, W47).edition.id  # type: ignore[union-attr]
    claim = claim_batch(loaded, worker="w#1", limit=10, lease_seconds=60)
    assert [row.first_name for row in claim.rows] == ["Sam", ""]
    build = message_factories(loaded, send_settings)(edition_id)  # type: ignore[arg-type]
    texts = [build(row).text for row in claim.rows]
    assert "\nHi Sam,\n" in texts[0] and "\nHi Astrid,\n" in texts[1]
