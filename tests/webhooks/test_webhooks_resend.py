"""Resend: Svix signatures (several, rotation), freshness, svix-id as the event key."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from digest.delivery.models import Delivery
from subscribers.models import Status, Subscriber

if TYPE_CHECKING:
    from conftest import Db, MakeClient, Secrets

URL = "/webhooks/resend"
EMAIL_ID = "56761188-7520-42d8-8898-ff6fc54ce618"


@pytest.fixture
def key(secrets: Secrets) -> bytes:
    return secrets.resend_key


def payload(kind: str, to: str, **data: Any) -> dict[str, Any]:
    # The shape of Resend's webhook event examples.
    return {
        "type": kind,
        "created_at": "2025-02-10T16:33:54.126Z",
        "data": {
            "broadcast_id": "8b146471-e88e-4322-86af-016cd36fd216",
            "created_at": "2025-02-10T16:33:52.894719+00:00",
            "email_id": EMAIL_ID,
            "from": "Weekly AI Tool Verdicts <digest@verdicts.example.com>",
            "to": [to],
            "subject": "This week: Cursor vs Copilot",
            "tags": {"edition": "weekly-2025-w07"},
            **data,
        },
    }


def svix_headers(
    key: bytes, body: bytes, *, msg_id: str = "msg_p5jXN8AQM9LWM0D4loKWxJek", at: int | None = None
) -> dict[str, str]:
    stamp = str(int(time.time()) if at is None else at)
    digest = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "svix-id": msg_id,
        "svix-timestamp": stamp,
        "svix-signature": "v1," + base64.b64encode(digest).decode(),
        "Content-Type": "application/json",
    }


def post(client: TestClient, body: bytes, headers: dict[str, str]) -> Any:
    return client.post(URL, content=body, headers=headers)


def hard_bounce(to: str) -> dict[str, Any]:
    return payload(
        "email.bounced",
        to,
        bounce={
            "message": "The recipient's email provider sent a hard bounce message.",
            "subType": "General",
            "type": "Permanent",
        },
    )


def test_bounce_is_stored_by_svix_id_and_suppresses(
    client: TestClient, db: Db, key: bytes, subscriber: Callable[[str], Subscriber]
) -> None:
    subscriber("ada@example.com")
    event = hard_bounce("Ada <ada@example.com>")
    body = json.dumps(event).encode()

    response = post(client, body, svix_headers(key, body))

    assert response.status_code == 200
    [stored] = db.events("resend")
    assert stored.event_key == "msg_p5jXN8AQM9LWM0D4loKWxJek"
    assert (stored.event_type, stored.bounce) == ("bounced", "hard")
    assert stored.email == "ada@example.com"
    assert stored.provider_message_id == EMAIL_ID
    assert stored.raw == event
    found = db.subscriber("ada@example.com")
    assert found is not None and found.status == Status.BOUNCED
    assert db.suppression("ada@example.com") is not None


def test_redelivery_is_stored_once_with_one_audit_entry(
    client: TestClient, db: Db, key: bytes, subscriber: Callable[[str], Subscriber]
) -> None:
    subscriber("ada@example.com")
    body = json.dumps(payload("email.complained", "ada@example.com")).encode()

    post(client, body, svix_headers(key, body))
    again = post(client, body, svix_headers(key, body, at=int(time.time()) + 1))

    assert again.status_code == 200
    assert again.json()["duplicates"] == 1
    assert len(db.events()) == 1
    assert [e.action for e in db.audit("ada@example.com")].count("complaint") == 1


def test_transient_bounce_is_soft(
    client: TestClient, db: Db, key: bytes, subscriber: Callable[[str], Subscriber]
) -> None:
    subscriber("ada@example.com")
    event = payload(
        "email.bounced",
        "ada@example.com",
        bounce={"message": "Mailbox full", "subType": "MailboxFull", "type": "Transient"},
    )
    body = json.dumps(event).encode()

    assert post(client, body, svix_headers(key, body)).status_code == 200

    [stored] = db.events()
    assert stored.bounce == "soft"
    assert db.suppression("ada@example.com") is None


def test_one_matching_signature_among_several_is_enough(
    client: TestClient, db: Db, key: bytes
) -> None:
    body = json.dumps(payload("email.delivered", "ada@example.com")).encode()
    headers = svix_headers(key, body)
    headers["svix-signature"] = "v1,Zm9yZ2Vk v2,bm90LWEtdjE= " + headers["svix-signature"]

    assert post(client, body, headers).status_code == 200


def test_missing_headers_are_401(client: TestClient, db: Db) -> None:
    body = json.dumps(hard_bounce("ada@example.com")).encode()

    assert post(client, body, {"Content-Type": "application/json"}).status_code == 401
    assert db.events() == []


def test_forged_signature_is_403_and_nothing_is_stored(client: TestClient, db: Db) -> None:
    body = json.dumps(hard_bounce("ada@example.com")).encode()

    response = post(client, body, svix_headers(b"not-the-secret", body))

    assert response.status_code == 403
    assert db.events() == []
    assert db.suppression("ada@example.com") is None


def test_tampered_body_is_rejected(client: TestClient, db: Db, key: bytes) -> None:
    body = json.dumps(payload("email.delivered", "ada@example.com")).encode()
    headers = svix_headers(key, body)

    response = post(client, body.replace(b"delivered", b"complained"), headers)

    assert response.status_code == 403
    assert db.events() == []


def test_another_message_id_invalidates_the_signature(
    client: TestClient, db: Db, key: bytes
) -> None:
    body = json.dumps(payload("email.delivered", "ada@example.com")).encode()
    headers = svix_headers(key, body) | {"svix-id": "msg_other"}

    assert post(client, body, headers).status_code == 403


def test_stale_timestamp_is_rejected(client: TestClient, db: Db, key: bytes) -> None:
    body = json.dumps(hard_bounce("ada@example.com")).encode()

    response = post(client, body, svix_headers(key, body, at=int(time.time()) - 301))

    assert response.status_code == 403
    assert "stale" in response.json()["error"]
    assert db.events() == []


def test_webhook_prefixed_headers_are_accepted(client: TestClient, db: Db, key: bytes) -> None:
    body = json.dumps(payload("email.delivered", "ada@example.com")).encode()
    headers = {
        name.replace("svix-", "webhook-"): value for name, value in svix_headers(key, body).items()
    }

    assert post(client, body, headers).status_code == 200


def test_delivered_updates_the_ledger_row(
    client: TestClient, db: Db, key: bytes, delivery: Callable[..., Delivery]
) -> None:
    row = delivery(
        "ada@example.com",
        message_id="<2025-w07.1@verdicts.example.com>",
        provider_message_id=EMAIL_ID,
    )
    body = json.dumps(payload("email.delivered", "ada@example.com")).encode()

    assert post(client, body, svix_headers(key, body)).status_code == 200

    assert db.delivery(row.id).provider_status == "delivered"


def test_secret_without_base64_refuses_with_503(make_client: MakeClient, db: Db) -> None:
    client = make_client(resend_webhook_secret=SecretStr("whsec_not base64!"))
    body = json.dumps(payload("email.delivered", "ada@example.com")).encode()

    assert post(client, body, svix_headers(b"x", body)).status_code == 503
