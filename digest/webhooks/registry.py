"""The providers whose webhooks we receive, each as three steps: configured, verify, handle.

``verify(headers, body)`` checks authenticity on the raw request and raises ``SignatureError``;
``handle(body, headers)`` runs only after it and returns the normalized events (for SES it also
confirms an SNS subscription to our topic). The SNS certificate fetch and the subscription
confirmation are parameters so that tests and offline deployments can replace them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from digest.config import Settings
from digest.webhooks import mailgun, postmark, resend, sendgrid, ses
from digest.webhooks.events import NormalizedEvent

Headers = Mapping[str, str]


class SignedProvider(Protocol):
    """A provider module whose events need nothing but the settings to verify and parse."""

    NAME: str

    def configured(self, settings: Settings) -> bool: ...

    def verify(self, headers: Headers, body: bytes, settings: Settings) -> None: ...

    def parse(self, body: bytes, headers: Headers | None = None) -> list[NormalizedEvent]: ...


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
        *(_signed(provider, settings) for provider in (postmark, sendgrid, mailgun, resend)),
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


def _signed(provider: SignedProvider, settings: Settings) -> Receiver:
    return Receiver(
        name=provider.NAME,
        configured=lambda: provider.configured(settings),
        verify=lambda headers, body: provider.verify(headers, body, settings),
        handle=provider.parse,
    )
