"""Postmark: HTTP Basic credentials, one event per request, bounce types and redelivery."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from starlette.testclient import TestClient

from digest.delivery.models import Delivery
from subscribers.models import Status, Subscriber

if TYPE_CHECKING:
    from conftest import Db, MakeClient, Secrets

URL = "/webhooks/postmark"


@pytest.fixture
def auth(secrets: Secrets) -> tuple[str, str]:
    return (secrets.postmark_user, secrets.postmark_password)


def bounce(
    email: str, *, kind: str = "HardBounce", bounce_id: int = 4323372036854775807
) -> dict[str, Any]:
    # The shape of Postmark's bounce webhook example.
    return {
        "RecordType": "Bounce",
        "MessageStream": "broadcast",
        "ID": bounce_id,
        "Type": kind,
        "TypeCode": 1,
        "Name": "Hard bounce",
        "Tag": "weekly",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Metadata": {"edition": "weekly-2025-w07"},
        "ServerID": 23,
        "Description": "The server was unable to deliver your message (ex: unknown user).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": email,
        "From": "digest@verdicts.example.com",
        "BouncedAt": "2025-02-10T16:33:54.9070259Z",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": True,
        "Subject": "This week: Cursor vs Copilot",
    }


def post(client: TestClient, payload: object, auth: tuple[str, str] | None) -> Any:
    return client.post(URL, content=json.dumps(payload), auth=auth)


def test_hard_bounce_is_stored_with_its_raw_payload_and_suppresses(
    client: TestClient, db: Db, subscriber: Callable[[str], Subscriber], auth: tuple[str, str]
) -> None:
    subscriber("Ada@Example.com")
    payload = bounce("ada@example.com")

    response = post(client, payload, auth)

    assert response.status_code == 200
    assert response.json() == {"received": 1, "stored": 1, "duplicates": 0}
    [event] = db.events("postmark")
    assert event.event_type == "bounced"
    assert event.bounce == "hard"
    assert event.email == "ada@example.com"
    assert event.provider_message_id == "883953f4-6105-42a2-a16a-77a8eac79483"
    assert event.raw == payload
    assert event.occurred_at is not None and event.occurred_at.year == 2025
    assert db.suppression("ada@example.com") is not None
    found = db.subscriber("ada@example.com")
    assert found is not None and found.status == Status.BOUNCED
    [entry] = [e for e in db.audit("ada@example.com") if e.action == "bounce"]
    assert entry.actor == "webhook:postmark"
    assert entry.new_status == "bounced"


def test_redelivery_is_recorded_once_with_one_audit_entry(
    client: TestClient, db: Db, subscriber: Callable[[str], Subscriber], auth: tuple[str, str]
) -> None:
    subscriber("ada@example.com")
    first = post(client, bounce("ada@example.com"), auth)
    second = post(client, bounce("ada@example.com"), auth)

    assert first.json()["stored"] == 1
    assert second.status_code == 200
    assert second.json() == {"received": 1, "stored": 0, "duplicates": 1}
    assert len(db.events("postmark")) == 1
    assert len([e for e in db.audit("ada@example.com") if e.action == "bounce"]) == 1


def test_missing_credentials_are_401_and_nothing_is_stored(client: TestClient, db: Db) -> None:
    response = post(client, bounce("ada@example.com"), None)

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic")
    assert db.events() == []
    assert db.suppression("ada@example.com") is None


def test_wrong_password_is_403_and_nothing_is_stored(
    client: TestClient, db: Db, auth: tuple[str, str]
) -> None:
    response = post(client, bounce("ada@example.com"), (auth[0], "guess"))

    assert response.status_code == 403
    assert db.events() == []


def test_wrong_user_is_refused(client: TestClient, db: Db, auth: tuple[str, str]) -> None:
    response = post(client, bounce("ada@example.com"), ("someone", auth[1]))

    assert response.status_code == 403
    assert db.events() == []


def test_soft_bounce_is_audited_but_not_suppressed(
    client: TestClient, db: Db, subscriber: Callable[[str], Subscriber], auth: tuple[str, str]
) -> None:
    subscriber("ada@example.com")

    response = post(client, bounce("ada@example.com", kind="SoftBounce"), auth)

    assert response.status_code == 200
    [event] = db.events()
    assert (event.event_type, event.bounce) == ("bounced", "soft")
    assert db.suppression("ada@example.com") is None
    found = db.subscriber("ada@example.com")
    assert found is not None and found.status == Status.ACTIVE
    assert [e.action for e in db.audit("ada@example.com")][-1] == "soft-bounce"


def test_spam_notification_is_a_soft_bounce_not_a_complaint(
    client: TestClient, db: Db, auth: tuple[str, str]
) -> None:
    post(client, bounce("ada@example.com", kind="SpamNotification"), auth)

    [event] = db.events()
    assert (event.event_type, event.bounce) == ("bounced", "soft")
    assert db.suppression("ada@example.com") is None


def test_spam_complaint_suppresses(
    client: TestClient, db: Db, subscriber: Callable[[str], Subscriber], auth: tuple[str, str]
) -> None:
    subscriber("ada@example.com")
    payload = bounce("ada@example.com", kind="SpamComplaint") | {"RecordType": "SpamComplaint"}

    assert post(client, payload, auth).status_code == 200

    [event] = db.events()
    assert event.event_type == "complained"
    suppressed = db.suppression("ada@example.com")
    assert suppressed is not None and suppressed.reason == "complained"
    found = db.subscriber("ada@example.com")
    assert found is not None and found.status == Status.COMPLAINED
    assert [e.action for e in db.audit("ada@example.com")].count("complaint") == 1


def test_delivery_updates_the_matching_ledger_row(
    client: TestClient, db: Db, delivery: Callable[..., Delivery], auth: tuple[str, str]
) -> None:
    row = delivery(
        "ada@example.com",
        message_id="<2025-w07.1@verdicts.example.com>",
        provider_message_id="883953f4-6105-42a2-a16a-77a8eac79483",
    )
    payload = {
        "RecordType": "Delivery",
        "ServerID": 23,
        "MessageStream": "broadcast",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Recipient": "ada@example.com",
        "Tag": "weekly",
        "DeliveredAt": "2025-02-10T16:33:54.9070259Z",
        "Details": "Test delivery webhook details",
        "Metadata": {},
    }

    assert post(client, payload, auth).status_code == 200

    [event] = db.events()
    assert event.delivery_id == row.id
    assert event.message_id == "<2025-w07.1@verdicts.example.com>"
    assert db.delivery(row.id).provider_status == "delivered"


def test_unparsable_body_after_valid_credentials_is_400(
    client: TestClient, db: Db, auth: tuple[str, str]
) -> None:
    response = client.post(URL, content=b"{not json", auth=auth)

    assert response.status_code == 400
    assert db.events() == []


def test_unconfigured_postmark_refuses_with_503(
    make_client: MakeClient, db: Db, auth: tuple[str, str]
) -> None:
    client = make_client(postmark_webhook_password=None)

    response = post(client, bounce("ada@example.com"), auth)

    assert response.status_code == 503
    assert db.events() == []


@pytest.mark.parametrize("body", [b"[" * 50_000 + b"]" * 50_000, b"{" + b'"a":{' * 5000])
def test_a_deeply_nested_body_is_a_400_not_a_500(
    client: TestClient, db: Db, auth: tuple[str, str], body: bytes
) -> None:
    response = client.post(URL, content=body, auth=auth)
    assert response.status_code == 400
    assert db.events("postmark") == []
