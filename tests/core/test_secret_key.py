"""The signing key: production by default, weak keys refused by every process that serves or
sends (exit 78, one line, how to make one), ``config new-secret``, ``config show``."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from digest.cli import app
from digest.config import get_settings, load_settings
from digest.errors import ConfigError
from digest.secret_key import MIN_LENGTH, new_secret, weakness
from digest.web.app import create_app

runner = CliRunner()

WEAK = [
    "",
    "dev-secret-change-me",
    "change-me-please",
    "aaaaaaaaaaaaaaaa",
    "a" * 64,
    "change-me-please-change-me-please",
    "abcdefghijklmnopqrstuvwxyz0123456789",
    "passwordpasswordpasswordpassword1234",
    "0123456789" * 4,
    "qwertyuiopasdfghjklzxcvbnmqwertyuiop",
    "xK9#mQ2$vL7pR4nW",  # random but short
]


@pytest.fixture
def production(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A process with nothing set but a database: the defaults apply."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIGEST_ENVIRONMENT", raising=False)
    monkeypatch.delenv("DIGEST_SECRET_KEY", raising=False)
    monkeypatch.setenv("DIGEST_DATABASE_URL", f"sqlite:///{tmp_path / 'p.db'}")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_production_is_the_default(production: None) -> None:
    assert load_settings(_env_file=None).environment == "production"


@pytest.mark.parametrize("secret", WEAK)
def test_weak_keys_are_weak(secret: str) -> None:
    assert weakness(secret) is not None


def test_new_secret_is_strong_and_new() -> None:
    first, second = new_secret(), new_secret()
    assert first != second and len(first) >= MIN_LENGTH
    assert weakness(first) is None and weakness(second) is None


@pytest.mark.parametrize("secret", WEAK)
@pytest.mark.parametrize("environment", ["production", "test"])
def test_weak_keys_refused_outside_development(secret: str, environment: str) -> None:
    settings = load_settings(_env_file=None, environment=environment, secret_key=secret)
    with pytest.raises(ConfigError, match="digest config new-secret") as caught:
        settings.require_signing_key()
    assert caught.value.exit_code == 78 and "\n" not in str(caught.value)
    assert secret not in str(caught.value) or not secret


def test_weak_key_allowed_in_development() -> None:
    load_settings(_env_file=None, environment="development").require_signing_key()


def test_the_web_app_refuses_a_weak_key() -> None:
    with pytest.raises(ConfigError):
        create_app(load_settings(_env_file=None, environment="production"))


@pytest.mark.parametrize(
    "command",
    [
        ["serve"],
        ["send"],
        ["send", "--to", "me@example.com"],
        ["worker", "--once"],
        ["scheduler", "--once"],
        ["subscribers", "add", "ada@example.com"],
    ],
)
@pytest.mark.parametrize("secret", [None, "change-me-please", "aaaaaaaaaaaaaaaa"])
def test_serving_and_sending_commands_exit_78(
    production: None, monkeypatch: pytest.MonkeyPatch, command: list[str], secret: str | None
) -> None:
    if secret is not None:
        monkeypatch.setenv("DIGEST_SECRET_KEY", secret)
    result = subprocess.run(
        [sys.executable, "-m", "digest", *command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 78, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "digest config new-secret" in lines[0], result.stderr
    assert not Path("p.db").exists() or command[0] != "serve"


def test_config_new_secret_prints_a_usable_key(production: None) -> None:
    result = runner.invoke(app, ["config", "new-secret"])
    assert result.exit_code == 0
    key = result.output.strip()
    assert weakness(key) is None
    settings = load_settings(_env_file=None, secret_key=key)
    settings.require_signing_key()


@pytest.mark.parametrize(
    ("secret", "shown"),
    [
        (None, "placeholder (development only)"),
        ("change-me", "placeholder (development only)"),
        ("aaaaaaaaaaaaaaaa", "weak: development only"),
        pytest.param(new_secret(), "********", id="new-secret"),  # an id every worker shares
    ],
)
def test_config_show_says_placeholder(
    production: None, monkeypatch: pytest.MonkeyPatch, secret: str | None, shown: str
) -> None:
    if secret is not None:
        monkeypatch.setenv("DIGEST_SECRET_KEY", secret)
    result = runner.invoke(app, ["config", "show"])
    assert result.exit_code == 0, result.output
    [line] = [line for line in result.output.splitlines() if line.startswith("DIGEST_SECRET_KEY")]
    assert shown in line
    if secret:
        assert secret not in line
