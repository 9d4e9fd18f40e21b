"""Resend: ``POST /emails/batch``, up to 100 complete emails per call.

Each email carries its own headers (List-Unsubscribe, ...) and ``tags`` (metadata). The call
sends an ``Idempotency-Key`` derived from the messages' own keys, so repeating a batch after an
ambiguous failure cannot send it twice (Resend keeps keys for 24 hours). Validation is
``permissive``: an invalid email is reported in ``errors`` by index while the others are sent,
and ``data`` lists the ids of the accepted emails in order.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from email.utils import parseaddr
from typing import Any, ClassVar

import httpx
import orjson

from digest.backends.base import ResultStatus, SendResult
from digest.backends.errors import BackendError, RetryableError
from digest.backends.http import ApiCall, ApiKeyBackend, tag_value
from digest.message import OutgoingMessage, format_address, parse_address

_ABOUT_RECIPIENT = re.compile(r"\bto\b", re.IGNORECASE)


class ResendBackend(ApiKeyBackend):
    """Sends through Resend's batch API with a bearer API key."""

    name: ClassVar[str] = "resend"
    provider: ClassVar[str] = "Resend"
    default_base_url: ClassVar[str] = "https://api.resend.com"
    max_batch_size: ClassVar[int] = 100
    # Resend allows 2 requests per second by default: one full call per second is 100.
    default_rate: ClassVar[float] = 100.0
    supports_idempotency: ClassVar[bool] = True

    def plan(self, messages: Sequence[OutgoingMessage], indexes: list[int]) -> list[ApiCall]:
        emails = []
        for index in indexes:
            message = messages[index]
            email: dict[str, Any] = {
                "from": resend_sender(message.sender),
                "to": [format_address(message.to, message.to_name)],
                "subject": message.subject,
                "html": message.html,
                "text": message.text,
                "headers": dict(message.headers),
            }
            if message.reply_to:
                email["reply_to"] = [parse_address(message.reply_to)]
            if message.metadata:
                email["tags"] = [
                    {"name": tag_value(key), "value": tag_value(value)}
                    for key, value in message.metadata.items()
                ]
            emails.append(email)
        headers = {
            "Idempotency-Key": batch_idempotency_key([messages[i] for i in indexes]),
            "x-batch-validation": "permissive",
        }
        return [ApiCall(indexes, "/emails/batch", json=emails, headers=headers)]

    def parse(
        self, call: ApiCall, response: httpx.Response, messages: Sequence[OutgoingMessage]
    ) -> list[SendResult]:
        answer = self.json(response)
        data = answer.get("data") if isinstance(answer, Mapping) else None
        errors = (answer.get("errors") or []) if isinstance(answer, Mapping) else None
        if not isinstance(data, list) or not isinstance(errors, list):
            raise self.malformed(response, "missing data")
        refused: dict[int, str] = {}
        for error in errors:
            if not isinstance(error, Mapping) or not isinstance(error.get("index"), int):
                raise self.malformed(response, "an error without an index")
            refused[error["index"]] = str(error.get("message", ""))
        ids = iter(data)
        if len(data) != len(call.indexes) - len(refused):
            raise self.malformed(response, "not one id per accepted email")
        results = []
        for position, index in enumerate(call.indexes):
            message_id = messages[index].message_id
            if position in refused:
                reason = refused[position]
                results.append(
                    SendResult(
                        message_id,
                        ResultStatus.REJECTED,
                        error=f"Resend: {reason}",
                        hard_invalid=bool(_ABOUT_RECIPIENT.search(reason)),
                    )
                )
                continue
            entry = next(ids)
            if not isinstance(entry, Mapping) or not isinstance(entry.get("id"), str):
                raise self.malformed(response, "an entry without an id")
            results.append(SendResult(message_id, ResultStatus.ACCEPTED, str(entry["id"])))
        return results

    def error_for(self, response: httpx.Response) -> BackendError:
        if (
            response.status_code == 409
            and _error_name(response) == "concurrent_idempotent_requests"
        ):
            return RetryableError(
                "Resend is still processing a request with the same idempotency key"
            )
        return super().error_for(response)


def _error_name(response: httpx.Response) -> str:
    try:
        return str(orjson.loads(response.content).get("name", ""))
    except (orjson.JSONDecodeError, AttributeError):
        return ""


def batch_idempotency_key(messages: Sequence[OutgoingMessage]) -> str:
    """One key for the batch, the same whenever the same messages are sent again."""
    keys = "\n".join(m.idempotency_key or m.message_id for m in messages)
    return "digest-" + hashlib.sha256(keys.encode()).hexdigest()


def resend_sender(sender: str) -> str:
    """The ``from`` Resend accepts: an unquoted, unencoded display name.

    Resend refuses a quoted or RFC 2047-encoded display name in ``from``; an unquoted one,
    even with non-ASCII letters, is accepted.
    """
    name, address = parseaddr(sender)
    name = name.replace('"', "").replace("<", "").replace(">", "").strip()
    return f"{name} <{address}>" if name else address
