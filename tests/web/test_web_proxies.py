"""The client address behind reverse proxies (``DIGEST_TRUSTED_PROXIES``): spoofed
X-Forwarded-For from an untrusted peer changes nothing, and behind a trusted proxy each client
has its own sign-up limit, whatever it writes in the header itself."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.testclient import TestClient

from digest.backends.memory import MemoryBackend
from digest.config import Settings, load_settings
from digest.errors import ConfigError
from digest.web.app import create_app

LIMIT = 3
GATEWAY = "172.28.0.1"  # compose's gateway: the peer the container sees


def _app(settings: Settings, engine: Engine, trusted: list[str]) -> Starlette:
    limited = settings.model_copy(
        update={"subscribe_rate_per_minute": LIMIT, "trusted_proxies": trusted}
    )
    return create_app(limited, backend=MemoryBackend(), engine=engine)


def _signups(client: TestClient, count: int, forwarded: list[str] | None = None) -> list[int]:
    codes = []
    for number in range(count):
        headers = {}
        if forwarded is not None:
            headers["X-Forwarded-For"] = forwarded[number % len(forwarded)]
        response = client.post(
            "/subscribe", data={"email": f"s{number}@example.com"}, headers=headers
        )
        codes.append(response.status_code)
    return codes


@pytest.mark.parametrize(
    ("peer", "trusted"),
    [
        ("198.51.100.20", []),
        ("127.0.0.1", []),  # the default trusts no one, not even the loopback
        ("198.51.100.20", ["10.0.0.0/8"]),
        ("198.51.100.20", ["127.0.0.1"]),
    ],
)
def test_spoofing_from_an_untrusted_peer_changes_nothing(
    settings: Settings, engine: Engine, peer: str, trusted: list[str]
) -> None:
    client = TestClient(_app(settings, engine, trusted), client=(peer, 4000))
    spoofed = [f"203.0.113.{n}" for n in range(1, 30)] + ["made-up", "1.1.1.1, 2.2.2.2"]
    codes = _signups(client, 10, spoofed)
    assert codes.count(200) == LIMIT and codes.count(429) == 10 - LIMIT


def test_behind_a_trusted_proxy_each_client_has_its_own_limit(
    settings: Settings, engine: Engine
) -> None:
    app = _app(settings, engine, [GATEWAY])
    proxy = TestClient(app, client=(GATEWAY, 4000))
    # Twelve clients, each once: all allowed, though they arrive from one peer.
    assert _signups(proxy, 12, [f"203.0.113.{n}" for n in range(1, 13)]) == [200] * 12
    # One client, ten times: limited to its own LIMIT.
    codes = _signups(proxy, 10, ["198.51.100.7"])
    assert codes.count(200) == LIMIT and codes.count(429) == 10 - LIMIT


def test_behind_a_trusted_proxy_a_client_cannot_spoof_its_address(
    settings: Settings, engine: Engine
) -> None:
    """The proxy appends the address it saw; whatever the client wrote comes before it."""
    app = _app(settings, engine, [GATEWAY, "10.0.0.0/8"])
    proxy = TestClient(app, client=(GATEWAY, 4000))
    chains = [f"203.0.113.{n}, 10.1.2.3, 198.51.100.9" for n in range(1, 30)]
    chains += ["made-up, 198.51.100.9", "198.51.100.9"]
    codes = _signups(proxy, 10, chains)
    assert codes.count(200) == LIMIT and codes.count(429) == 10 - LIMIT


def test_without_trusted_proxies_every_client_behind_one_peer_shares_a_limit(
    settings: Settings, engine: Engine
) -> None:
    """The misconfiguration DIGEST_TRUSTED_PROXIES exists for, shown so that it is visible."""
    proxy = TestClient(_app(settings, engine, []), client=(GATEWAY, 4000))
    codes = _signups(proxy, 6, [f"203.0.113.{n}" for n in range(1, 7)])
    assert codes.count(429) == 6 - LIMIT


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("127.0.0.1", ["127.0.0.1"]),
        ("127.0.0.1, ::1,10.0.0.0/8", ["127.0.0.1", "::1", "10.0.0.0/8"]),
        ('["172.28.0.1"]', ["172.28.0.1"]),
        ("", []),
    ],
)
def test_setting_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, parsed: list[str]
) -> None:
    monkeypatch.setenv("DIGEST_TRUSTED_PROXIES", value)
    assert load_settings(_env_file=None).trusted_proxies == parsed


@pytest.mark.parametrize("value", ["*", "proxy.internal", "10.0.0.0/33"])
def test_setting_refuses_what_is_not_an_address(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("DIGEST_TRUSTED_PROXIES", value)
    with pytest.raises(ConfigError, match="DIGEST_TRUSTED_PROXIES"):
        load_settings(_env_file=None)
