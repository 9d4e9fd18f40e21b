"""SendGrid: ``POST /v3/mail/send`` with one personalization per message.

SendGrid sends one content to every personalization of a call, so the content variant's
templates go once, each slot written as a substitution tag, and each personalization carries
its own ``substitutions`` (``digest.backends.merge`` decides which messages share a call).
Tags are ``%<nonce>h0%`` (HTML part, slot 0) and ``%<nonce>t0%`` (text part): the HTML part
gets the HTML-escaped values, the text part the plain ones; a slot with the same value in both
parts for every message of the call is one ``%<nonce>b0%``. The nonce is random per backend, so
no comparison or subscriber text can contain a tag, and a message whose text does anyway is
sent alone. Each personalization also carries its own subject, headers (List-Unsubscribe) and
``custom_args`` (metadata plus our Message-ID). SendGrid answers ``202`` with one
``X-Message-Id`` for the call; a ``400`` that blames only some personalizations' addresses
rejects those messages and the others are sent again without them.

Documented limits (Mail Send API): 1,000 personalizations and 1,000 recipients per request,
each address once per request; substitutions up to 10,000 bytes per personalization (the
older, stricter figure); 30 MB per request.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from email.utils import parseaddr
from typing import Any, ClassVar

import httpx
import orjson

from digest.backends.base import ResultStatus, SendResult
from digest.backends.http import ApiCall, ApiKeyBackend
from digest.backends.merge import MergeGroup, group_for_merge, slot_names, slot_values
from digest.message import OutgoingMessage

MAX_SUBSTITUTION_BYTES = 10_000  # per personalization
MAX_CALL_BYTES = 27 * 1024 * 1024  # SendGrid refuses 30 MB; room for JSON escaping
_BLAMED_ADDRESS = re.compile(r"^personalizations\.(\d+)\.to\b")


class SendGridBackend(ApiKeyBackend):
    """Sends through SendGrid's v3 Mail Send API with a bearer API key."""

    name: ClassVar[str] = "sendgrid"
    provider: ClassVar[str] = "SendGrid"
    default_base_url: ClassVar[str] = "https://api.sendgrid.com"
    max_batch_size: ClassVar[int] = 1000
    default_rate: ClassVar[float] = 100.0
    validate_addresses: ClassVar[bool] = True

    def __init__(self, api_key: str, **kwargs: Any) -> None:
        super().__init__(api_key, **kwargs)
        self.nonce = secrets.token_hex(8)

    def tag(self, name: str) -> str:
        """The substitution tag of a slot's merge name (``merge.slot_names``)."""
        return f"%{self.nonce}{name}%"

    def plan(self, messages: Sequence[OutgoingMessage], indexes: list[int]) -> list[ApiCall]:
        nonce = self.nonce
        groups = group_for_merge(
            messages,
            indexes,
            is_safe=lambda text: nonce not in text,
            max_call_bytes=MAX_CALL_BYTES,
            max_values_bytes=MAX_SUBSTITUTION_BYTES,
        )
        return [
            ApiCall(group.indexes, "/v3/mail/send", json=self.payload(messages, group))
            for group in groups
        ]

    def payload(self, messages: Sequence[OutgoingMessage], group: MergeGroup) -> dict[str, Any]:
        members = [messages[index] for index in group.indexes]
        first, parts = members[0], group.parts
        names = slot_names(members)
        personalizations = []
        for message in members:
            personalization: dict[str, Any] = {
                "to": [_contact(message.to, message.to_name)],
                "subject": message.subject,
                "custom_args": {**message.metadata, "message_id": message.message_id},
            }
            if message.headers:
                personalization["headers"] = dict(message.headers)
            if parts is not None and message.merged is not None:
                personalization["substitutions"] = {
                    self.tag(name): value for name, value in slot_values(message, names).items()
                }
            personalizations.append(personalization)
        if parts is None:
            text, html = first.text, first.html
        else:
            text = parts.text_template.render(lambda n: self.tag(names[1][n]))
            html = parts.html_template.render(lambda n: self.tag(names[0][n]))
        sender_name, sender_address = parseaddr(first.sender)
        payload: dict[str, Any] = {
            "personalizations": personalizations,
            "from": _contact(sender_address, sender_name),
            "content": [
                {"type": "text/plain", "value": text},
                {"type": "text/html", "value": html},
            ],
        }
        if first.reply_to:
            reply_name, reply_address = parseaddr(first.reply_to)
            payload["reply_to"] = _contact(reply_address, reply_name)
        return payload

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
