"""CSRF protection of the preference form: a signed, time-stamped value bound to the page's token.

The hidden field is ``<digest of the URL token>.<timestamp>.<signature>`` signed with the
service secret. A form posted from another site cannot carry a valid value for the token in
its URL, and a value copied from an old page expires after ``max_age`` seconds. No cookie or
server-side state is needed, so the form keeps working across server restarts and processes.
"""

from __future__ import annotations

import hashlib
import hmac

from itsdangerous import BadSignature, TimestampSigner

DEFAULT_MAX_AGE = 24 * 3600


class CsrfGuard:
    """Issues and checks the hidden ``csrf`` field of forms that belong to one URL token."""

    def __init__(self, secret: str, *, max_age: int = DEFAULT_MAX_AGE) -> None:
        self._signer = TimestampSigner(secret, salt="digest.web.csrf")
        self.max_age = max_age

    def issue(self, token: str) -> str:
        return self._signer.sign(_bind(token)).decode("ascii")

    def check(self, token: str, value: str | None) -> bool:
        """True when ``value`` was issued for ``token`` by this secret less than max_age ago."""
        if not value:
            return False
        try:
            bound = self._signer.unsign(value, max_age=self.max_age)
        except (BadSignature, UnicodeError):
            return False
        return hmac.compare_digest(bound, _bind(token).encode("ascii"))


def _bind(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:32]
