"""Amazon SES events delivered by Amazon SNS: verify the SNS message signature, then read SES.

SNS signs a canonical string of the message's fields ("Name\\nvalue\\n" for each, in byte
order: Message, MessageId, Subject if present, Timestamp, TopicArn, Type for a Notification;
Message, MessageId, SubscribeURL, Timestamp, Token, TopicArn, Type for a
SubscriptionConfirmation or UnsubscribeConfirmation) with RSA: ``SignatureVersion`` 1 is
SHA1withRSA, 2 is SHA256withRSA. The public key is in the X.509 certificate at
``SigningCertURL``, which we fetch only over HTTPS from an SNS host: by default the regional
endpoint of the topic (``sns.<region>.amazonaws.com``, ``.com.cn`` in China), or the hosts
listed in ``ses_sns_cert_hosts``, at a path of the form ``/SimpleNotificationService-<id>.pem``.
Certificates are cached per URL, failures too, and fetches are bounded (``CertificateStore``).
A message for any topic but ``ses_sns_topic_arn`` is refused, whoever signed it: SNS would
sign another account's topic just as well.

A SubscriptionConfirmation for our topic is confirmed by GETting its ``SubscribeURL`` (checked
against the same hosts). A Notification's ``Message`` is the SES event (``eventType`` with
event publishing, ``notificationType`` with identity notifications); it yields one event per
recipient, keyed by the SNS ``MessageId`` (constant across SNS retries) and the recipient.
``Permanent`` bounces are hard; ``Transient`` and ``Undetermined`` ones are soft.

The fetch and the confirmation are injectable callables so that tests need no network.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from digest.config import Settings
from digest.webhooks.events import (
    BounceKind,
    EventType,
    MissingSignatureError,
    NormalizedEvent,
    NotConfiguredError,
    PayloadError,
    SignatureError,
    UnavailableError,
    address,
    angle_id,
    dig,
    from_iso,
    header,
    load_json,
    make_key,
    require_object,
    text,
)

NAME = "ses"
# SNS answers in well under a second; a fetch that takes longer is refused (503, SNS retries).
FETCH_TIMEOUT_SECONDS = 3.0
MAX_CERTIFICATE_BYTES = 64 * 1024

NOTIFICATION = "Notification"
SUBSCRIPTION_CONFIRMATION = "SubscriptionConfirmation"
UNSUBSCRIBE_CONFIRMATION = "UnsubscribeConfirmation"
_SIGNED_FIELDS = {
    NOTIFICATION: ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    SUBSCRIPTION_CONFIRMATION: (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
_SIGNED_FIELDS[UNSUBSCRIBE_CONFIRMATION] = _SIGNED_FIELDS[SUBSCRIPTION_CONFIRMATION]
_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "1": hashes.SHA1,  # what SNS signs with unless the topic asks for version 2
    "2": hashes.SHA256,
}
_TOPIC_ARN = re.compile(r"^arn:(aws[a-z-]*):sns:([a-z0-9-]+):\d{12}:[\w.-]+$")
_CERT_PATH = re.compile(r"/SimpleNotificationService-[A-Za-z0-9]{1,64}\.pem")
_SES_VALIDATION_MESSAGE = "Successfully validated SNS topic for Amazon SES event publishing."

Fetch = Callable[[str], bytes]
Confirm = Callable[[str], None]


def fetch_certificate(url: str) -> bytes:
    """GET ``url`` (an SNS certificate) with a timeout and no redirects."""
    response = httpx.get(url, timeout=FETCH_TIMEOUT_SECONDS, follow_redirects=False)
    response.raise_for_status()
    if len(response.content) > MAX_CERTIFICATE_BYTES:
        raise ValueError("the certificate is too large")
    return response.content


def confirm_subscription(url: str) -> None:
    """GET a SubscribeURL, which is how SNS takes the confirmation."""
    response = httpx.get(url, timeout=FETCH_TIMEOUT_SECONDS, follow_redirects=False)
    response.raise_for_status()


class CertificateStore:
    """SNS signing keys by certificate URL: fetched once, then served from memory.

    Anyone can post a message naming a certificate URL on an SNS host, so fetching is bounded:
    at most ``max_fetches`` run at once and a request beyond that is refused at once (503, SNS
    retries) instead of holding a worker thread; a failed URL is not fetched again for
    ``failure_ttl`` seconds; and after any failure no new URL is fetched for
    ``backoff_seconds``. Other routes therefore keep their threads however many such posts
    arrive. Thread-safe; holds at most ``max_entries`` keys and ``max_failures`` failures.
    """

    def __init__(
        self,
        fetch: Fetch = fetch_certificate,
        *,
        max_entries: int = 16,
        max_fetches: int = 2,
        failure_ttl: float = 300.0,
        backoff_seconds: float = 5.0,
        max_failures: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._max_entries = max_entries
        self._keys: OrderedDict[str, rsa.RSAPublicKey] = OrderedDict()
        self._failures: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._max_failures = max_failures
        self._failure_ttl = failure_ttl
        self._backoff_seconds = backoff_seconds
        self._backoff_until = 0.0
        self._fetching = threading.BoundedSemaphore(max_fetches)
        self._clock = clock
        self._lock = threading.Lock()

    def public_key(self, url: str) -> rsa.RSAPublicKey:
        with self._lock:
            cached = self._keys.get(url)
            if cached is not None:
                return cached
            now = self._clock()
            failed = self._failures.get(url)
            if failed is not None and failed[0] > now:
                raise UnavailableError(f"cannot fetch the SNS signing certificate: {failed[1]}")
            if now < self._backoff_until:
                raise UnavailableError("SNS certificate fetches are paused after a failure")
        if not self._fetching.acquire(blocking=False):
            raise UnavailableError("too many SNS certificate fetches in progress")
        try:
            pem = self._fetch(url)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"[:200]
            self._failed(url, reason)
            raise UnavailableError(f"cannot fetch the SNS signing certificate: {reason}") from None
        finally:
            self._fetching.release()
        try:
            key = x509.load_pem_x509_certificate(pem).public_key()
        except ValueError:
            self._failed(url, "unreadable certificate")
            raise SignatureError("the SNS signing certificate cannot be read") from None
        if not isinstance(key, rsa.RSAPublicKey):
            self._failed(url, "no RSA key")
            raise SignatureError("the SNS signing certificate has no RSA key")
        with self._lock:
            self._keys[url] = key
            while len(self._keys) > self._max_entries:
                self._keys.popitem(last=False)
        return key

    def _failed(self, url: str, reason: str) -> None:
        with self._lock:
            now = self._clock()
            self._failures[url] = (now + self._failure_ttl, reason)
            self._failures.move_to_end(url)
            while len(self._failures) > self._max_failures:
                self._failures.popitem(last=False)
            self._backoff_until = now + self._backoff_seconds


_default_store = CertificateStore()


def configured(settings: Settings) -> bool:
    return bool(settings.ses_sns_topic_arn)


def allowed_hosts(settings: Settings) -> frozenset[str]:
    """Where certificates and confirmation URLs may come from (lower-case host names)."""
    if settings.ses_sns_cert_hosts:
        return frozenset(host.strip().lower() for host in settings.ses_sns_cert_hosts)
    match = _TOPIC_ARN.match(settings.ses_sns_topic_arn or "")
    if match is None:
        raise NotConfiguredError("ses_sns_topic_arn is not an SNS topic ARN")
    partition, region = match.groups()
    suffix = ".amazonaws.com.cn" if partition == "aws-cn" else ".amazonaws.com"
    return frozenset({f"sns.{region}{suffix}"})


def check_sns_url(url: Any, hosts: Iterable[str], what: str) -> str:
    """``url`` if it is an https URL on one of ``hosts``, else ``SignatureError``."""
    if not isinstance(url, str):
        raise SignatureError(f"no {what}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise SignatureError(f"malformed {what}") from None
    host = (parts.hostname or "").lower()
    if (
        parts.scheme != "https"
        or parts.username is not None
        or parts.password is not None
        or port not in (None, 443)
        or host not in set(hosts)
    ):
        raise SignatureError(f"the {what} is not an https URL of an allowed SNS host")
    return url


def string_to_sign(message: Mapping[str, Any]) -> bytes:
    """The canonical form SNS signs, for the message's ``Type``."""
    fields = _SIGNED_FIELDS.get(str(message.get("Type")))
    if fields is None:
        raise SignatureError("unknown SNS message type")
    lines: list[str] = []
    for name in fields:
        value = message.get(name)
        if value is None:
            if name == "Subject":
                continue
            raise SignatureError(f"the SNS message has no {name}")
        if not isinstance(value, str):
            raise SignatureError(f"the SNS field {name} is not a string")
        lines += [name, value]
    return ("\n".join(lines) + "\n").encode("utf-8")


