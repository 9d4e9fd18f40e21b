"""Typed settings, read once from the environment (prefix ``DIGEST_``) and an optional ``.env``.

Every tunable of the service lives here so that ``digest config show`` can print the whole
effective configuration, secrets masked. Values are validated when loaded: a service that
starts with settings that cannot work is worse than one that refuses to start.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable
from email.headerregistry import Address
from email.utils import parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from digest.errors import ConfigError
from digest.secret_key import DEFAULT_SECRET, is_placeholder, require_signing_key, weakness
from digest.timezones import check_zone, parse_send_time, parse_weekday

EmailBackendName = Literal[
    "outbox", "memory", "postmark", "sendgrid", "mailgun", "resend", "ses", "smtp"
]

_SEND_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


class Settings(BaseSettings):
    """The effective configuration of one digest process."""

    model_config = SettingsConfigDict(
        env_prefix="DIGEST_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    # Production unless told otherwise: only development accepts a weak DIGEST_SECRET_KEY.
    environment: Literal["development", "test", "production"] = "production"
    database_url: str = "sqlite:///./digest.db"
    secret_key: SecretStr = SecretStr(DEFAULT_SECRET)
    # Log lines of every process (digest/logs.py): logfmt ``text`` or one JSON object a line.
    log_format: Literal["text", "json"] = "text"
    # Staging: accept subscriber addresses at the reserved .test domains (ada@example.test).
    allow_test_domains: bool = False

    # The newsletter itself.
    newsletter: str = Field("weekly", pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    site_name: str = "Weekly AI Tool Verdicts"
    base_url: str = "http://localhost:8000"
    sender: str = "Weekly AI Tool Verdicts <digest@verdicts.example.com>"
    reply_to: str | None = None
    postal_address: str = "Verdicts Media, 1 Example Street, Springfield, USA"
    timezone: str = "UTC"
    unsubscribe_mailto: str | None = None
    # str.format templates; fields and rules in digest/render/subject.py.
    subject_template: str = "{first}{more}"
    preheader_template: str = (
        "Ship or skip: the panel's verdicts on {count_label} from the past week"
    )
    min_new_comparisons: int = Field(1, ge=1)
    # The most HTML one email may carry, in KiB (Gmail clips at 102): comparisons beyond it
    # become one-line entries (digest/render/budget.py).
    email_size_budget_kb: int = Field(90, ge=16, le=100)

    # Delivery.
    email_backend: EmailBackendName = "outbox"
    email_api_url: str | None = None
    email_api_key: SecretStr | None = None
    outbox_dir: Path = Path("./outbox")
    mailgun_domain: str | None = None
    postmark_message_stream: str = "broadcast"
    ses_region: str = "us-east-1"
    ses_access_key_id: str | None = None
    ses_secret_access_key: SecretStr | None = None
    ses_configuration_set: str | None = None
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    send_rate: float = Field(50.0, gt=0, description="messages per second")
    send_concurrency: int = Field(2, ge=1, le=64)
    send_batch_size: int = Field(500, ge=1, le=1000)
    # How long a row keeps being retried after its first retryable failure (seconds).
    send_retry_window: float = Field(3600.0, gt=0)
    send_timeout: float = Field(30.0, gt=0)
    lease_seconds: int = Field(300, ge=10)
    # ``at-once``: every row is due when the edition is sent; ``local-time``: each subscriber
    # at ``local_send_time`` in their own zone on ``delivery_day`` (a crontab weekday; unset:
    # the day of DIGEST_SCHEDULE), see digest/delivery/local_time.py.
    delivery_mode: Literal["at-once", "local-time"] = "at-once"
    local_send_time: str = "08:00"
    delivery_day: str | None = None

    # Webhooks (one secret per provider scheme).
    postmark_webhook_user: str | None = None
    postmark_webhook_password: SecretStr | None = None
    sendgrid_webhook_public_key: str | None = None
    mailgun_webhook_signing_key: SecretStr | None = None
    resend_webhook_secret: SecretStr | None = None
    ses_sns_topic_arn: str | None = None
    # Hosts SNS signing certificates and confirmation URLs may come from; empty means the
    # regional endpoint of the topic, sns.<region>.amazonaws.com(.cn).
    ses_sns_cert_hosts: list[str] = Field(default_factory=list)
    webhook_max_bytes: int = Field(4 * 1024 * 1024, ge=64 * 1024)

    # Scheduler.
    schedule: str = "0 8 * * MON"
    misfire_grace_hours: float = Field(6.0, gt=0)
    send_window: str | None = None
    content_url: str | None = None
    content_dir: Path | None = None

    # Reader votes ("Would you ship it?" links in every card; off removes them site-wide).
    votes: bool = True
    vote_link_max_age_days: int = Field(120, ge=1, le=3650)
    vote_rate_per_minute: int = Field(30, ge=1)
    votes_api_rate_per_minute: int = Field(120, ge=1)

    # Engagement: content links go through {base_url}/r/{token} (off: plain links site-wide;
    # a subscriber may turn them off too). Hits within click_min_seconds of the provider
    # accepting the message are counted as automated; raw hits older than the retention are
    # aggregated and deleted. The edition report at /reports/{edition} needs admin_token.
    # track_opens adds a 1x1 image on the same route to the HTML part of each message (off by
    # default: image proxies and prefetching make its figures unreliable); a subscriber who
    # turned tracking off gets no image either.
    track_clicks: bool = True
    track_opens: bool = False
    click_min_seconds: int = Field(60, ge=0)
    click_retention_days: int = Field(180, ge=1)
    admin_token: SecretStr | None = None

    # Web.
    # Reverse proxies whose X-Forwarded-For is believed (addresses or networks, comma-separated
    # or a JSON array): the client is the rightmost address not in this list. Empty: the TCP
    # peer is the client and X-Forwarded-For is ignored.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    subscribe_rate_per_minute: int = Field(10, ge=1)
    # Bearer tokens: /healthz shows its details (database, scheduler) only with the first;
    # /metrics answers only with the second when it is set.
    health_token: SecretStr | None = None
    metrics_token: SecretStr | None = None
    max_request_bytes: int = Field(64 * 1024, ge=1024)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return check_zone(value)

    @field_validator("local_send_time")
    @classmethod
    def _send_time(cls, value: str) -> str:
        parse_send_time(value)
        return value

    @field_validator("delivery_day")
    @classmethod
    def _weekday(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        parse_weekday(value)
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxy_networks(cls, value: Any) -> list[str]:
        if isinstance(value, str):
            text = value.strip()
            value = json.loads(text) if text.startswith("[") else text.split(",")
        networks = [str(item).strip() for item in value if str(item).strip()]
        for network in networks:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(
                    f"not an IP address or network: {network[:64]!r} (e.g. 127.0.0.1,10.0.0.0/8)"
                ) from None
        return networks

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        scheme = value.partition("://")[0].lower() if "://" in value else ""
        if not scheme.startswith(("sqlite", "postgres")):
            raise ValueError(
                "must be sqlite:///path/to/digest.db or postgresql+psycopg://user@host/db, "
                f"got {_mask_url_password(value)!r}"
            )
        return value

    @field_validator("base_url")
    @classmethod
    def _absolute_base_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/?#]+(/[^\s?#]*)?$", value):
            raise ValueError(f"must be an absolute http(s) URL without query, got {value!r}")
        return value.rstrip("/")

    @field_validator("sender", "reply_to")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if "\r" in value or "\n" in value:
            raise ValueError("must not contain line breaks")
        _name, addr = parseaddr(value)
        if "@" not in addr:
            raise ValueError(f"not an email address: {value!r}")
        return value

    @field_validator("send_window")
    @classmethod
    def _window(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not _SEND_WINDOW.match(value):
            raise ValueError(f"must look like 07:00-20:00, got {value!r}")
        return value

    def require_signing_key(self) -> None:
        """Refuse (``ConfigError``, exit 78) a weak secret key outside development: called by
        every process that serves or sends, before it does either."""
        require_signing_key(self.environment, self.secret_key.get_secret_value())

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def sender_address(self) -> Address:
        name, addr = parseaddr(self.sender)
        username, _, domain = addr.rpartition("@")
        return Address(display_name=name, username=username, domain=domain)

    @property
    def list_id(self) -> str:
        """RFC 2919 List-Id: the newsletter name under the sender's domain."""
        return f"{self.newsletter}.{self.sender_address.domain}"

    def masked(self) -> dict[str, Any]:
        """The effective settings as plain data, every secret replaced by ``********``."""
        shown: dict[str, Any] = {}
        for name, value in self.model_dump().items():
            if name == "secret_key":
                shown[name] = _describe_secret_key(self.secret_key.get_secret_value())
            elif isinstance(value, SecretStr):
                shown[name] = "********" if value.get_secret_value() else ""
            elif isinstance(value, Path):
                shown[name] = str(value)
            else:
                shown[name] = value
        shown["database_url"] = _mask_url_password(self.database_url)
        return shown


