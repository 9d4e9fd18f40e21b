"""Choosing and configuring the backend from the settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from digest.backends.base import EmailBackend
from digest.backends.mailgun import MailgunBackend
from digest.backends.memory import MemoryBackend
from digest.backends.outbox import OutboxBackend
from digest.backends.postmark import PostmarkBackend
from digest.backends.registry import BACKENDS, get_backend
from digest.backends.resend import ResendBackend
from digest.backends.sendgrid import SendGridBackend
from digest.backends.ses import SesBackend
from digest.backends.smtp import SmtpBackend
from digest.config import Settings
from digest.errors import ConfigError


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


def test_default_is_the_outbox(tmp_path: Path) -> None:
    backend = get_backend(_settings(outbox_dir=tmp_path / "out"))
    assert isinstance(backend, OutboxBackend)
    assert backend.directory == tmp_path / "out"


def test_memory() -> None:
    assert isinstance(get_backend(_settings(email_backend="memory")), MemoryBackend)


def test_every_configurable_name_is_registered() -> None:
    names = set(Settings.model_fields["email_backend"].annotation.__args__)  # type: ignore[union-attr]
    assert names == set(BACKENDS)
    for name, backend in BACKENDS.items():
        assert backend.name == name


def test_unknown_backend_names_the_setting() -> None:
    settings = _settings().model_copy(update={"email_backend": "carrier-pigeon"})
    with pytest.raises(ConfigError, match="DIGEST_EMAIL_BACKEND") as caught:
        get_backend(settings)
    assert "postmark" in str(caught.value)


@pytest.mark.parametrize(
    ("values", "setting"),
    [
        ({"email_backend": "postmark"}, "DIGEST_EMAIL_API_KEY"),
        ({"email_backend": "postmark", "email_api_key": "  "}, "DIGEST_EMAIL_API_KEY"),
        ({"email_backend": "sendgrid"}, "DIGEST_EMAIL_API_KEY"),
        ({"email_backend": "resend"}, "DIGEST_EMAIL_API_KEY"),
        ({"email_backend": "mailgun", "email_api_key": "k"}, "DIGEST_MAILGUN_DOMAIN"),
        ({"email_backend": "mailgun", "mailgun_domain": "mg.example.com"}, "DIGEST_EMAIL_API_KEY"),
        ({"email_backend": "ses"}, "DIGEST_SES_ACCESS_KEY_ID"),
        ({"email_backend": "ses", "ses_access_key_id": "AKID"}, "DIGEST_SES_SECRET_ACCESS_KEY"),
    ],
)
def test_missing_settings_are_named(values: dict[str, str], setting: str) -> None:
    with pytest.raises(ConfigError, match=setting) as caught:
        get_backend(_settings(**values))
    assert values["email_backend"] in str(caught.value)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"email_backend": "postmark", "email_api_key": "k"}, PostmarkBackend),
        ({"email_backend": "sendgrid", "email_api_key": "k"}, SendGridBackend),
        ({"email_backend": "resend", "email_api_key": "k"}, ResendBackend),
        (
            {"email_backend": "mailgun", "email_api_key": "k", "mailgun_domain": "mg.example.com"},
            MailgunBackend,
        ),
        (
            {
                "email_backend": "ses",
                "ses_access_key_id": "AKID",
                "ses_secret_access_key": "s",
                "ses_region": "eu-west-1",
            },
            SesBackend,
        ),
        ({"email_backend": "smtp", "smtp_host": "mail.example.com", "smtp_port": 587}, SmtpBackend),
    ],
)
def test_configured_backends(values: dict[str, Any], expected: type[EmailBackend]) -> None:
    backend = get_backend(_settings(**values))
    try:
        assert type(backend) is expected
    finally:
        backend.close()


def test_provider_specific_settings_reach_the_backend() -> None:
    postmark = get_backend(
        _settings(email_backend="postmark", email_api_key="k", postmark_message_stream="news")
    )
    assert isinstance(postmark, PostmarkBackend)
    assert postmark.message_stream == "news"
    ses = get_backend(
        _settings(
            email_backend="ses",
            ses_access_key_id="AKID",
            ses_secret_access_key="s",
            ses_region="eu-central-1",
            ses_configuration_set="events",
        )
    )
    assert isinstance(ses, SesBackend)
    assert ses.base_url == "https://email.eu-central-1.amazonaws.com"
    assert ses.configuration_set == "events"
    smtp = get_backend(
        _settings(
            email_backend="smtp",
            smtp_host="mail.example.com",
            smtp_port=465,
            smtp_ssl=True,
            smtp_username="u",
            smtp_password="p",
        )
    )
    assert isinstance(smtp, SmtpBackend)
    assert (smtp.host, smtp.port, smtp.use_ssl, smtp.username, smtp.password) == (
        "mail.example.com",
        465,
        True,
        "u",
        "p",
    )