def verify(
    headers: Mapping[str, str],
    body: bytes,
    settings: Settings,
    *,
    certificates: CertificateStore | None = None,
) -> None:
    """Check the SNS signature and the topic; raise ``SignatureError`` if either is wrong."""
    topic = settings.ses_sns_topic_arn
    if not topic:
        raise NotConfiguredError("ses_sns_topic_arn is not set")
    hosts = allowed_hosts(settings)
    try:
        message = require_object(load_json(body), "the SNS message")
    except PayloadError:
        raise MissingSignatureError("not an SNS message") from None
    if not message.get("Signature") or not message.get("SigningCertURL"):
        raise MissingSignatureError("the SNS message is not signed")
    for header_name, field in (
        ("x-amz-sns-message-type", "Type"),
        ("x-amz-sns-message-id", "MessageId"),
        ("x-amz-sns-topic-arn", "TopicArn"),
    ):
        given = header(headers, header_name)
        if given is not None and given != message.get(field):
            raise SignatureError(f"the {header_name} header does not match the message")
    if message.get("TopicArn") != topic:
        raise SignatureError("the SNS message is for another topic")
    hash_factory = _HASHES.get(str(message.get("SignatureVersion")))
    if hash_factory is None:
        raise SignatureError("unsupported SNS SignatureVersion")
    cert_url = check_sns_url(message.get("SigningCertURL"), hosts, "SigningCertURL")
    cert_parts = urlsplit(cert_url)
    if not _CERT_PATH.fullmatch(cert_parts.path) or cert_parts.query or cert_parts.fragment:
        raise SignatureError("the SigningCertURL is not an SNS certificate path")
    signed = string_to_sign(message)
    try:
        signature = base64.b64decode(str(message["Signature"]), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("malformed SNS signature") from None
    key = (certificates or _default_store).public_key(cert_url)
    try:
        key.verify(signature, signed, padding.PKCS1v15(), hash_factory())
    except InvalidSignature:
        raise SignatureError("the SNS signature does not match") from None


def handle(
    body: bytes, settings: Settings, *, confirm: Confirm = confirm_subscription
) -> list[NormalizedEvent]:
    """Act on a verified SNS message: confirm a subscription to our topic, or parse events."""
    message = require_object(load_json(body), "the SNS message")
    if message.get("Type") == SUBSCRIPTION_CONFIRMATION:
        url = check_sns_url(message.get("SubscribeURL"), allowed_hosts(settings), "SubscribeURL")
        try:
            confirm(url)
        except Exception as exc:
            raise UnavailableError(f"cannot confirm the SNS subscription: {exc}") from None
        return []
    return parse(body)


def parse(body: bytes, headers: Mapping[str, str] | None = None) -> list[NormalizedEvent]:
    """The SES events in an SNS Notification (none for other SNS message types)."""
    message = require_object(load_json(body), "the SNS message")
    if message.get("Type") != NOTIFICATION:
        return []
    content = message.get("Message")
    if not isinstance(content, str):
        raise PayloadError("the SNS Notification has no Message")
    if content.strip() == _SES_VALIDATION_MESSAGE:
        return []
    ses_event = require_object(load_json(content.encode("utf-8")), "the SES event")
    sns_id = text(message.get("MessageId"))
    if sns_id is None:
        raise PayloadError("the SNS Notification has no MessageId")
    return _events(ses_event, sns_id, message)


def _events(
    ses_event: dict[str, Any], sns_id: str, message: dict[str, Any]
) -> list[NormalizedEvent]:
    kind = text(ses_event.get("eventType")) or text(ses_event.get("notificationType")) or ""
    found_mail = ses_event.get("mail")
    mail: dict[str, Any] = found_mail if isinstance(found_mail, dict) else {}
    # The details are under the type's name in lower camel case: "bounce", "deliveryDelay".
    found_detail = ses_event.get(kind[:1].lower() + kind[1:]) if kind else None
    detail: dict[str, Any] = found_detail if isinstance(found_detail, dict) else {}
    event_type = EventType.UNKNOWN
    bounce: BounceKind | None = None
    description = ""
    recipients: list[Any] = list(dig(mail, "destination") or [])
    if kind == "Bounce":
        event_type = EventType.BOUNCED
        bounce_type = text(detail.get("bounceType"))
        bounce = BounceKind.HARD if bounce_type == "Permanent" else BounceKind.SOFT
        description = f"{bounce_type or '?'}: {text(detail.get('bounceSubType')) or '?'}"
        recipients = [dig(entry, "emailAddress") for entry in detail.get("bouncedRecipients") or []]
    elif kind == "Complaint":
        event_type = EventType.COMPLAINED
        description = text(detail.get("complaintFeedbackType")) or ""
        recipients = [
            dig(entry, "emailAddress") for entry in detail.get("complainedRecipients") or []
        ]
    elif kind == "Delivery":
        event_type = EventType.DELIVERED
        description = text(detail.get("smtpResponse")) or ""
        recipients = list(detail.get("recipients") or [])
    elif kind == "DeliveryDelay":
        event_type = EventType.DEFERRED
        description = text(detail.get("delayType")) or ""
        recipients = [dig(entry, "emailAddress") for entry in detail.get("delayedRecipients") or []]
    elif kind == "Reject":
        event_type = EventType.REJECTED
        description = text(detail.get("reason")) or ""
    elif kind == "Open":
        event_type = EventType.OPENED
    elif kind == "Click":
        event_type = EventType.CLICKED
        description = text(detail.get("link")) or ""
    elif kind == "Subscription":
        event_type = EventType.UNSUBSCRIBED
    occurred_at = from_iso(detail.get("timestamp")) or from_iso(message.get("Timestamp"))
    provider_message_id = text(mail.get("messageId"))
    message_id = angle_id(dig(mail, "commonHeaders", "messageId"))
    emails: list[str | None] = [
        found for found in (address(recipient) for recipient in recipients) if found
    ]
    return [
        NormalizedEvent(
            provider=NAME,
            event_key=make_key(sns_id, email),
            event_type=event_type,
            bounce=bounce,
            email=email,
            message_id=message_id,
            provider_message_id=provider_message_id,
            occurred_at=occurred_at,
            description=description,
            raw=ses_event,
        )
        for email in list(dict.fromkeys(emails)) or [None]
    ]