def _describe_secret_key(value: str) -> str:
    if is_placeholder(value):
        return "placeholder (development only)"
    if weakness(value) is not None:
        return "******** (weak: development only)"
    return "********"


def _mask_url_password(url: str) -> str:
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1********@", url)


# DIGEST_* variables that are not settings: read by one command option, the deploy files or
# the test suite. Any other unknown DIGEST_* name is taken for a misspelt setting.
OTHER_VARIABLES = frozenset(
    {
        "DIGEST_HEARTBEAT_SECONDS",  # digest scheduler --heartbeat-seconds
        "DIGEST_TEMPLATES_DIR",  # digest/resources.py
        "DIGEST_EXAMPLES_DIR",  # digest/resources.py
        "DIGEST_NPM_CACHE_DIR",  # where the render tests install their npm tools
        "DIGEST_WEB_PORT",  # deploy/compose.yaml
        "DIGEST_IMAGE",  # deploy/compose.yaml
        "DIGEST_TEST_DATABASE_URL",  # the test suite
        "DIGEST_TEST_OUTPUT",  # the test suite
    }
)


def setting_variables() -> frozenset[str]:
    """``DIGEST_<NAME>`` of every setting."""
    return frozenset(f"DIGEST_{name.upper()}" for name in Settings.model_fields)


