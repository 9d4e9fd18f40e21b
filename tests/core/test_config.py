"""Settings: defaults, validation, placeholder secrets refused outside development, masking."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from digest.config import Settings, load_settings
from digest.errors import ConfigError


def make(**values: object) -> Settings:
    return load_settings(_env_file=None, **values)


def test_defaults_are_the_embedded_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "DIGEST_DATABASE_URL",
        "DIGEST_ENVIRONMENT",
        "DIGEST_EMAIL_BACKEND",
        "DIGEST_TIMEZONE",
    ):
        monkeypatch.delenv(name, raising=False)
    settings = make()
    assert settings.database_url == "sqlite:///./digest.db"
    assert settings.timezone == "UTC"
    assert settings.email_backend == "outbox"


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_TIMEZONE", "America/New_York")
    monkeypatch.setenv("DIGEST_SEND_RATE", "12.5")
    settings = make()
    assert settings.timezone == "America/New_York" and settings.send_rate == 12.5


@pytest.mark.parametrize("secret", ["change-me", "dev-secret-change-me", "", "short"])
def test_placeholder_secret_refused_in_production(secret: str) -> None:
    with pytest.raises(ConfigError, match=r"DIGEST_SECRET_KEY"):
        make(environment="production", secret_key=secret).require_signing_key()


def test_placeholder_secret_allowed_in_development() -> None:
    settings = make(environment="development")
    settings.require_signing_key()
    assert settings.secret_key.get_secret_value()


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("timezone", "Mars/Olympus", "unknown timezone"),
        ("base_url", "ftp://x", "absolute http(s) URL"),
        ("sender", "Name <a@b.c>\r\nBcc: x@y.z", "line breaks"),
        ("send_window", "7-20", "07:00-20:00"),
        ("email_backend", "carrier-pigeon", "DIGEST_EMAIL_BACKEND"),
    ],
)
def test_invalid_values_name_the_setting(field: str, value: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make(**{field: value})
    assert fragment in str(caught.value)
    assert f"DIGEST_{field.upper()}" in str(caught.value)


def test_masked_hides_secrets_and_url_passwords() -> None:
    settings = make(
        secret_key="a-very-long-and-random-secret-value",
        email_api_key="pm-token-123",
        database_url="postgresql+psycopg://digest:hunter2@db:5432/digest",
    )
    shown = settings.masked()
    assert shown["secret_key"] == "********"
    assert shown["email_api_key"] == "********"
    assert shown["database_url"] == "postgresql+psycopg://digest:********@db:5432/digest"
    assert "hunter2" not in repr(shown) and "pm-token-123" not in repr(shown)


def test_list_id_uses_the_sender_domain() -> None:
    assert make(sender="Verdicts <news@mail.example.org>").list_id == "weekly.mail.example.org"


@pytest.mark.parametrize("zone", ["Europe", "America", "Etc", "x" * 10_000, "Europe/"])
def test_a_timezone_setting_that_is_not_a_zone_is_a_config_error(zone: str) -> None:
    with pytest.raises(ConfigError, match="DIGEST_TIMEZONE: unknown timezone") as caught:
        make(timezone=zone)
    assert caught.value.exit_code == 78 and len(str(caught.value)) < 300


def test_timezone_setting_exits_78_from_the_command_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIGEST_TIMEZONE", "Europe")
    result = subprocess.run(
        [sys.executable, "-m", "digest", "config", "show"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 78, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "DIGEST_TIMEZONE: unknown timezone 'Europe'" in result.stderr


def test_the_zone_list_is_tzdata_s_and_every_zone_on_it_loads() -> None:
    from zoneinfo import ZoneInfo, available_timezones

    from digest.timezones import _zones, check_zone

    zones = _zones()
    assert {"UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires"} <= zones
    assert "Europe" not in zones and zones <= available_timezones()
    assert all(ZoneInfo(zone) for zone in sorted(zones)[:50])
    assert check_zone("America/Argentina/Buenos_Aires") == "America/Argentina/Buenos_Aires"
