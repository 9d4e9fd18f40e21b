"""Fixtures for the webhook tests: configured settings, provider keys made on the spot, a tiny
Starlette app with the webhook routes, and rows (subscriber, delivery) to act on.

Nothing here talks to a network: the SNS certificate is a self-signed one generated with
``cryptography`` and served by an injected fetch function.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from digest.config import Settings
from digest.delivery.models import Delivery, DeliveryState
from digest.editions.models import Edition
from digest.webhooks.models import WebhookEvent
from digest.webhooks.routes import webhook_routes
from subscribers import lifecycle
from subscribers.models import AuditEntry, Subscriber, Suppression

POSTMARK_USER = "postmark-hook"
POSTMARK_PASSWORD = "correct-horse-battery-staple"
MAILGUN_KEY = "key-0123456789abcdef0123456789abcdef"
RESEND_KEY = b"resend-webhook-signing-key-32byt"
RESEND_SECRET = "whsec_" + base64.b64encode(RESEND_KEY).decode()
SES_TOPIC = "arn:aws:sns:us-east-1:123456789012:digest-ses-events"
SNS_CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem"


@dataclass(frozen=True)
class Secrets:
    """The webhook secrets ``hook_settings`` is configured with (tests sign with them)."""

    postmark_user: str = POSTMARK_USER
    postmark_password: str = POSTMARK_PASSWORD
    mailgun_key: str = MAILGUN_KEY
    resend_key: bytes = RESEND_KEY
    ses_topic: str = SES_TOPIC
    sns_cert_url: str = SNS_CERT_URL


@pytest.fixture(scope="session")
def secrets() -> Secrets:
    return Secrets()


@dataclass
class SnsDouble:
    """The SNS side of the tests: its signing key, the certificate served for it, and a record
    of the certificate fetches and subscription confirmations the app made."""

    key: rsa.RSAPrivateKey
    certificate_pem: bytes
    fetched: list[str] = field(default_factory=list)
    confirmed: list[str] = field(default_factory=list)

    def fetch(self, url: str) -> bytes:
        self.fetched.append(url)
        return self.certificate_pem

    def confirm(self, url: str) -> None:
        self.confirmed.append(url)


@pytest.fixture(scope="session")
def sendgrid_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def sns_key_and_cert() -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return key, certificate.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def sns(sns_key_and_cert: tuple[rsa.RSAPrivateKey, bytes]) -> SnsDouble:
    key, pem = sns_key_and_cert
    return SnsDouble(key=key, certificate_pem=pem)


@pytest.fixture
def hook_settings(settings: Settings, sendgrid_key: ec.EllipticCurvePrivateKey) -> Settings:
    """The test settings with every provider's webhook secret configured."""
    public_der = sendgrid_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return settings.model_copy(
        update={
            "postmark_webhook_user": POSTMARK_USER,
            "postmark_webhook_password": SecretStr(POSTMARK_PASSWORD),
            "sendgrid_webhook_public_key": base64.b64encode(public_der).decode(),
            "mailgun_webhook_signing_key": SecretStr(MAILGUN_KEY),
            "resend_webhook_secret": SecretStr(RESEND_SECRET),
            "ses_sns_topic_arn": SES_TOPIC,
        }
    )


MakeClient = Callable[..., TestClient]


@pytest.fixture
def make_client(hook_settings: Settings, engine: Engine, sns: SnsDouble) -> Iterator[MakeClient]:
    """A factory of test clients on ``Starlette(routes=webhook_routes(...))``; keyword
    arguments override settings."""
    clients: list[TestClient] = []

    def build(**overrides: Any) -> TestClient:
        settings = hook_settings.model_copy(update=overrides) if overrides else hook_settings
        app = Starlette(
            routes=webhook_routes(settings, engine, sns_fetch=sns.fetch, sns_confirm=sns.confirm)
        )
        client = TestClient(app)
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: MakeClient) -> TestClient:
    return make_client()


@pytest.fixture
def subscriber(engine: Engine) -> Callable[[str], Subscriber]:
    """Make an active subscriber of an address."""

    def make(email: str) -> Subscriber:
        with Session(engine, expire_on_commit=False) as session:
            outcome = lifecycle.signup(session, email, confirmed=True, actor="test")
            session.commit()
        assert outcome.subscriber is not None
        return outcome.subscriber

    return make


@pytest.fixture
def delivery(engine: Engine) -> Callable[..., Delivery]:
    """Make a sent delivery row of an edition (one edition per test database)."""

    def make(email: str, *, message_id: str, provider_message_id: str | None = None) -> Delivery:
        with Session(engine, expire_on_commit=False) as session:
            edition = session.exec(select(Edition)).first()
            if edition is None:
                edition = Edition(newsletter="weekly", week="2025-W07")
                session.add(edition)
                session.flush()
            assert edition.id is not None
            row = Delivery(
                edition_id=edition.id,
                email=email,
                variant="all",
                state=DeliveryState.SENT,
                message_id=message_id,
                provider_message_id=provider_message_id,
            )
            session.add(row)
            session.commit()
            return row

    return make


@dataclass
class Db:
    """Read-only views of what the webhooks wrote."""

    engine: Engine

    def events(self, provider: str | None = None) -> list[WebhookEvent]:
        statement = select(WebhookEvent).order_by(col(WebhookEvent.id))
        if provider is not None:
            statement = statement.where(WebhookEvent.provider == provider)
        with Session(self.engine) as session:
            return list(session.exec(statement))

    def audit(self, email_key: str) -> list[AuditEntry]:
        with Session(self.engine) as session:
            return list(
                session.exec(
                    select(AuditEntry)
                    .where(AuditEntry.email_key == email_key)
                    .order_by(col(AuditEntry.id))
                )
            )

    def suppression(self, email_key: str) -> Suppression | None:
        with Session(self.engine) as session:
            return session.exec(
                select(Suppression).where(Suppression.email_key == email_key)
            ).first()

    def subscriber(self, email_key: str) -> Subscriber | None:
        with Session(self.engine) as session:
            return session.exec(select(Subscriber).where(Subscriber.email_key == email_key)).first()

    def delivery(self, delivery_id: int | None) -> Delivery:
        with Session(self.engine) as session:
            row = session.get(Delivery, delivery_id)
            assert row is not None
            return row


@pytest.fixture
def db(engine: Engine) -> Db:
    return Db(engine)