def unknown_variables(names: Iterable[str]) -> list[str]:
    """A warning for each ``DIGEST_*`` name in ``names`` that no setting reads, naming the
    closest setting (names are case-insensitive, as the settings read them)."""
    import difflib

    known = setting_variables()
    warnings = []
    for name in sorted({name.upper() for name in names}):
        if not name.startswith("DIGEST_") or name in known or name in OTHER_VARIABLES:
            continue
        # Compared without the common prefix, which would make every name look close.
        stems = sorted(known_name.removeprefix("DIGEST_") for known_name in known)
        closest = difflib.get_close_matches(name.removeprefix("DIGEST_"), stems, n=1, cutoff=0.6)
        hint = f"did you mean DIGEST_{closest[0]}?" if closest else "see `digest config show`"
        warnings.append(f"{name} is not a setting and is ignored; {hint}")
    return warnings


def _warn_unknown_variables() -> None:
    """Log ``unknown_variables`` of the environment and of ``.env``."""
    import logging
    import os

    names = set(os.environ)
    env_file = Path(".env")
    if env_file.is_file():
        from dotenv import dotenv_values

        names |= set(dotenv_values(env_file))
    log = logging.getLogger("digest.config")
    for warning in unknown_variables(names):
        log.warning(warning)


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, turning validation failures into one readable ``ConfigError``; a
    ``DIGEST_*`` variable that is no setting (a misspelt one) is logged as a warning."""
    from pydantic import ValidationError

    _warn_unknown_variables()
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"DIGEST_{'.'.join(str(p) for p in err['loc']).upper() or 'SETTINGS'}: "
            f"{err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; tests build their own ``Settings``)."""
    return load_settings()
