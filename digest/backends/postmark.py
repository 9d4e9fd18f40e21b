"""Postmark: ``POST /email/batch``, up to 500 messages, one result per message.

The batch endpoint answers 200 even when single messages fail; each entry of the answer has an
``ErrorCode`` (0 = accepted). Codes 300 (invalid email request) and 406 (inactive recipient)
reject that message only. Headers (List-Unsubscribe, Message-ID, ...) go in ``Headers``,
metadata in ``Metadata``, the stream in ``MessageStream``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
import orjson

from digest.backends.base import ResultStatus, SendResult
from digest.backends.http import ApiCall, ApiKeyBackend, JsonArray
from digest.backends.json_strings import escaped_bodies
from digest.message import OutgoingMessage, format_address, parse_address

if TYPE_CHECKING:
    from digest.config import Settings

# Postmark refuses a batch call over 50 MB (50 x 1024 x 1024 bytes of request body).
MAX_CALL_BYTES = 50 * 1024 * 1024
_BODY_KEYS_BYTES = len(b',"HtmlBody":"' + b'","TextBody":"' + b'",')
INVALID_EMAIL_REQUEST = 300
INACTIVE_RECIPIENT = 406
# Error 300 also covers a bad From or body; only a bad recipient makes the address unusable.
_RECIPIENT_PROBLEM = re.compile(r"(Invalid|Error\s+parsing)\s+'(To|Cc|Bcc)'", re.IGNORECASE)


class PostmarkBackend(ApiKeyBackend):
    """Sends through Postmark's batch API with a server token."""

    name: ClassVar[str] = "postmark"
    provider: ClassVar[str] = "Postmark"
    default_base_url: ClassVar[str] = "https://api.postmarkapp.com"
    max_batch_size: ClassVar[int] = 500
    # No documented per-second limit; batches of up to 500 (50 MB per call).
    default_rate: ClassVar[float] = 100.0

    def __init__(self, server_token: str, *, message_stream: str = "broadcast", **kwargs: Any):
        super().__init__(server_token, **kwargs)
        self.message_stream = message_stream

    @staticmethod
    def auth_for(api_key: str) -> dict[str, str]:
        return {"X-Postmark-Server-Token": api_key}

    @classmethod
    def options_from(cls, settings: Settings) -> dict[str, Any]:
        return {"message_stream": settings.postmark_message_stream}

    def plan(self, messages: Sequence[OutgoingMessage], indexes: list[int]) -> list[ApiCall]:
        """Calls of up to 500 messages, each under 50 MB: every message is encoded here, so
        a call is split on its exact size."""
        stream = self.message_stream
        calls: list[ApiCall] = []
        array, call_indexes = JsonArray(), list[int]()
        for index in indexes:
            message = messages[index]
            headers = [{"Name": k, "Value": v} for k, v in message.headers.items()]
            headers.append({"Name": "Message-ID", "Value": message.message_id})
            head: dict[str, Any] = {
                "From": parse_address(message.sender),
                "To": format_address(message.to, message.to_name),
                "Subject": message.subject,
            }
            tail: dict[str, Any] = {"Headers": headers, "MessageStream": stream}
            if message.reply_to:
                tail["ReplyTo"] = parse_address(message.reply_to)
            if message.metadata:
                tail["Metadata"] = message.metadata
            html, text = escaped_bodies(message)
            # orjson.dumps({**head, "HtmlBody": html, "TextBody": text, **tail}), byte for
            # byte, with the bodies escaped once per template (digest.backends.json_strings).
            start, end = orjson.dumps(head)[:-1], orjson.dumps(tail)[1:]
            element = [
                start,
                b',"HtmlBody":"',
                *html.pieces,
                b'","TextBody":"',
                *text.pieces,
                b'",',
                end,
            ]
            size = len(start) + html.size + text.size + len(end) + _BODY_KEYS_BYTES
            if call_indexes and array.size_with(size) > MAX_CALL_BYTES:
                calls.append(ApiCall(call_indexes, "/email/batch", array=array))
                array, call_indexes = JsonArray(), list[int]()
            array.append(element, size)
            call_indexes.append(index)
        calls.append(ApiCall(call_indexes, "/email/batch", array=array))
        return calls

    def parse(
        self, call: ApiCall, response: httpx.Response, messages: Sequence[OutgoingMessage]
    ) -> list[SendResult]:
        answer = self.json(response)
        if not isinstance(answer, list) or len(answer) != len(call.indexes):
            raise self.malformed(response, "not one entry per message")
        results = []
        for index, entry in zip(call.indexes, answer, strict=True):
            if not isinstance(entry, dict):  # JSON objects decode to dicts
                raise self.malformed(response, "not a list of objects")
            message_id = messages[index].message_id
            code = entry.get("ErrorCode", 0)
            if code == 0:
                provider_id = entry.get("MessageID")
                if not isinstance(provider_id, str):
                    raise self.malformed(response, "missing a MessageID")
                results.append(SendResult(message_id, ResultStatus.ACCEPTED, provider_id))
            else:
                text = str(entry.get("Message", ""))
                hard = code == INACTIVE_RECIPIENT or (
                    code == INVALID_EMAIL_REQUEST and bool(_RECIPIENT_PROBLEM.search(text))
                )
                results.append(
                    SendResult(
                        message_id,
                        ResultStatus.REJECTED,
                        error=f"Postmark error {code}: {text}",
                        hard_invalid=hard,
                    )
                )
        return results
