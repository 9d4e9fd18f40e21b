"""Local-time delivery across a whole delivery day, with the clock moved by time-machine: each
subscriber is sent the edition at the send time in their own zone and not a minute before;
zone changes, pause, window, cancel and a crash in the middle of the day.

W47 (16-22 November 2026) is delivered on Monday 23 November: the weekly job fires when
Kiritimati (UTC+14) reaches 08:00 that Monday, Sunday 22 November 18:00 UTC.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
import time_machine
from delivery_support import DELIVERY, SUBSCRIBER, W47, add_subscribers, ledger, states
from sqlalchemy.engine import Engine

from digest.backends.memory import MemoryBackend
from digest.config import Settings
from digest.db import session_scope
from digest.delivery.guards import pause, resume
from digest.delivery.ledger import cancel, claim_batch
from digest.delivery.run import Outcome, Run, SendReport, run_edition, run_worker

UTC = dt.UTC
# Each zone's 08:00 on Monday 23 November 2026, in UTC.
EIGHT_AM = {
    "Pacific/Kiritimati": dt.datetime(2026, 11, 22, 18, 0, tzinfo=UTC),  # +14
    "Pacific/Auckland": dt.datetime(2026, 11, 22, 19, 0, tzinfo=UTC),  # NZDT +13
    "Asia/Kolkata": dt.datetime(2026, 11, 23, 2, 30, tzinfo=UTC),  # +5:30
    "Europe/London": dt.datetime(2026, 11, 23, 8, 0, tzinfo=UTC),  # GMT
    "America/St_Johns": dt.datetime(2026, 11, 23, 11, 30, tzinfo=UTC),  # NST -3:30
    "America/Los_Angeles": dt.datetime(2026, 11, 23, 16, 0, tzinfo=UTC),  # PST -8
    "Pacific/Pago_Pago": dt.datetime(2026, 11, 23, 19, 0, tzinfo=UTC),  # -11
}
BERLIN_EIGHT = dt.datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # DIGEST_TIMEZONE, for "UTC" rows
JOB_FIRES = EIGHT_AM["Pacific/Kiritimati"]


@pytest.fixture
def local_settings(send_settings: Settings) -> Settings:
    return send_settings.model_copy(
        update={"delivery_mode": "local-time", "timezone": "Europe/Berlin"}
    )


@pytest.fixture
def readers(loaded: Engine) -> dict[str, int]:
    """One subscriber per zone, and one without a zone ("UTC"): zone -> subscriber id."""
    ids = add_subscribers(loaded, len(EIGHT_AM) + 1, categories=([],))
    zones = [*EIGHT_AM, "UTC"]
    with loaded.begin() as connection:
        for subscriber_id, zone in zip(ids, zones, strict=True):
            connection.execute(
                sa.update(SUBSCRIBER).where(SUBSCRIBER.c.id == subscriber_id).values(timezone=zone)
            )
    return dict(zip(zones, ids, strict=True))


@pytest.fixture
def clock() -> Iterator[Any]:
    with time_machine.travel(JOB_FIRES, tick=False) as traveller:
        yield traveller


def _run(backend: MemoryBackend) -> Run:
    return Run(backend=lambda _settings: backend, poll=0.01)


def job(engine: Engine, settings: Settings, backend: MemoryBackend) -> SendReport:
    """What the scheduler's weekly job does with the week."""
    return run_edition(engine, settings, W47, on_delivery_day=True, run=_run(backend))


def tick(engine: Engine, settings: Settings, backend: MemoryBackend) -> SendReport:
    """What the scheduler's continuing check does every 30 seconds."""
    return run_worker(engine, settings, once=True, run=_run(backend))


def sent_at(engine: Engine) -> dict[int, dt.datetime]:
    return {
        row.subscriber_id: row.sent_at.astimezone(UTC)
        for row in ledger(engine)
        if row.state == "sent"
    }


