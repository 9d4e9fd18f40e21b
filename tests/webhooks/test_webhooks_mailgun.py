"""Mailgun: HMAC of timestamp + token in the body, freshness, one-time tokens, failures."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from secrets import token_hex
from typing import TYPE_CHECKING, Any

import pytest
from starlette.testclient import TestClient

from digest.delivery.models import Delivery
from subscribers.models import Status, Subscriber

if TYPE_CHECKING:
    from conftest import Db, Secrets

URL = "/webhooks/mailgun"


def signature_block(
    key: str, *, timestamp: int | None = None, token: str | None = None
) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    token = token or token_hex(25)
    digest = hmac.new(key.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    return {"timestamp": stamp, "token": token, "signature": digest}


def event_data(name: str, recipient: str, event_id: str, **extra: Any) -> dict[str, Any]:
    # The shape of the payloads in Mailgun's webhook documentation.
    return {
        "event": name,
        "id": event_id,
        "timestamp": 1739203200.512,
        "log-level": "error" if name == "failed" else "info",
        "recipient": recipient,
        "recipient-domain": recipient.rpartition("@")[2],
        "message": {
            "headers": {
                "from": "Weekly AI Tool Verdicts <digest@verdicts.example.com>",
                "message-id": "2025-w07.1@verdicts.example.com",
                "subject": "This week: Cursor vs Copilot",
                "to": recipient,
            },
            "size": 2151,
        },
        "tags": ["weekly"],
        "user-variables": {"edition": "weekly-2025-w07"},
        **extra,
    }


@pytest.fixture
def key(secrets: Secrets) -> str:
    return secrets.mailgun_key


def post(client: TestClient, payload: dict[str, Any]) -> Any:
    return client.post(
        URL, content=json.dumps(payload), headers={"Content-Type": "application/json"}
    )


def permanent_failure(recipient: str, event_id: str = "G9Bn5sl1TC6nu79C8C0bwg") -> dict[str, Any]:
    return event_data(
        "failed",
        recipient,
        event_id,
        severity="permanent",
        reason="bounce",
        **{
            "delivery-status": {
                "code": 550,
                "message": "5.1.1 The email account that you tried to reach does not exist.",
                "description": "Not delivered: the mailbox does not exist",
            }
        },
    )


def test_permanent_failure_is_a_hard_bounce_stored_with_its_raw_payload(
    client: TestClient, db: Db, key: str, subscriber: Callable[[str], Subscriber]
) -> None:
    subscriber("ada@example.com")
    payload = {
        "signature": signature_block(key),
        "event-data": permanent_failure("ada@example.com"),
    }

    response = post(client, payload)

    assert response.status_code == 200
    [stored] = db.events("mailgun")
    assert (stored.event_type, stored.bounce) == ("bounced", "hard")
    assert stored.message_id == "<2025-w07.1@verdicts.example.com>"
    assert stored.raw == payload
    assert stored.replay_token == payload["signature"]["token"]
    found = db.subscriber("ada@example.com")
    assert found is not None and found.status == Status.BOUNCED
    assert db.suppression("ada@example.com") is not None


def test_temporary_failure_is_deferred_without_suppression(
    client: TestClient, db: Db, key: str, subscriber: Callable[[str], Subscriber]
) -> None:
    subscriber("ada@example.com")
    data = event_data(
        "failed", "ada@example.com", "evt-temp", severity="temporary", reason="generic"
    )

    assert post(client, {"signature": signature_block(key), "event-data": data}).status_code == 200

    [stored] = db.events()
    assert stored.event_type == "deferred"
    assert db.suppression("ada@example.com") is None


def test_complaint_suppresses(
    client: TestClient, db: Db, key: str, subscriber: Callable[[str], Subscriber]
) -> None:
    subscriber("ada@example.com")
    data = event_data("complained", "ada@example.com", "evt-complaint")

    assert post(client, {"signature": signature_block(key), "event-data": data}).status_code == 200

    suppressed = db.suppression("ada@example.com")
    assert suppressed is not None and suppressed.reason == "complained"


def test_retry_with_a_fresh_signature_is_stored_once(
    client: TestClient, db: Db, key: str, subscriber: Callable[[str], Subscriber]
) -> None:
    subscriber("ada@example.com")
    data = permanent_failure("ada@example.com")

    first = post(client, {"signature": signature_block(key), "event-data": data})
    retry = post(client, {"signature": signature_block(key), "event-data": data})

    assert first.json()["stored"] == 1
    assert retry.status_code == 200
    assert retry.json()["duplicates"] == 1
    assert len(db.events()) == 1
    assert [e.action for e in db.audit("ada@example.com")].count("bounce") == 1


def test_replayed_token_cannot_carry_another_event(
    client: TestClient, db: Db, key: str, subscriber: Callable[[str], Subscriber]
) -> None:
    subscriber("grace@example.com")
    block = signature_block(key)
    post(
        client, {"signature": block, "event-data": event_data("delivered", "ada@example.com", "e1")}
    )

    # The signature covers only timestamp + token: a captured one must not vouch for a forgery.
    forged = {"signature": block, "event-data": event_data("complained", "grace@example.com", "e2")}
    response = post(client, forged)

    assert response.status_code == 200
    assert response.json()["stored"] == 0
    assert [e.event_key for e in db.events()] == ["e1/1739203200.512"]
    assert db.suppression("grace@example.com") is None


def test_stale_timestamp_is_rejected(client: TestClient, db: Db, key: str) -> None:
    block = signature_block(key, timestamp=int(time.time()) - 600)
    payload = {"signature": block, "event-data": permanent_failure("ada@example.com")}

    response = post(client, payload)

    assert response.status_code == 403
    assert "stale" in response.json()["error"]
    assert db.events() == []


def test_future_timestamp_is_rejected(client: TestClient, db: Db, key: str) -> None:
    block = signature_block(key, timestamp=int(time.time()) + 600)

    response = post(client, {"signature": block, "event-data": permanent_failure("a@example.com")})

    assert response.status_code == 403


def test_missing_signature_is_401(client: TestClient, db: Db) -> None:
    response = post(client, {"event-data": permanent_failure("ada@example.com")})

    assert response.status_code == 401
    assert db.events() == []


def test_wrong_key_is_403_and_nothing_is_stored(client: TestClient, db: Db) -> None:
    block = signature_block("key-not-ours")

    response = post(client, {"signature": block, "event-data": permanent_failure("a@example.com")})

    assert response.status_code == 403
    assert db.events() == []


def test_tampered_signature_block_is_rejected(client: TestClient, db: Db, key: str) -> None:
    block = signature_block(key)
    block["token"] = block["token"][:-1] + ("0" if block["token"][-1] != "0" else "1")

    response = post(client, {"signature": block, "event-data": permanent_failure("a@example.com")})

    assert response.status_code == 403
    assert db.events() == []


def test_parent_signature_of_a_subaccount_is_accepted(client: TestClient, db: Db, key: str) -> None:
    ours = signature_block(key)
    block = ours | {"signature": "0" * 64, "parent-signature": ours["signature"]}
    data = event_data("delivered", "ada@example.com", "evt-sub")

    assert post(client, {"signature": block, "event-data": data}).status_code == 200
    assert len(db.events()) == 1


def test_valid_signature_without_event_data_is_400(client: TestClient, db: Db, key: str) -> None:
    response = post(client, {"signature": signature_block(key)})

    assert response.status_code == 400
    assert db.events() == []


def test_delivered_updates_the_delivery_found_by_message_id(
    client: TestClient, db: Db, key: str, delivery: Callable[..., Delivery]
) -> None:
    row = delivery(
        "ada@example.com",
        message_id="<2025-w07.1@verdicts.example.com>",
        provider_message_id="<2025-w07.1@verdicts.example.com>",
    )
    data = event_data("delivered", "ada@example.com", "evt-delivered")

    assert post(client, {"signature": signature_block(key), "event-data": data}).status_code == 200

    assert db.delivery(row.id).provider_status == "delivered"
