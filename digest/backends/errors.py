"""What can go wrong handing messages to a provider, as one small tree under ``DigestError``
(``digest.errors`` draws the whole tree with each branch's exit code).

    BackendError                    any failure of a backend call
    ├── RetryableError              nothing was delivered; try again later (5xx, connect error,
    │   │                           timeout before the request was sent)
    │   └── RateLimitedError        the provider asked us to slow down; ``retry_after`` seconds
    ├── PermanentError              retrying cannot help (bad credentials, malformed request);
    │                               nothing in the batch was accepted
    └── AmbiguousError              the request may have been delivered (timeout or dropped
                                    connection after it was sent): mark ``unknown``

A single recipient rejected inside an accepted batch is not an exception: it is a
``SendResult`` with ``status=REJECTED`` (see ``digest.backends.base``).

A backend that needs several requests for one batch (SMTP sends message by message; Mailgun
and SendGrid may split a batch they cannot express as one template) can fail after part of the
batch was handed over. The error then carries ``partial_results``: the results of the messages
that were already accepted or rejected, and ``unsent``: the Message-IDs of those the backend
never got to (the requests after the one that failed). The remaining messages share the
error's fate. Record the partial results first, or an accepted message would be sent twice;
an unsent message is not charged with the failure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from digest.errors import DigestError

if TYPE_CHECKING:
    from digest.backends.base import SendResult


class BackendError(DigestError):
    """A backend call failed as a whole (except for ``partial_results``, usually empty)."""

    exit_code = 69  # EX_UNAVAILABLE

    partial_results: tuple[SendResult, ...] = ()
    unsent: tuple[str, ...] = ()


class RetryableError(BackendError):
    """Nothing was accepted; the same request may be sent again."""

    exit_code = 75  # EX_TEMPFAIL


class RateLimitedError(RetryableError):
    """The provider throttled us; wait ``retry_after`` seconds (None: use our own backoff)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(BackendError):
    """The whole request is refused and will be refused again (e.g. invalid credentials)."""


class AmbiguousError(BackendError):
    """The provider may or may not have accepted the request."""

    exit_code = 76  # EX_PROTOCOL: the answer was lost, nothing is known
