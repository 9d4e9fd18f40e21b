"""Amazon SES through SNS: RSA signatures over the canonical string, certificate host checks,
the topic check, subscription confirmation, and one event per recipient."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.testclient import TestClient

from digest.delivery.models import Delivery
from digest.webhooks.ses import string_to_sign
from subscribers.models import Status, Subscriber

if TYPE_CHECKING:
    from conftest import Db, MakeClient, Secrets, SnsDouble

URL = "/webhooks/ses"
SES_MESSAGE_ID = "0100018d2f1e5a3b-1f0c0e43-9a7b-4b3c-8d5e-2f6a7b8c9d0e-000000"


def ses_event(kind: str, destination: list[str], **detail: Any) -> dict[str, Any]:
    # The shape of SES event publishing records (eventType, mail, and the type's own object).
    return {
        "eventType": kind,
        "mail": {
            "timestamp": "2025-02-10T16:33:50.000Z",
            "source": "digest@verdicts.example.com",
            "messageId": SES_MESSAGE_ID,
            "destination": destination,
            "headersTruncated": False,
            "commonHeaders": {
                "from": ["Weekly AI Tool Verdicts <digest@verdicts.example.com>"],
                "to": destination,
                "messageId": "<2025-w07.1@verdicts.example.com>",
                "subject": "This week: Cursor vs Copilot",
            },
        },
        kind[:1].lower() + kind[1:]: detail,
    }


def bounce(recipients: list[str], bounce_type: str = "Permanent") -> dict[str, Any]:
    return ses_event(
        "Bounce",
        recipients,
        bounceType=bounce_type,
        bounceSubType="General",
        bouncedRecipients=[
            {
                "emailAddress": address,
                "action": "failed",
                "status": "5.1.1",
                "diagnosticCode": "smtp; 550 5.1.1 user unknown",
            }
            for address in recipients
        ],
        timestamp="2025-02-10T16:33:54.237Z",
        feedbackId="0100018d2f1e5a3b-feedback-000000",
        reportingMTA="dns; email.example.com",
    )


class Signer:
    """Builds SNS messages signed like SNS signs them, with the test certificate's key."""

    def __init__(self, key: rsa.RSAPrivateKey, secrets: Secrets) -> None:
        self.key = key
        self.topic = secrets.ses_topic
        self.cert_url = secrets.sns_cert_url

    def notification(
        self,
        content: dict[str, Any] | str,
        *,
        message_id: str = "22b80b92-fdea-4c2c-8f9d",
        **fields: Any,
    ) -> dict[str, Any]:
        message = {
            "Type": "Notification",
            "MessageId": message_id,
            "TopicArn": self.topic,
            "Message": content if isinstance(content, str) else json.dumps(content),
            "Timestamp": "2025-02-10T16:33:55.655Z",
            "SignatureVersion": "1",
            "SigningCertURL": self.cert_url,
            "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
            **fields,
        }
        return self.sign(message)

    def confirmation(self, **fields: Any) -> dict[str, Any]:
        topic = fields.get("TopicArn", self.topic)
        message = {
            "Type": "SubscriptionConfirmation",
            "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
            "Token": "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a7",
            "TopicArn": topic,
            "Message": f"You have chosen to subscribe to the topic {topic}.\nTo confirm the "
            "subscription, visit the SubscribeURL included in this message.",
            "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"
            f"&TopicArn={topic}&Token=2336412f37fb",
            "Timestamp": "2025-02-10T16:30:04.135Z",
            "SignatureVersion": "1",
            "SigningCertURL": self.cert_url,
            **fields,
        }
        return self.sign(message)

    def sign(self, message: dict[str, Any], key: rsa.RSAPrivateKey | None = None) -> dict[str, Any]:
        algorithm = hashes.SHA256() if message["SignatureVersion"] == "2" else hashes.SHA1()
        signature = (key or self.key).sign(string_to_sign(message), padding.PKCS1v15(), algorithm)
        return message | {"Signature": base64.b64encode(signature).decode()}


@pytest.fixture
def signer(sns: SnsDouble, secrets: Secrets) -> Signer:
    return Signer(sns.key, secrets)


def post(client: TestClient, message: dict[str, Any]) -> Any:
    return client.post(
        URL,
        content=json.dumps(message),
        headers={
            "Content-Type": "text/plain; charset=UTF-8",
            "x-amz-sns-message-type": message["Type"],
            "x-amz-sns-message-id": message["MessageId"],
            "x-amz-sns-topic-arn": message["TopicArn"],
        },
    )