def test_each_zone_gets_the_edition_at_its_own_eight(
    loaded: Engine,
    local_settings: Settings,
    backend: MemoryBackend,
    readers: dict[str, int],
    clock: Any,
) -> None:
    report = job(loaded, local_settings, backend)
    assert report.outcome is Outcome.SCHEDULED
    assert report.recipients == len(readers)
    assert sent_at(loaded) == {readers["Pacific/Kiritimati"]: JOB_FIRES}
    assert report.scheduled == len(readers) - 1
    assert report.next_due == EIGHT_AM["Pacific/Auckland"]

    expected = {readers[zone]: moment for zone, moment in EIGHT_AM.items()}
    expected[readers["UTC"]] = BERLIN_EIGHT
    for moment in sorted(set(expected.values()) - {JOB_FIRES}):
        clock.move_to(moment - dt.timedelta(minutes=1))
        tick(loaded, local_settings, backend)
        assert all(when < moment for when in sent_at(loaded).values())
        clock.move_to(moment)
        tick(loaded, local_settings, backend)
        assert {sub for sub, when in sent_at(loaded).items() if when == moment} == {
            sub for sub, when in expected.items() if when == moment
        }
    assert sent_at(loaded) == expected
    assert len(backend.sent) == len(readers)
    clock.move_to(EIGHT_AM["Pacific/Pago_Pago"] + dt.timedelta(hours=1))
    assert tick(loaded, local_settings, backend).outcome is Outcome.IDLE
    assert len(backend.sent) == len(readers)


def test_a_zone_change_before_the_claim_is_followed(
    loaded: Engine,
    local_settings: Settings,
    backend: MemoryBackend,
    readers: dict[str, int],
    clock: Any,
) -> None:
    job(loaded, local_settings, backend)
    moves = {
        "Asia/Kolkata": "America/Los_Angeles",  # later: not at Kolkata's 08:00
        "Pacific/Pago_Pago": "Pacific/Auckland",  # earlier: Auckland's 08:00 has passed
    }
    with loaded.begin() as connection:
        for old, new in moves.items():
            connection.execute(
                sa.update(SUBSCRIBER).where(SUBSCRIBER.c.id == readers[old]).values(timezone=new)
            )
    clock.move_to(EIGHT_AM["Asia/Kolkata"])
    tick(loaded, local_settings, backend)
    sent = sent_at(loaded)
    assert readers["Asia/Kolkata"] not in sent
    assert sent[readers["Pacific/Pago_Pago"]] == EIGHT_AM["Asia/Kolkata"]  # at once
    clock.move_to(EIGHT_AM["America/Los_Angeles"])
    tick(loaded, local_settings, backend)
    assert sent_at(loaded)[readers["Asia/Kolkata"]] == EIGHT_AM["America/Los_Angeles"]
    clock.move_to(EIGHT_AM["Pacific/Pago_Pago"] + dt.timedelta(hours=1))
    tick(loaded, local_settings, backend)
    assert states(loaded) == {"sent": len(readers)}
    recipients = [message.to for message in backend.sent]
    assert len(recipients) == len(set(recipients)) == len(readers)


def test_pause_window_and_cancel_during_the_day(
    loaded: Engine,
    local_settings: Settings,
    backend: MemoryBackend,
    readers: dict[str, int],
    clock: Any,
) -> None:
    job(loaded, local_settings, backend)
    # Paused at London's 08:00: nothing goes; resumed an hour later, London goes at once.
    clock.move_to(EIGHT_AM["Europe/London"])
    pause(loaded, by="ops")
    assert tick(loaded, local_settings, backend).outcome is Outcome.PAUSED
    assert readers["Europe/London"] not in sent_at(loaded)
    clock.move_to(EIGHT_AM["Europe/London"] + dt.timedelta(hours=1))
    resume(loaded, by="ops")
    tick(loaded, local_settings, backend)
    assert sent_at(loaded)[readers["Europe/London"]] == EIGHT_AM["Europe/London"] + dt.timedelta(
        hours=1
    )
    # A send window of 09:00-17:00 Berlin (08:00-16:00 UTC) holds St John's 11:30 UTC? No: it
    # is inside. Los Angeles's 16:00 UTC is outside: held until the next morning.
    windowed = local_settings.model_copy(update={"send_window": "09:00-17:00"})
    clock.move_to(EIGHT_AM["America/St_Johns"])
    tick(loaded, windowed, backend)
    assert readers["America/St_Johns"] in sent_at(loaded)
    clock.move_to(EIGHT_AM["America/Los_Angeles"])
    held = tick(loaded, windowed, backend)
    assert held.outcome is Outcome.HELD
    assert readers["America/Los_Angeles"] not in sent_at(loaded)
    # Cancelled before Pago Pago's 08:00: its row (and Los Angeles's) are skipped, never sent.
    edition_id = ledger(loaded)[0].edition_id
    assert cancel(loaded, edition_id) == 2
    clock.move_to(EIGHT_AM["Pacific/Pago_Pago"] + dt.timedelta(hours=1))
    tick(loaded, local_settings, backend)
    assert readers["Pacific/Pago_Pago"] not in sent_at(loaded)
    assert states(loaded) == {"sent": len(readers) - 2, "skipped": 2}


