"""The exceptions digest raises on purpose, as one tree under ``DigestError``.

Each branch carries the exit code (``sysexits.h``) the CLI ends with, with or without
``--debug``::

    DigestError                     anything the user can act on; the CLI prints it as one line  1
    ├── ConfigError                 settings that cannot work (placeholder secret, bad zone)    78
    │   └── SchemaError             the database lacks the latest schema (digest.db)            78
    ├── DatabaseUnavailable         the database cannot be reached or opened (digest.db)        69
    ├── InputError                  a file, row or field that is not acceptable input           65
    │   ├── ContentError            a comparison document that fails validation (every problem) 65
    │   ├── HeaderInjectionError    a header value with a line break, a bad header name         65
    │   │                           (digest.message)
    │   ├── ReservedHeaderError     an extra header the message sets from its own fields        65
    │   └── SlotError               a compiled template lost a per-recipient slot               65
    │                               (digest.render.slots)
    ├── NotFoundError               a named thing (edition, subscriber, week) does not exist    66
    ├── ConflictError               the request contradicts the stored state (cancelled edition) 1
    │   └── LeadershipTaken         another scheduler leads (digest.scheduler.leader)           75
    ├── MjmlError                   a template that MJML cannot compile (digest.render.mjml)    65
    ├── SendAborted                 a provider refused a whole request for good                 69
    │                               (digest.delivery.sender)
    ├── BackendError                a provider call failed (digest.backends.errors)             69
    │   ├── RetryableError          nothing was delivered; try again later                      75
    │   │   └── RateLimitedError    the provider asked us to slow down (``retry_after``)        75
    │   ├── PermanentError          retrying cannot help (credentials, malformed request)       69
    │   └── AmbiguousError          the request may have been delivered: mark ``unknown``       76
    └── WebhookError                a webhook request is refused (digest.webhooks.events);      65
        │                           each also carries the HTTP ``status_code`` of the answer
        ├── SignatureError          not provably from the provider                     403      77
        │   └── MissingSignatureError  no credentials or signature at all              401      77
        ├── PayloadError            authentic, but not a payload we understand         400      65
        ├── NotConfiguredError      the provider's webhook secret is not set           503      78
        └── UnavailableError        something needed is unreachable; worth retrying    503      75

The branches outside this module live beside the code that raises them, and subclass these.
"""

from __future__ import annotations


class DigestError(Exception):
    """Base class of every error meant for the user rather than for a traceback."""

    exit_code = 1


class ConfigError(DigestError):
    """The effective settings cannot work."""

    exit_code = 78  # EX_CONFIG


class InputError(DigestError):
    """Input (a file, a row, a field, an argument) is not acceptable."""

    exit_code = 65  # EX_DATAERR


class ContentError(InputError):
    """A comparison document failed validation; ``problems`` lists each one as ``field: reason``."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {problem}" for problem in problems))


class NotFoundError(DigestError):
    """A named object does not exist."""

    exit_code = 66  # EX_NOINPUT


class ConflictError(DigestError):
    """The request contradicts the stored state."""
