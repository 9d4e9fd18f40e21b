"""The exceptions digest raises on purpose, as one small tree.

    DigestError                 anything the user can act on; the CLI prints it as one line
    ├── ConfigError             settings that cannot work (placeholder secret, bad timezone, ...)
    ├── InputError              a file, row or field that is not acceptable input
    │   └── ContentError        a comparison document that fails validation (lists every problem)
    ├── NotFoundError           a named thing (edition, subscriber, week) does not exist
    └── ConflictError           the request contradicts the stored state (e.g. cancelled edition)

Delivery errors (retryable, rate-limited, permanent, ambiguous) live in
``digest.backends.errors`` beside the code that raises them.
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