def test_a_crash_mid_day_resumes_with_nobody_lost_or_twice(
    loaded: Engine,
    local_settings: Settings,
    backend: MemoryBackend,
    readers: dict[str, int],
    clock: Any,
) -> None:
    job(loaded, local_settings, backend)
    # A worker on another host dies at London's 08:00 holding the rows due by then.
    clock.move_to(EIGHT_AM["Europe/London"])
    claim = claim_batch(loaded, worker="dead-host:1:1:x", limit=10, lease_seconds=60)
    due = {readers[zone] for zone in ("Pacific/Auckland", "Asia/Kolkata", "Europe/London", "UTC")}
    assert {row.subscriber_id for row in claim.rows} == due
    clock.move_to(EIGHT_AM["Europe/London"] + dt.timedelta(seconds=30))
    tick(loaded, local_settings, backend)  # the lease is not over: nothing to take
    assert set(sent_at(loaded)) == {readers["Pacific/Kiritimati"]}
    clock.move_to(EIGHT_AM["Europe/London"] + dt.timedelta(minutes=2))
    tick(loaded, local_settings, backend)
    assert set(sent_at(loaded)) == due | {readers["Pacific/Kiritimati"]}
    assert readers["America/St_Johns"] not in sent_at(loaded)
    # The process sending the edition restarts (``digest send`` again) later in the day.
    clock.move_to(EIGHT_AM["America/Los_Angeles"])
    again = run_edition(loaded, local_settings, W47, run=_run(backend))
    assert again.outcome is Outcome.SCHEDULED
    clock.move_to(EIGHT_AM["Pacific/Pago_Pago"])
    tick(loaded, local_settings, backend)
    assert states(loaded) == {"sent": len(readers)}
    recipients = [message.to for message in backend.sent]
    assert len(recipients) == len(set(recipients)) == len(readers)


def test_at_once_mode_leaves_rows_unscheduled(
    loaded: Engine, send_settings: Settings, backend: MemoryBackend, readers: dict[str, int]
) -> None:
    report = run_edition(loaded, send_settings, W47, on_delivery_day=True, run=_run(backend))
    assert report.outcome is Outcome.SENT
    assert {(row.not_before, row.zone) for row in ledger(loaded)} == {(None, None)}


def test_the_schedule_is_kept_with_the_edition(
    loaded: Engine,
    local_settings: Settings,
    backend: MemoryBackend,
    readers: dict[str, int],
    clock: Any,
) -> None:
    job(loaded, local_settings, backend)
    with session_scope(loaded) as session:
        rows = session.connection().execute(
            sa.select(DELIVERY.c.zone, DELIVERY.c.not_before).where(DELIVERY.c.state == "pending")
        )
        due = {zone: when.astimezone(UTC) for zone, when in rows}
    assert due == {
        zone: when
        for zone, when in {**EIGHT_AM, "UTC": BERLIN_EIGHT}.items()
        if zone != "Pacific/Kiritimati"
    }
    # Settings changed later do not move the rows of this edition.
    changed = local_settings.model_copy(update={"local_send_time": "10:00"})
    clock.move_to(BERLIN_EIGHT)
    tick(loaded, changed, backend)
    assert sent_at(loaded)[readers["UTC"]] == BERLIN_EIGHT


@pytest.mark.parametrize(
    ("sent_from", "expected"),
    [
        # London leaves BST at 01:00 UTC on Sunday 25 October 2026: its 08:00 is 08:00 UTC
        # that Sunday (07:00 UTC the day before); Los Angeles is still on PDT (-7).
        (
            dt.datetime(2026, 10, 24, 12, 0, tzinfo=UTC),
            {
                "Europe/London": dt.datetime(2026, 10, 25, 8, 0, tzinfo=UTC),
                "America/Los_Angeles": dt.datetime(2026, 10, 24, 15, 0, tzinfo=UTC),
                "Asia/Kolkata": dt.datetime(2026, 10, 25, 2, 30, tzinfo=UTC),
            },
        ),
        # Los Angeles leaves PDT at 09:00 UTC on Sunday 1 November 2026: its 08:00 is 16:00 UTC.
        (
            dt.datetime(2026, 10, 31, 20, 0, tzinfo=UTC),
            {
                "Europe/London": dt.datetime(2026, 11, 1, 8, 0, tzinfo=UTC),
                "America/Los_Angeles": dt.datetime(2026, 11, 1, 16, 0, tzinfo=UTC),
                "Pacific/Auckland": dt.datetime(2026, 11, 1, 19, 0, tzinfo=UTC),
            },
        ),
    ],
)
def test_a_manual_send_on_a_dst_weekend_goes_at_the_next_local_eight(
    loaded: Engine,
    local_settings: Settings,
    backend: MemoryBackend,
    readers: dict[str, int],
    sent_from: dt.datetime,
    expected: dict[str, dt.datetime],
) -> None:
    with time_machine.travel(sent_from, tick=False) as clock:
        report = run_edition(loaded, local_settings, W47, run=_run(backend))
        assert report.outcome is Outcome.SCHEDULED
        assert sent_at(loaded) == {}
        for zone, moment in sorted(expected.items(), key=lambda item: item[1]):
            clock.move_to(moment - dt.timedelta(minutes=1))
            tick(loaded, local_settings, backend)
            assert readers[zone] not in sent_at(loaded)
            local = moment.astimezone(ZoneInfo(zone))
            assert (local.hour, local.minute) == (8, 0)
            clock.move_to(moment)
            tick(loaded, local_settings, backend)
            assert sent_at(loaded)[readers[zone]] == moment


