"""SendGrid: ECDSA-signed batches, one stored event per element, bounce and block, redelivery."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.testclient import TestClient

from digest.delivery.models import Delivery
from subscribers.models import Status, Subscriber

if TYPE_CHECKING:
    from conftest import Db, MakeClient

URL = "/webhooks/sendgrid"
SG_MESSAGE_ID = "14c5d75ce93.dfd.64b469"


def event(name: str, email: str, event_id: str, **extra: Any) -> dict[str, Any]:
    # The shape of the events in SendGrid's Event Webhook reference.
    return {
        "email": email,
        "timestamp": 1739203200,
        "smtp-id": "<2025-w07.1@verdicts.example.com>",
        "event": name,
        "category": ["weekly"],
        "sg_event_id": event_id,
        "sg_message_id": f"{SG_MESSAGE_ID}.filter0001.16648.5515E0B88.0",
        **extra,
    }


def signed_headers(
    key: ec.EllipticCurvePrivateKey, body: bytes, timestamp: str = "1739203260"
) -> dict[str, str]:
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        "Content-Type": "application/json",
    }


def post(client: TestClient, key: ec.EllipticCurvePrivateKey, events: list[dict[str, Any]]) -> Any:
    body = json.dumps(events).encode()
    return client.post(URL, content=body, headers=signed_headers(key, body))


def test_a_batch_is_stored_as_one_event_per_element_with_raw_payloads(
    client: TestClient,
    db: Db,
    sendgrid_key: ec.EllipticCurvePrivateKey,
    subscriber: Callable[[str], Subscriber],
) -> None:
    subscriber("ada@example.com")
    batch = [
        event("processed", "ada@example.com", "ev-processed"),
        event("delivered", "grace@example.com", "ev-delivered", response="250 OK"),
        event(
            "bounce",
            "ada@example.com",
            "ev-bounce",
            type="bounce",
            reason="550 5.1.1 The email account that you tried to reach does not exist.",
            status="5.1.1",
        ),
    ]

    response = post(client, sendgrid_key, batch)

    assert response.status_code == 200
    assert response.json() == {"received": 3, "stored": 3, "duplicates": 0}
    events = db.events("sendgrid")
    assert [(e.event_key, e.event_type, e.bounce) for e in events] == [
        ("ev-processed", "unknown", None),
        ("ev-delivered", "delivered", None),
        ("ev-bounce", "bounced", "hard"),
    ]
    assert [e.raw for e in events] == batch
    assert {e.provider_message_id for e in events} == {SG_MESSAGE_ID}
    found = db.subscriber("ada@example.com")
    assert found is not None and found.status == Status.BOUNCED
    assert db.suppression("ada@example.com") is not None


def test_redelivered_batch_is_stored_once_and_audited_once(
    client: TestClient,
    db: Db,
    sendgrid_key: ec.EllipticCurvePrivateKey,
    subscriber: Callable[[str], Subscriber],
) -> None:
    subscriber("ada@example.com")
    batch = [event("spamreport", "ada@example.com", "ev-spam")]

    assert post(client, sendgrid_key, batch).json()["stored"] == 1
    again = post(client, sendgrid_key, batch)

    assert again.status_code == 200
    assert again.json() == {"received": 1, "stored": 0, "duplicates": 1}
    assert len(db.events()) == 1
    assert [e.action for e in db.audit("ada@example.com")].count("complaint") == 1
    suppressed = db.suppression("ada@example.com")
    assert suppressed is not None and suppressed.reason == "complained"


def test_blocked_bounce_is_soft_and_not_suppressed(
    client: TestClient,
    db: Db,
    sendgrid_key: ec.EllipticCurvePrivateKey,
    subscriber: Callable[[str], Subscriber],
) -> None:
    subscriber("ada@example.com")
    batch = [event("bounce", "ada@example.com", "ev-block", type="blocked", reason="blocked")]

    assert post(client, sendgrid_key, batch).status_code == 200

    [stored] = db.events()
    assert (stored.event_type, stored.bounce) == ("bounced", "soft")
    assert db.suppression("ada@example.com") is None
    found = db.subscriber("ada@example.com")
    assert found is not None and found.status == Status.ACTIVE


def test_dropped_for_a_bounced_address_is_a_hard_bounce(
    client: TestClient, db: Db, sendgrid_key: ec.EllipticCurvePrivateKey
) -> None:
    batch = [event("dropped", "gone@example.com", "ev-drop", reason="Bounced Address")]

    assert post(client, sendgrid_key, batch).status_code == 200

    [stored] = db.events()
    assert (stored.event_type, stored.bounce) == ("bounced", "hard")
    assert db.suppression("gone@example.com") is not None


def test_missing_signature_is_401_and_nothing_is_stored(client: TestClient, db: Db) -> None:
    body = json.dumps([event("spamreport", "ada@example.com", "ev-1")]).encode()

    response = client.post(URL, content=body)

    assert response.status_code == 401
    assert db.events() == []


def test_signature_of_another_key_is_403(client: TestClient, db: Db) -> None:
    forger = ec.generate_private_key(ec.SECP256R1())
    body = json.dumps([event("spamreport", "ada@example.com", "ev-1")]).encode()

    response = client.post(URL, content=body, headers=signed_headers(forger, body))

    assert response.status_code == 403
    assert db.events() == []
    assert db.suppression("ada@example.com") is None


def test_tampered_body_is_rejected(
    client: TestClient, db: Db, sendgrid_key: ec.EllipticCurvePrivateKey
) -> None:
    body = json.dumps([event("delivered", "ada@example.com", "ev-1")]).encode()
    headers = signed_headers(sendgrid_key, body)
    tampered = body.replace(b"delivered", b"spamreport")

    response = client.post(URL, content=tampered, headers=headers)

    assert response.status_code == 403
    assert db.events() == []


def test_tampered_timestamp_is_rejected(
    client: TestClient, db: Db, sendgrid_key: ec.EllipticCurvePrivateKey
) -> None:
    body = json.dumps([event("delivered", "ada@example.com", "ev-1")]).encode()
    headers = signed_headers(sendgrid_key, body)
    headers["X-Twilio-Email-Event-Webhook-Timestamp"] = "1739203261"

    assert client.post(URL, content=body, headers=headers).status_code == 403


def test_signed_body_that_is_not_an_array_is_400(
    client: TestClient, db: Db, sendgrid_key: ec.EllipticCurvePrivateKey
) -> None:
    body = b'{"event": "delivered"}'

    response = client.post(URL, content=body, headers=signed_headers(sendgrid_key, body))

    assert response.status_code == 400
    assert db.events() == []


def test_delivery_row_takes_the_latest_event_type(
    client: TestClient,
    db: Db,
    sendgrid_key: ec.EllipticCurvePrivateKey,
    delivery: Callable[..., Delivery],
) -> None:
    row = delivery(
        "ada@example.com",
        message_id="<2025-w07.1@verdicts.example.com>",
        provider_message_id=SG_MESSAGE_ID,
    )
    delivered = event("delivered", "ada@example.com", "ev-delivered", timestamp=1739203200)
    opened = event("open", "ada@example.com", "ev-open", timestamp=1739206800)

    # The later event arrives first; the earlier one must not overwrite it.
    post(client, sendgrid_key, [opened])
    post(client, sendgrid_key, [delivered])

    assert db.delivery(row.id).provider_status == "opened"
    assert {e.delivery_id for e in db.events()} == {row.id}


def test_unknown_events_leave_the_delivery_status_alone(
    client: TestClient,
    db: Db,
    sendgrid_key: ec.EllipticCurvePrivateKey,
    delivery: Callable[..., Delivery],
) -> None:
    row = delivery(
        "ada@example.com",
        message_id="<2025-w07.1@verdicts.example.com>",
        provider_message_id=SG_MESSAGE_ID,
    )
    post(client, sendgrid_key, [event("processed", "ada@example.com", "ev-processed")])

    assert db.delivery(row.id).provider_status is None


def test_unreadable_public_key_refuses_with_503(
    make_client: MakeClient, db: Db, sendgrid_key: ec.EllipticCurvePrivateKey
) -> None:
    client = make_client(sendgrid_webhook_public_key="bm90IGEga2V5")

    response = post(client, sendgrid_key, [event("delivered", "ada@example.com", "ev-1")])

    assert response.status_code == 503
    assert db.events() == []
