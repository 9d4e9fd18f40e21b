"""Which backend sends: ``DIGEST_EMAIL_BACKEND`` names one of ``BACKENDS``.

``get_backend`` builds it from the settings and refuses, with a ``ConfigError`` naming the
missing variable, a backend that could not work (an API provider without a key, Mailgun
without a domain, ...), so a misconfigured service fails at start rather than mid-edition.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from digest.backends.base import EmailBackend
from digest.backends.mailgun import MailgunBackend
from digest.backends.memory import MemoryBackend
from digest.backends.outbox import OutboxBackend
from digest.backends.postmark import PostmarkBackend
from digest.backends.resend import ResendBackend
from digest.backends.sendgrid import SendGridBackend
from digest.backends.ses import SesBackend
from digest.backends.smtp import SmtpBackend
from digest.errors import ConfigError

if TYPE_CHECKING:
    from digest.config import Settings

BACKENDS: Mapping[str, type[EmailBackend]] = {
    backend.name: backend
    for backend in (
        OutboxBackend,
        MemoryBackend,
        PostmarkBackend,
        SendGridBackend,
        MailgunBackend,
        ResendBackend,
        SesBackend,
        SmtpBackend,
    )
}


def get_backend(settings: Settings) -> EmailBackend:
    """The backend named by ``settings.email_backend``, configured from ``settings``."""
    try:
        backend = BACKENDS[settings.email_backend]
    except KeyError:
        known = ", ".join(sorted(BACKENDS))
        raise ConfigError(
            f"unknown email backend {settings.email_backend!r} in DIGEST_EMAIL_BACKEND "
            f"(choose one of {known})"
        ) from None
    return backend.from_settings(settings)
