"""The deployment files: the Dockerfile's stages, user and health check; compose's services,
health checks and start order; the systemd units' hardening; and an .env.example that
documents every setting of ``digest.config.Settings``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from digest.config import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_dockerfile_builds_a_wheel_and_runs_it_unprivileged() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)\s+AS\s+(\w+)", text, re.MULTILINE)
    assert [name for _image, name in stages] == ["builder", "runtime"]
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", text, re.MULTILINE)
    assert "python -m build --wheel" in text
    assert re.search(r"^COPY --from=builder ", text, re.MULTILINE)
    runtime = text.split(" AS runtime", 1)[1]
    user = re.search(r"^USER\s+(\S+)", runtime, re.MULTILINE)
    assert user is not None and not user.group(1).startswith(("root", "0"))
    assert re.search(r"^HEALTHCHECK .*\n?.*CMD", runtime, re.MULTILINE)
    assert "/healthz" in runtime
    assert re.search(r'^ENTRYPOINT \["digest"\]$', runtime, re.MULTILINE)
    assert "dev]" not in runtime  # no dev extras in the image


def test_dockerignore_keeps_the_context_small() -> None:
    lines = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    assert "**" in lines and "!digest/" in lines and "!pyproject.toml" in lines


def test_compose_file_text() -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    for needle in ("pg_isready", "/healthz", '["db", "upgrade"]', "service_completed_successfully"):
        assert needle in text


def test_compose_services_health_checks_and_order() -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML parses compose.yaml")
    compose: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "migrate", "web", "scheduler", "worker"}
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "/healthz" in " ".join(services["web"]["healthcheck"]["test"])
    assert services["web"]["command"][:3] == ["serve", "--host", "0.0.0.0"]
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    assert services["scheduler"]["command"] == ["scheduler"]
    assert services["worker"]["command"][0] == "worker"
    beat = services["worker"]["command"][
        services["worker"]["command"].index("--heartbeat-file") + 1
    ]
    assert beat in " ".join(services["worker"]["healthcheck"]["test"])
    assert services["worker"]["deploy"]["replicas"] == 2
    for name in ("web", "scheduler", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["postgres"]["condition"] == "service_healthy"
        assert services[name]["environment"]["DIGEST_DATABASE_URL"].startswith(
            "postgresql+psycopg://"
        )
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("scheduler", "worker"):
        assert services[name]["stop_signal"] == "SIGTERM"
        assert services[name]["stop_grace_period"]


def unit_settings(unit: str) -> dict[str, str]:
    text = (DEPLOY / "systemd" / unit).read_text()
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {key: value for key, value in pairs if not key.startswith("#")}


@pytest.mark.parametrize(
    ("unit", "command"),
    [
        ("digest-web.service", "digest serve"),
        ("digest-scheduler.service", "digest scheduler"),
        ("digest-worker@.service", "digest worker"),
        ("digest-migrate.service", "digest db upgrade"),
    ],
)
def test_systemd_units_are_hardened(unit: str, command: str) -> None:
    settings = unit_settings(unit)
    assert command in settings["ExecStart"]
    assert settings["User"] == "digest"
    assert settings["EnvironmentFile"] == "/etc/digest/digest.env"
    assert settings["NoNewPrivileges"] == "yes"
    assert settings["ProtectSystem"] == "strict"
    assert settings["ReadWritePaths"] == "/var/lib/digest"
    assert settings["CapabilityBoundingSet"] == ""


@pytest.mark.parametrize(
    "unit", ["digest-web.service", "digest-scheduler.service", "digest-worker@.service"]
)
def test_systemd_services_restart_stop_cleanly_and_migrate_first(unit: str) -> None:
    settings = unit_settings(unit)
    assert settings["Restart"] == "on-failure"
    # SIGTERM is a normal stop: systemctl stop must not leave the unit failed.
    assert (
        "0" in settings["SuccessExitStatus"].split()
        and "143" in settings["SuccessExitStatus"].split()
    )
    assert settings["KillSignal"] == "SIGTERM"
    assert settings["Requires"] == "digest-migrate.service"
    assert "digest-migrate.service" in settings["After"]
    if unit != "digest-web.service":
        # Long enough to finish or release a batch: the default lease.
        assert int(settings["TimeoutStopSec"]) >= Settings.model_fields["lease_seconds"].default


def test_env_example_documents_every_setting() -> None:
    text = (DEPLOY / ".env.example").read_text()
    documented = set(re.findall(r"^#? ?(DIGEST_[A-Z0-9_]+)=", text, re.MULTILINE))
    expected = {f"DIGEST_{name.upper()}" for name in Settings.model_fields}
    missing = expected - documented
    assert not missing, f"deploy/.env.example lacks {sorted(missing)}"
    # Each setting has a comment right above its line (its meaning and default).
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if re.match(r"^#? ?DIGEST_[A-Z0-9_]+=", line):
            assert index > 0 and lines[index - 1].startswith("#"), line


def test_ops_guide_covers_the_essentials() -> None:
    guide = (DEPLOY / "README.md").read_text()
    for topic in (
        "SPF",
        "DKIM",
        "DMARC",
        "List-Unsubscribe-Post",
        "pg_dump",
        ".backup",
        "VACUUM INTO",
        "digest db upgrade",
        "/healthz",
        "/metrics",
        "digest status",
        "digest pause",
    ):
        assert topic in guide, topic


def test_deploy_files_run_in_production() -> None:
    """The image, compose and every unit's environment file run in production; compose will
    not start without its .env (where DIGEST_SECRET_KEY lives)."""
    yaml = pytest.importorskip("yaml", reason="PyYAML parses compose.yaml")
    dockerfile = (DEPLOY / "Dockerfile").read_text().split(" AS runtime", 1)[1]
    assert re.search(r"^\s+DIGEST_ENVIRONMENT=production\b", dockerfile, re.MULTILINE)
    compose: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for name in ("migrate", "web", "scheduler", "worker"):
        service = compose["services"][name]
        assert service["environment"]["DIGEST_ENVIRONMENT"] == "production"
        assert all(entry.get("required", True) for entry in service["env_file"]), name
    example = (DEPLOY / ".env.example").read_text()
    assert re.search(r"^DIGEST_ENVIRONMENT=production$", example, re.MULTILINE)
    assert re.search(r"^DIGEST_SECRET_KEY=$", example, re.MULTILINE)
    assert Settings.model_fields["environment"].default == "production"


def test_deploy_files_trust_exactly_their_proxy() -> None:
    """compose trusts its own gateway (fixed by its subnet), the systemd web unit the loopback;
    each service has a health check."""
    import ipaddress

    yaml = pytest.importorskip("yaml", reason="PyYAML parses compose.yaml")
    compose: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    [network] = compose["networks"]["default"]["ipam"]["config"]
    web = compose["services"]["web"]
    trusted = web["environment"]["DIGEST_TRUSTED_PROXIES"]
    assert trusted == network["gateway"]
    assert ipaddress.ip_address(trusted) in ipaddress.ip_network(network["subnet"])
    assert web["healthcheck"]["test"] and compose["services"]["scheduler"]["healthcheck"]["test"]
    assert "HEALTHCHECK" in (DEPLOY / "Dockerfile").read_text()
    web_unit = unit_settings("digest-web.service")
    assert "DIGEST_TRUSTED_PROXIES=127.0.0.1,::1" in web_unit["Environment"].split()
    assert "127.0.0.1" in web_unit["ExecStart"]  # only the local proxy can reach it
    for unit in ("digest-web.service", "digest-scheduler.service", "digest-worker@.service"):
        assert "DIGEST_ENVIRONMENT=production" in unit_settings(unit)["Environment"].split()
    guide = (DEPLOY / "README.md").read_text()
    assert "DIGEST_TRUSTED_PROXIES" in guide and "172.28.0.1" in guide
