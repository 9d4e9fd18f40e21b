"""What every provider shares: routing, size limits, the event model and exactly-once effects."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import pytest
from sqlalchemy.engine import Engine
from starlette.testclient import TestClient

from digest.delivery.models import Delivery
from digest.webhooks.events import (
    BounceKind,
    EventType,
    NormalizedEvent,
    angle_id,
    from_iso,
    make_key,
)
from digest.webhooks.process import process_events
from subscribers.models import Status, Subscriber

if TYPE_CHECKING:
    from conftest import Db, MakeClient


def bounce_event(email: str, key: str = "evt-1", *, hard: bool = True) -> NormalizedEvent:
    return NormalizedEvent(
        provider="postmark",
        event_key=key,
        event_type=EventType.BOUNCED,
        bounce=BounceKind.HARD if hard else BounceKind.SOFT,
        email=email,
        message_id=None,
        provider_message_id="pm-1",
        occurred_at=dt.datetime(2025, 2, 10, 16, 33, tzinfo=dt.UTC),
        description="550 unknown user",
        raw={"RecordType": "Bounce"},
    )


def test_unknown_provider_is_404(client: TestClient) -> None:
    assert client.post("/webhooks/sparkpost", content=b"[]").status_code == 404


def test_only_post_is_allowed(client: TestClient) -> None:
    assert client.get("/webhooks/sendgrid").status_code == 405


def test_body_over_the_limit_is_413_before_any_check(make_client: MakeClient, db: Db) -> None:
    client = make_client(webhook_max_bytes=64 * 1024)

    response = client.post("/webhooks/sendgrid", content=b"[" + b" " * (64 * 1024) + b"]")

    assert response.status_code == 413
    assert db.events() == []


def test_streamed_body_over_the_limit_is_413(make_client: MakeClient) -> None:
    client = make_client(webhook_max_bytes=64 * 1024)

    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b" " * 10_000

    assert client.post("/webhooks/sendgrid", content=chunks()).status_code == 413


@pytest.mark.parametrize("provider", ["postmark", "sendgrid", "mailgun", "resend", "ses"])
def test_every_provider_refuses_when_its_secret_is_missing(
    make_client: MakeClient, db: Db, provider: str
) -> None:
    client = make_client(
        postmark_webhook_user=None,
        sendgrid_webhook_public_key=None,
        mailgun_webhook_signing_key=None,
        resend_webhook_secret=None,
        ses_sns_topic_arn=None,
    )

    response = client.post(f"/webhooks/{provider}", content=json.dumps({"event": "delivered"}))

    assert response.status_code == 503
    assert db.events() == []


def test_hard_bounce_for_an_unknown_address_still_suppresses_it(engine: Engine, db: Db) -> None:
    outcome = process_events(engine, [bounce_event("stranger@example.com")])

    assert outcome.stored == 1
    assert db.suppression("stranger@example.com") is not None
    assert [e.action for e in db.audit("stranger@example.com")] == ["bounce"]


def test_an_invalid_address_is_stored_without_effect(engine: Engine, db: Db) -> None:
    outcome = process_events(engine, [bounce_event("not an address")])

    assert outcome.stored == 1
    [event] = db.events()
    assert event.email == "not an address"


def test_a_soft_bounce_redelivered_is_audited_once(
    engine: Engine, db: Db, subscriber: Callable[[str], Subscriber]
) -> None:
    subscriber("ada@example.com")

    process_events(engine, [bounce_event("ada@example.com", hard=False)])
    process_events(engine, [bounce_event("ada@example.com", hard=False)])

    assert [e.action for e in db.audit("ada@example.com")].count("soft-bounce") == 1


def test_concurrent_deliveries_of_one_event_have_one_effect(
    engine: Engine, db: Db, subscriber: Callable[[str], Subscriber]
) -> None:
    subscriber("ada@example.com")
    event = bounce_event("ada@example.com")

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(lambda _: process_events(engine, [event]), range(8)))

    assert sum(outcome.stored for outcome in outcomes) == 1
    assert len(db.events()) == 1
    assert [e.action for e in db.audit("ada@example.com")].count("bounce") == 1
    found = db.subscriber("ada@example.com")
    assert found is not None and found.status == Status.BOUNCED


def test_a_batch_that_fails_stores_nothing(
    engine: Engine, db: Db, monkeypatch: pytest.MonkeyPatch
) -> None:
    from subscribers import lifecycle

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(lifecycle, "record_complaint", broken)
    complaint = NormalizedEvent(
        provider="sendgrid",
        event_key="evt-2",
        event_type=EventType.COMPLAINED,
        email="ada@example.com",
        message_id=None,
        provider_message_id=None,
        occurred_at=None,
        description="",
        raw={},
    )

    with pytest.raises(RuntimeError):
        process_events(engine, [bounce_event("grace@example.com"), complaint])

    assert db.events() == []
    assert db.suppression("grace@example.com") is None


def test_delivery_is_found_by_our_message_id_when_the_provider_id_is_unknown(
    engine: Engine, db: Db, delivery: Callable[..., Delivery]
) -> None:
    row = delivery("ada@example.com", message_id="<2025-w07.9@verdicts.example.com>")
    event = NormalizedEvent(
        provider="mailgun",
        event_key="evt-3",
        event_type=EventType.DELIVERED,
        email="ada@example.com",
        message_id="<2025-w07.9@verdicts.example.com>",
        provider_message_id="something-else",
        occurred_at=None,
        description="",
        raw={},
    )

    process_events(engine, [event])

    assert db.delivery(row.id).provider_status == "delivered"
    assert db.events()[0].delivery_id == row.id


def test_bounce_kind_goes_with_bounced_events_only() -> None:
    with pytest.raises(ValueError, match="bounce kind"):
        NormalizedEvent(
            provider="x",
            event_key="k",
            event_type=EventType.DELIVERED,
            bounce=BounceKind.HARD,
            email=None,
            message_id=None,
            provider_message_id=None,
            occurred_at=None,
            description="",
            raw={},
        )
    with pytest.raises(ValueError, match="bounce kind"):
        NormalizedEvent(
            provider="x",
            event_key="k",
            event_type=EventType.BOUNCED,
            email=None,
            message_id=None,
            provider_message_id=None,
            occurred_at=None,
            description="",
            raw={},
        )


def test_long_keys_are_hashed_to_fit_the_column() -> None:
    key = make_key("Click", "x" * 300)

    assert key.startswith("sha256:") and len(key) <= 200
    assert make_key("Click", "x" * 300) == key
    assert make_key("Bounce", 42) == "Bounce/42"


def test_helpers_normalize_ids_and_times() -> None:
    assert angle_id("abc@example.com") == "<abc@example.com>"
    assert angle_id("<abc@example.com>") == "<abc@example.com>"
    assert from_iso("2019-11-05T16:33:54.9070259Z") == dt.datetime(
        2019, 11, 5, 16, 33, 54, 907025, tzinfo=dt.UTC
    )
    assert from_iso("2016-12-01T15:41:45") == dt.datetime(2016, 12, 1, 15, 41, 45, tzinfo=dt.UTC)
    assert from_iso("yesterday") is None
