"""The backend interface: hand a batch of messages to a provider, get one result per message.

A backend owns the pipeline "build payload -> post -> parse per-recipient status -> normalized
results"; each provider overrides only its own steps (see ``digest.backends.http`` for the
HTTP providers). Backends raise ``digest.backends.errors`` for failures of the whole call.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, NamedTuple

from pydantic import SecretStr

from digest.errors import ConfigError
from digest.message import OutgoingMessage

if TYPE_CHECKING:
    from digest.config import Settings


class ResultStatus(enum.StrEnum):
    ACCEPTED = "accepted"  # the provider took the message
    REJECTED = "rejected"  # this recipient was refused; the others in the batch are unaffected


class SendResult(NamedTuple):
    """What happened to one message of a batch (a named tuple: a call makes hundreds)."""

    message_id: str
    status: ResultStatus
    provider_message_id: str | None = None
    error: str | None = None
    # True when the address itself is unusable (invalid, inactive): suppress it.
    hard_invalid: bool = False

    @property
    def accepted(self) -> bool:
        return self.status is ResultStatus.ACCEPTED


class EmailBackend(ABC):
    """Hands messages to one provider. Instances are reused across batches; ``close`` frees them."""

    name: ClassVar[str]
    # The provider's documented limit of messages per call, and the rate (messages per second)
    # sent at when DIGEST_SEND_RATE is unset and the provider does not tell the account's own
    # (``account_send_rate``); see ``effective_send_rate``.
    max_batch_size: ClassVar[int] = 1
    default_rate: ClassVar[float] = 10.0
    # A provider that deduplicates on ``OutgoingMessage.idempotency_key`` makes resending an
    # ``unknown`` message safe.
    supports_idempotency: ClassVar[bool] = False

    @classmethod
    def from_settings(cls, settings: Settings) -> EmailBackend:
        """The backend configured by ``settings``; ``ConfigError`` names a missing setting."""
        raise NotImplementedError(f"{cls.__name__} cannot be built from settings")

    @abstractmethod
    def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        """Send up to ``max_batch_size`` messages; one result per message, in order."""

    def account_send_rate(self) -> float | None:
        """The account's own limit in messages per second, where the provider tells it
        (None: it does not, or asking failed)."""
        return None

    def send(self, message: OutgoingMessage) -> SendResult:
        return self.send_batch([message])[0]

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the default backend holds none."""

    def __enter__(self) -> EmailBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def effective_send_rate(settings: Settings, backend: EmailBackend) -> float:
    """Messages per second to send at: ``DIGEST_SEND_RATE`` when it is set, else the
    account's limit where the provider exposes it (SES), else the backend's default."""
    if "send_rate" in settings.model_fields_set:
        return settings.send_rate
    account = backend.account_send_rate()
    if account is not None and account > 0:
        return account
    return backend.default_rate


def require_setting(value: str | SecretStr | None, env_name: str, backend: str) -> str:
    """The (secret) setting as text, or a ``ConfigError`` naming the variable that must be set."""
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    if not text or not text.strip():
        raise ConfigError(f"the {backend} email backend needs {env_name} to be set")
    return text