def test_preview_says_when_a_subscriber_receives_the_edition(
    loaded: Engine,
    local_settings: Settings,
    send_settings: Settings,
    backend: MemoryBackend,
    readers: dict[str, int],
    clock: Any,
) -> None:
    from digest.delivery.prepare import delivery_time
    from subscribers.models import Subscriber

    def when(settings: Settings, zone: str) -> str | None:
        with session_scope(loaded) as session:
            subscriber = session.get(Subscriber, readers[zone])
            assert subscriber is not None
            return delivery_time(session, settings, W47, subscriber)

    # Before the job: by the rule the weekly job will use.
    clock.move_to(JOB_FIRES - dt.timedelta(hours=1))
    assert when(local_settings, "Asia/Kolkata") == (
        "reader2@example.com is due this edition at Mon 23 Nov 2026 08:00 Asia/Kolkata"
        " (2026-11-23T02:30:00Z)"
    )
    assert when(send_settings, "Asia/Kolkata") is None  # at once: nothing to say
    clock.move_to(JOB_FIRES)
    job(loaded, local_settings, backend)
    assert when(local_settings, "Pacific/Kiritimati") == (
        "reader0@example.com was sent this edition at 2026-11-22T18:00:00Z"
    )
    assert when(local_settings, "UTC") == (
        "reader7@example.com is due this edition at Mon 23 Nov 2026 08:00 Europe/Berlin"
        " (2026-11-23T07:00:00Z)"
    )


def test_send_with_wait_stays_until_the_last_send_time(
    loaded: Engine, local_settings: Settings, backend: MemoryBackend
) -> None:
    add_subscribers(loaded, 3, categories=([],))  # no zone of their own: Berlin's 08:00
    start = BERLIN_EIGHT - dt.timedelta(seconds=2)
    with time_machine.travel(start, tick=True):
        report = run_edition(loaded, local_settings, W47, run=_run(backend), wait_for_schedule=True)
    assert report.outcome is Outcome.SENT
    assert states(loaded) == {"sent": 3}
    assert all(when >= BERLIN_EIGHT for when in sent_at(loaded).values())


def test_a_row_taken_seconds_after_its_subscriber_moved_west_waits_for_the_new_zone(
    loaded: Engine,
    local_settings: Settings,
    backend: MemoryBackend,
    readers: dict[str, int],
    clock: Any,
) -> None:
    job(loaded, local_settings, backend)
    clock.move_to(EIGHT_AM["Asia/Kolkata"] - dt.timedelta(seconds=10))
    tick(loaded, local_settings, backend)  # the full zone pass ran just now
    with loaded.begin() as connection:
        connection.execute(
            sa.update(SUBSCRIBER)
            .where(SUBSCRIBER.c.id == readers["Asia/Kolkata"])
            .values(timezone="America/Los_Angeles")
        )
    clock.move_to(EIGHT_AM["Asia/Kolkata"])
    tick(loaded, local_settings, backend)  # the claim itself sees the move
    assert readers["Asia/Kolkata"] not in sent_at(loaded)
    row = next(row for row in ledger(loaded) if row.subscriber_id == readers["Asia/Kolkata"])
    assert (row.state, row.zone) == ("pending", "America/Los_Angeles")
    assert row.not_before.astimezone(UTC) == EIGHT_AM["America/Los_Angeles"]
    clock.move_to(EIGHT_AM["America/Los_Angeles"])
    tick(loaded, local_settings, backend)
    assert sent_at(loaded)[readers["Asia/Kolkata"]] == EIGHT_AM["America/Los_Angeles"]
