"""The embedded default backend: every message becomes a complete ``.eml`` file in a directory.

Nothing leaves the machine, so a fresh install can send an edition and open the result in any
mail client. Each file is written to a temporary name in the same directory and then renamed
over its final name (``os.replace``), so a reader never sees half a message. The file name
derives from the Message-ID alone: sending the same message again overwrites its file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from digest.backends.base import EmailBackend, ResultStatus, SendResult
from digest.backends.mime import build_mime, to_bytes
from digest.message import OutgoingMessage

if TYPE_CHECKING:
    from digest.config import Settings

_UNSAFE = re.compile(r"[^A-Za-z0-9._@+=-]")
_MAX_STEM = 120


def eml_file_name(message_id: str) -> str:
    """A file name made of safe characters only, one per Message-ID.

    The readable part is the Message-ID without brackets, each unsafe character replaced by
    ``_``; when that changed or shortened anything, a digest of the exact Message-ID is added so
    two different ids never share a file.
    """
    bare = message_id.strip().removeprefix("<").removesuffix(">")
    stem = _UNSAFE.sub("_", bare).lstrip(".")[:_MAX_STEM]
    if stem != bare or not stem:
        digest = hashlib.sha256(message_id.encode("utf-8")).hexdigest()[:16]
        stem = f"{stem}-{digest}" if stem else digest
    return f"{stem}.eml"


class OutboxBackend(EmailBackend):
    """Writes each message to ``directory/<message-id>.eml``; every message is accepted."""

    name: ClassVar[str] = "outbox"
    max_batch_size: ClassVar[int] = 1000
    default_rate: ClassVar[float] = 1000.0  # local files
    # Re-sending overwrites the same file, so a resend can never duplicate a message.
    supports_idempotency: ClassVar[bool] = True

    def __init__(self, directory: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.directory = Path(directory)
        self.fsync = fsync

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboxBackend:
        return cls(settings.outbox_dir)

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        self.directory.mkdir(parents=True, exist_ok=True)
        now = datetime.now().astimezone()
        results = []
        for message in messages:
            file_name = eml_file_name(message.message_id)
            self._write_atomically(file_name, to_bytes(build_mime(message, date=now)))
            results.append(
                SendResult(message.message_id, ResultStatus.ACCEPTED, provider_message_id=file_name)
            )
        return results

    def _write_atomically(self, file_name: str, data: bytes) -> None:
        fd, temp_name = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                if self.fsync:
                    handle.flush()
                    os.fsync(handle.fileno())
            Path(temp_name).replace(self.directory / file_name)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                Path(temp_name).unlink()
            raise
