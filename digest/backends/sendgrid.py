"""SendGrid: ``POST /v3/mail/send`` with one personalization per message (up to 1,000).

SendGrid sends one content to every personalization of a call, so the body is sent as a
template and each personalization carries its own ``substitutions``
(``digest.backends.merge`` recovers the template; messages that cannot share one go in calls of
their own). Each personalization also carries its own subject, headers (List-Unsubscribe) and
``custom_args`` (metadata plus our Message-ID). SendGrid answers ``202`` with one
``X-Message-Id`` for the call; a ``400`` that blames only some personalizations' addresses
rejects those messages and the others are sent again without them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from email.utils import parseaddr
from typing import Any, ClassVar

import httpx
import orjson

from digest.backends.base import ResultStatus, SendResult
from digest.backends.http import ApiCall, ApiKeyBackend
from digest.backends.merge import MergeGroup, Placeholders, group_for_merge
from digest.message import OutgoingMessage

PLACEHOLDERS = Placeholders(
    tag=lambda key: f"[%dg_{key}%]", pattern=re.compile(r"\[%dg_([A-Za-z0-9_]+)%\]")
)
MAX_SUBSTITUTION_BYTES = 10_000  # per personalization
_BLAMED_ADDRESS = re.compile(r"^personalizations\.(\d+)\.to\b")


class SendGridBackend(ApiKeyBackend):
    """Sends through SendGrid's v3 Mail Send API with a bearer API key."""

    name: ClassVar[str] = "sendgrid"
    provider: ClassVar[str] = "SendGrid"
    default_base_url: ClassVar[str] = "https://api.sendgrid.com"
    max_batch_size: ClassVar[int] = 1000
    validate_addresses: ClassVar[bool] = True

    def plan(self, messages: Sequence[OutgoingMessage], indexes: list[int]) -> list[ApiCall]:
        groups = group_for_merge(
            messages, indexes, PLACEHOLDERS, max_values_bytes=MAX_SUBSTITUTION_BYTES
        )
        return [
            ApiCall(group.indexes, "/v3/mail/send", json=_payload(messages, group))
            for group in groups
        ]

    def parse(
        self, call: ApiCall, response: httpx.Response, messages: Sequence[OutgoingMessage]
    ) -> list[SendResult]:
        if response.status_code != 202:
            raise self.malformed(response, f"not the expected 202 Accepted ({response.text!r})")
        provider_id = response.headers.get("X-Message-Id")
        return [
            SendResult(messages[index].message_id, ResultStatus.ACCEPTED, provider_id)
            for index in call.indexes
        ]

    def rejections(
        self, call: ApiCall, response: httpx.Response, messages: Sequence[OutgoingMessage]
    ) -> dict[int, SendResult]:
        if response.status_code != 400:
            return {}
        try:
            errors = orjson.loads(response.content).get("errors")
        except (orjson.JSONDecodeError, AttributeError):
            return {}
        if not isinstance(errors, list) or not errors:
            return {}
        blamed: dict[int, str] = {}
        for error in errors:
            match = isinstance(error, Mapping) and _BLAMED_ADDRESS.match(str(error.get("field")))
            if not match or int(match[1]) >= len(call.indexes):
                return {}  # an error about the request itself: nobody is singled out
            blamed[call.indexes[int(match[1])]] = str(error.get("message", "invalid address"))
        return {
            index: SendResult(
                messages[index].message_id,
                ResultStatus.REJECTED,
                error=f"SendGrid: {reason}",
                hard_invalid=True,
            )
            for index, reason in blamed.items()
        }

    def error_detail(self, response: httpx.Response) -> str:
        try:
            errors = orjson.loads(response.content).get("errors")
            return "; ".join(str(error.get("message")) for error in errors)[:300]
        except (orjson.JSONDecodeError, AttributeError, TypeError):
            return super().error_detail(response)


def _contact(address: str, name: str = "") -> dict[str, str]:
    return {"email": address, "name": name} if name else {"email": address}


def _payload(messages: Sequence[OutgoingMessage], group: MergeGroup) -> dict[str, Any]:
    members = [messages[index] for index in group.indexes]
    first = members[0]
    sender_name, sender_address = parseaddr(first.sender)
    personalizations = []
    for message, values in zip(members, group.values, strict=True):
        personalization: dict[str, Any] = {
            "to": [_contact(message.to, message.to_name)],
            "subject": message.subject,
            "custom_args": {**message.metadata, "message_id": message.message_id},
        }
        if message.headers:
            personalization["headers"] = dict(message.headers)
        if values:
            personalization["substitutions"] = {
                PLACEHOLDERS.tag(key): value for key, value in values.items()
            }
        personalizations.append(personalization)
    payload: dict[str, Any] = {
        "personalizations": personalizations,
        "from": _contact(sender_address, sender_name),
        "content": [
            {"type": "text/plain", "value": group.text},
            {"type": "text/html", "value": group.html},
        ],
    }
    if first.reply_to:
        reply_name, reply_address = parseaddr(first.reply_to)
        payload["reply_to"] = _contact(reply_address, reply_name)
    return payload
