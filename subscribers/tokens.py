"""Signed, stateless tokens for the links in every email: confirm, unsubscribe, preferences, vote.

A token is ``{subscriber_id}.{signature}`` (confirm tokens: ``{id}.{day}.{signature}``, where
``day`` is the UTC day of issue and makes them expire). The signature is HMAC-SHA256 under a
key derived from the secret for each purpose, so a token made for one purpose is useless for
another, and checking a token needs no database lookup. Rotating ``secret_key`` invalidates
every link ever sent.

The renderer makes two tokens per recipient for 100,000 recipients, so signing is tuned: the
HMAC inner and outer hash states are computed once per purpose and copied per token (the
classic precomputation of RFC 2104; a test checks it against ``hmac.new``).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import time
from base64 import urlsafe_b64encode
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from digest.config import Settings

SIGNATURE_LENGTH = 32  # base64url characters = 24 bytes = 192 bits of the HMAC-SHA256
CONFIRM_MAX_AGE_DAYS = 7
_MAX_ID_DIGITS = 19  # beyond a 64-bit id: refuse before int() does any work
_BLOCK_SIZE = 64  # SHA-256 block size in bytes


class Purpose(enum.StrEnum):
    CONFIRM = "confirm"
    UNSUBSCRIBE = "unsubscribe"
    PREFERENCES = "preferences"
    VOTE = "vote"


class _Mac:
    """HMAC-SHA256 under one fixed key with its padded key states hashed once."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > _BLOCK_SIZE:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_BLOCK_SIZE, b"\0")
        self._inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in key))
        self._outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in key))

    def signature(self, message: bytes) -> str:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return urlsafe_b64encode(outer.digest()[:24]).decode("ascii")


def _today() -> int:
    return int(time.time() // 86_400)


class TokenSigner:
    """Makes and checks tokens for one secret. Build it once and reuse it; it is thread-safe."""

    def __init__(self, secret: str | bytes, *, confirm_max_age_days: int = CONFIRM_MAX_AGE_DAYS):
        secret_bytes = secret.encode() if isinstance(secret, str) else secret
        if not secret_bytes:
            raise ValueError("the token secret must not be empty")
        self.confirm_max_age_days = confirm_max_age_days
        self._macs = {
            purpose: _Mac(
                hmac.new(
                    secret_bytes, f"digest subscriber token: {purpose}".encode(), hashlib.sha256
                ).digest()
            )
            for purpose in Purpose
        }

    def make(self, subscriber_id: int, purpose: Purpose) -> str:
        """A token for ``subscriber_id`` that only ``read(..., purpose)`` accepts."""
        if subscriber_id < 0:
            raise ValueError("subscriber ids are not negative")
        body = f"{subscriber_id}.{_today()}" if purpose == Purpose.CONFIRM else str(subscriber_id)
        return f"{body}.{self._macs[purpose].signature(body.encode('ascii'))}"

    def maker(self, purpose: Purpose) -> Callable[[int], str]:
        """``make`` with ``purpose`` bound, for loops over many recipients."""
        if purpose == Purpose.CONFIRM:
            return lambda subscriber_id: self.make(subscriber_id, purpose)
        signature = self._macs[purpose].signature

        def make(subscriber_id: int) -> str:
            if subscriber_id < 0:
                raise ValueError("subscriber ids are not negative")
            body = str(subscriber_id)
            return f"{body}.{signature(body.encode('ascii'))}"

        return make

    def read(self, token: str, purpose: Purpose) -> int | None:
        """The subscriber id in ``token``, or None if it is forged, damaged, expired or for
        another purpose. Never raises, whatever ``token`` is."""
        try:
            return self._read(token, purpose)
        except Exception:
            return None

    def _read(self, token: str, purpose: Purpose) -> int | None:
        if not isinstance(token, str) or not token.isascii():
            return None
        body, dot, signature = token.rpartition(".")
        if not dot or len(signature) != SIGNATURE_LENGTH:
            return None
        if purpose == Purpose.CONFIRM:
            id_part, dot, day_part = body.partition(".")
            if not dot or not _is_number(day_part, 6):
                return None
            age = _today() - int(day_part)
            if not 0 <= age <= self.confirm_max_age_days:
                return None
        else:
            id_part = body
        if not _is_number(id_part, _MAX_ID_DIGITS):
            return None
        expected = self._macs[purpose].signature(body.encode("ascii"))
        if not hmac.compare_digest(expected, signature):
            return None
        return int(id_part)


def _is_number(text: str, max_digits: int) -> bool:
    """Canonical decimal digits only: no sign, no spaces, no leading zero, no Unicode digits."""
    return (
        0 < len(text) <= max_digits
        and text.isascii()
        and text.isdigit()
        and (text == "0" or text[0] != "0")
    )


def signer_from_settings(settings: Settings) -> TokenSigner:
    return TokenSigner(settings.secret_key.get_secret_value())


def confirm_url(settings: Settings, signer: TokenSigner, subscriber_id: int) -> str:
    return f"{settings.base_url}/confirm/{signer.make(subscriber_id, Purpose.CONFIRM)}"


def unsubscribe_url(settings: Settings, signer: TokenSigner, subscriber_id: int) -> str:
    return f"{settings.base_url}/unsubscribe/{signer.make(subscriber_id, Purpose.UNSUBSCRIBE)}"


def preferences_url(settings: Settings, signer: TokenSigner, subscriber_id: int) -> str:
    return f"{settings.base_url}/preferences/{signer.make(subscriber_id, Purpose.PREFERENCES)}"