def test_bounce_for_two_recipients_is_two_events_both_suppressed(
    client: TestClient,
    db: Db,
    signer: Signer,
    sns: SnsDouble,
    subscriber: Callable[[str], Subscriber],
) -> None:
    subscriber("ada@example.com")
    subscriber("grace@example.com")
    content = bounce(["ada@example.com", "grace@example.com"])

    response = post(client, signer.notification(content))

    assert response.status_code == 200
    assert response.json() == {"received": 2, "stored": 2, "duplicates": 0}
    events = db.events("ses")
    assert [(e.email, e.event_type, e.bounce) for e in events] == [
        ("ada@example.com", "bounced", "hard"),
        ("grace@example.com", "bounced", "hard"),
    ]
    assert all(e.raw == content for e in events)
    assert {e.message_id for e in events} == {"<2025-w07.1@verdicts.example.com>"}
    for address in ("ada@example.com", "grace@example.com"):
        found = db.subscriber(address)
        assert found is not None and found.status == Status.BOUNCED
        assert db.suppression(address) is not None
    assert sns.fetched == [signer.cert_url]


def test_redelivery_is_stored_once_and_the_certificate_is_cached(
    client: TestClient,
    db: Db,
    signer: Signer,
    sns: SnsDouble,
    subscriber: Callable[[str], Subscriber],
) -> None:
    subscriber("ada@example.com")
    message = signer.notification(
        ses_event(
            "Complaint",
            ["ada@example.com"],
            complainedRecipients=[{"emailAddress": "ada@example.com"}],
            complaintFeedbackType="abuse",
        )
    )

    post(client, message)
    again = post(client, message)

    assert again.json() == {"received": 1, "stored": 0, "duplicates": 1}
    assert len(db.events()) == 1
    assert [e.action for e in db.audit("ada@example.com")].count("complaint") == 1
    assert len(sns.fetched) == 1


def test_signature_version_2_is_sha256(client: TestClient, db: Db, signer: Signer) -> None:
    message = signer.notification(bounce(["ada@example.com"]), SignatureVersion="2")

    assert post(client, message).status_code == 200
    assert len(db.events()) == 1


def test_transient_bounce_is_soft(
    client: TestClient, db: Db, signer: Signer, subscriber: Callable[[str], Subscriber]
) -> None:
    subscriber("ada@example.com")

    assert (
        post(client, signer.notification(bounce(["ada@example.com"], "Transient"))).status_code
        == 200
    )

    [stored] = db.events()
    assert stored.bounce == "soft"
    assert db.suppression("ada@example.com") is None


def test_missing_signature_is_401(client: TestClient, db: Db, signer: Signer) -> None:
    message = signer.notification(bounce(["ada@example.com"]))
    del message["Signature"]

    assert post(client, message).status_code == 401
    assert db.events() == []


def test_tampered_message_is_rejected(client: TestClient, db: Db, signer: Signer) -> None:
    message = signer.notification(bounce(["ada@example.com"]))
    message["Message"] = json.dumps(bounce(["grace@example.com"]))

    response = post(client, message)

    assert response.status_code == 403
    assert db.events() == []
    assert db.suppression("grace@example.com") is None


def test_signature_by_another_key_is_rejected(client: TestClient, db: Db, signer: Signer) -> None:
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    message = signer.notification(bounce(["ada@example.com"]))
    forged = signer.sign({k: v for k, v in message.items() if k != "Signature"}, forger)

    assert post(client, forged).status_code == 403
    assert db.events() == []


@pytest.mark.parametrize(
    "cert_url",
    [
        "https://attacker.example.com/SimpleNotificationService-test.pem",
        "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem",
        "https://sns.us-east-1.amazonaws.com.attacker.example/cert.pem",
        "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-test.pem",
        "https://user@sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem",
    ],
)
def test_certificates_come_only_from_the_topics_sns_host(
    client: TestClient, db: Db, signer: Signer, sns: SnsDouble, cert_url: str
) -> None:
    message = signer.notification(bounce(["ada@example.com"]), SigningCertURL=cert_url)

    assert post(client, message).status_code == 403
    assert sns.fetched == []
    assert db.events() == []


def test_configured_certificate_hosts_replace_the_default(
    make_client: MakeClient, db: Db, signer: Signer, sns: SnsDouble
) -> None:
    client = make_client(ses_sns_cert_hosts=["sns-mirror.internal.example"])
    mirrored = "https://sns-mirror.internal.example/SimpleNotificationService-test.pem"

    assert post(client, signer.notification(bounce(["a@example.com"]))).status_code == 403
    message = signer.notification(bounce(["a@example.com"]), SigningCertURL=mirrored)
    assert post(client, message).status_code == 200
    assert sns.fetched == [mirrored]


def test_message_for_another_topic_is_refused(client: TestClient, db: Db, signer: Signer) -> None:
    message = signer.notification(
        bounce(["ada@example.com"]), TopicArn="arn:aws:sns:us-east-1:999999999999:someone-else"
    )

    assert post(client, message).status_code == 403
    assert db.events() == []


def test_subscription_confirmation_for_our_topic_is_confirmed(
    client: TestClient, db: Db, signer: Signer, sns: SnsDouble
) -> None:
    message = signer.confirmation()

    response = post(client, message)

    assert response.status_code == 200
    assert response.json()["received"] == 0
    assert sns.confirmed == [message["SubscribeURL"]]
    assert db.events() == []


def test_subscription_confirmation_for_another_topic_is_not_confirmed(
    client: TestClient, signer: Signer, sns: SnsDouble
) -> None:
    message = signer.confirmation(TopicArn="arn:aws:sns:us-east-1:999999999999:someone-else")

    assert post(client, message).status_code == 403
    assert sns.confirmed == []


