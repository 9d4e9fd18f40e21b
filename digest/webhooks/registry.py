"""The providers whose webhooks we receive, each as three steps: configured, verify, handle.

``verify(headers, body)`` checks authenticity on the raw request and raises ``SignatureError``;
``handle(body, headers)`` runs only after it and returns the normalized events (for SES it also
confirms an SNS subscription to our topic). The SNS certificate fetch and the subscription
confirmation are parameters so that tests and offline deployments can replace them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from digest.config import Settings
from digest.webhooks import mailgun, postmark, resend, sendgrid, ses
from digest.webhooks.events import NormalizedEvent

Headers = Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Receiver:
    """One provider's webhook, bound to the settings."""

    name: str
    configured: Callable[[], bool]
    verify: Callable[[Headers, bytes], None]
    handle: Callable[[bytes, Headers], list[NormalizedEvent]]


def receivers(
    settings: Settings,
    *,
    sns_fetch: ses.Fetch | None = None,
    sns_confirm: ses.Confirm | None = None,
) -> dict[str, Receiver]:
    """Every provider by the name used in its URL, ``/webhooks/{name}``."""
    certificates = ses.CertificateStore(sns_fetch) if sns_fetch else ses.CertificateStore()
    confirm = sns_confirm or ses.confirm_subscription
    found = [
        Receiver(
            name=postmark.NAME,
            configured=lambda: postmark.configured(settings),
            verify=lambda headers, body: postmark.verify(headers, body, settings),
            handle=postmark.parse,
        ),
        Receiver(
            name=sendgrid.NAME,
            configured=lambda: sendgrid.configured(settings),
            verify=lambda headers, body: sendgrid.verify(headers, body, settings),
            handle=sendgrid.parse,
        ),
        Receiver(
            name=mailgun.NAME,
            configured=lambda: mailgun.configured(settings),
            verify=lambda headers, body: mailgun.verify(headers, body, settings),
            handle=mailgun.parse,
        ),
        Receiver(
            name=resend.NAME,
            configured=lambda: resend.configured(settings),
            verify=lambda headers, body: resend.verify(headers, body, settings),
            handle=resend.parse,
        ),
        Receiver(
            name=ses.NAME,
            configured=lambda: ses.configured(settings),
            verify=lambda headers, body: ses.verify(
                headers, body, settings, certificates=certificates
            ),
            handle=lambda body, headers: ses.handle(body, settings, confirm=confirm),
        ),
    ]
    return {receiver.name: receiver for receiver in found}
