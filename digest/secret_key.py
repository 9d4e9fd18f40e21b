"""The rule for ``DIGEST_SECRET_KEY``: what counts as strong enough to sign links in emails.

Anyone who knows the key can forge every confirm, unsubscribe and preferences link, so every
process that serves or sends refuses a weak one outside development (``require_signing_key``).
Weak means a known placeholder, fewer than ``MIN_LENGTH`` characters, or a value that
zxcvbn (Dropbox's estimator, which knows words, repeats, sequences and keyboard walks) can
guess in fewer than 10**``MIN_GUESSES_LOG10`` tries. ``new_secret`` makes a good one.
"""

from __future__ import annotations

import secrets

from digest.errors import ConfigError

PLACEHOLDER_SECRETS = frozenset(
    {"", "change-me", "changeme", "secret", "dev-secret-change-me", "change-me-please"}
)
DEFAULT_SECRET = "dev-secret-change-me"  # noqa: S105 - a placeholder, refused outside development
MIN_LENGTH = 32
# ~93 bits. A random 32-character key scores 32; 'change-me-please-change-me-please' 23.5.
MIN_GUESSES_LOG10 = 28.0
# zxcvbn refuses longer input; a key whose first 72 characters are strong is strong.
_ZXCVBN_MAX = 72
HOW_TO_FIX = "run `digest config new-secret` and set DIGEST_SECRET_KEY to its output"


def new_secret() -> str:
    """A fresh random key: 48 bytes, URL-safe base64 (64 characters)."""
    return secrets.token_urlsafe(48)


def is_placeholder(value: str) -> bool:
    return value.strip().lower() in PLACEHOLDER_SECRETS


def weakness(value: str) -> str | None:
    """Why ``value`` is not a usable signing key, or ``None`` when it is."""
    if is_placeholder(value):
        return "is a placeholder"
    if len(value) < MIN_LENGTH:
        return f"is shorter than {MIN_LENGTH} characters"
    from zxcvbn import zxcvbn  # imported here: only serving and sending commands need it

    if float(zxcvbn(value[:_ZXCVBN_MAX])["guesses_log10"]) < MIN_GUESSES_LOG10:
        return "is guessable (words, repeats or sequences)"
    return None


def require_signing_key(environment: str, value: str) -> None:
    """Raise ``ConfigError`` (exit 78) when ``value`` is weak and ``environment`` is not
    development."""
    if environment == "development":
        return
    problem = weakness(value)
    if problem is not None:
        raise ConfigError(
            f"DIGEST_SECRET_KEY {problem}, so links in emails could be forged "
            f"(DIGEST_ENVIRONMENT={environment}): {HOW_TO_FIX}"
        )