def test_subscribe_url_off_the_sns_host_is_not_visited(
    client: TestClient, signer: Signer, sns: SnsDouble
) -> None:
    message = signer.confirmation(SubscribeURL="https://attacker.example.com/confirm")

    assert post(client, message).status_code == 403
    assert sns.confirmed == []


def test_ses_topic_validation_notice_is_accepted_without_events(
    client: TestClient, db: Db, signer: Signer
) -> None:
    message = signer.notification(
        "Successfully validated SNS topic for Amazon SES event publishing."
    )

    response = post(client, message)

    assert response.status_code == 200
    assert response.json()["received"] == 0


def test_unreadable_ses_event_is_400(client: TestClient, db: Db, signer: Signer) -> None:
    assert post(client, signer.notification("not json")).status_code == 400


def test_delivery_notification_updates_the_ledger_row(
    client: TestClient, db: Db, signer: Signer, delivery: Callable[..., Delivery]
) -> None:
    row = delivery(
        "ada@example.com",
        message_id="<2025-w07.1@verdicts.example.com>",
        provider_message_id=SES_MESSAGE_ID,
    )
    content = ses_event(
        "Delivery",
        ["ada@example.com"],
        timestamp="2025-02-10T16:33:53.000Z",
        processingTimeMillis=546,
        recipients=["ada@example.com"],
        smtpResponse="250 ok:  Message 64111812 accepted",
    )
    # Identity notifications use notificationType where event publishing uses eventType.
    content["notificationType"] = content.pop("eventType")

    assert post(client, signer.notification(content)).status_code == 200

    assert db.delivery(row.id).provider_status == "delivered"


def test_certificate_fetch_failure_is_503(
    make_client: MakeClient, db: Db, signer: Signer, sns: SnsDouble
) -> None:
    def unreachable(url: str) -> bytes:
        raise OSError("network is unreachable")

    sns.fetch = unreachable  # type: ignore[method-assign]
    client = make_client()

    assert post(client, signer.notification(bounce(["a@example.com"]))).status_code == 503
    assert db.events() == []


def test_unconfigured_topic_refuses_with_503(
    make_client: MakeClient, db: Db, signer: Signer
) -> None:
    client = make_client(ses_sns_topic_arn=None)

    assert post(client, signer.notification(bounce(["a@example.com"]))).status_code == 503


def test_certificate_failures_are_cached_and_fetches_pause() -> None:
    from digest.webhooks.events import UnavailableError
    from digest.webhooks.ses import CertificateStore

    calls: list[str] = []
    now = [0.0]

    def failing(url: str) -> bytes:
        calls.append(url)
        raise OSError("unreachable")

    store = CertificateStore(failing, failure_ttl=300, backoff_seconds=5, clock=lambda: now[0])
    url = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-a.pem"
    other = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-b.pem"
    for _ in range(20):
        with pytest.raises(UnavailableError):
            store.public_key(url)
    with pytest.raises(UnavailableError, match="paused"):
        store.public_key(other)
    assert calls == [url]
    now[0] = 10.0  # past the pause: a new URL is tried, the failed one is still remembered
    with pytest.raises(UnavailableError):
        store.public_key(other)
    with pytest.raises(UnavailableError):
        store.public_key(url)
    assert calls == [url, other]
    now[0] = 400.0  # the failure has expired
    with pytest.raises(UnavailableError):
        store.public_key(url)
    assert calls == [url, other, url]


def test_certificate_fetches_beyond_the_bound_are_refused_at_once() -> None:
    import threading
    import time

    from digest.webhooks.events import UnavailableError
    from digest.webhooks.ses import CertificateStore

    release = threading.Event()

    def blocked(url: str) -> bytes:
        release.wait(10)
        raise OSError("slow")

    store = CertificateStore(blocked, max_fetches=2)
    urls = [
        f"https://sns.us-east-1.amazonaws.com/SimpleNotificationService-{n}.pem" for n in range(3)
    ]

    def fetch_in_background(url: str) -> None:
        with pytest.raises(UnavailableError):
            store.public_key(url)

    threads = [threading.Thread(target=fetch_in_background, args=(url,)) for url in urls[:2]]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    started = time.perf_counter()
    with pytest.raises(UnavailableError, match="too many"):
        store.public_key(urls[2])
    assert time.perf_counter() - started < 1.0
    release.set()
    for thread in threads:
        thread.join(10)


def test_certificate_url_must_be_an_sns_certificate_path(
    client: TestClient, signer: Signer, sns: SnsDouble
) -> None:
    for path in (
        "/anything.pem",
        "/SimpleNotificationService-x.pem?a=1",
        "/a/SimpleNotificationService-x.pem",
    ):
        message = signer.notification(
            bounce(["ada@example.com"]),
            SigningCertURL=f"https://sns.us-east-1.amazonaws.com{path}",
        )
        assert post(client, message).status_code in (400, 401, 403)
    assert sns.fetched == []
