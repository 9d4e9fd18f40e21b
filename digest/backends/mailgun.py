"""Mailgun: ``POST /v3/{domain}/messages``, form-encoded, batch sending with recipient variables.

One call carries up to 1,000 recipients (Mailgun's documented batch limit; 25 MB per message):
the content variant's templates are sent once, slot ``n`` written ``%recipient.hN%`` in the HTML
part and ``%recipient.tN%`` in the text part (one ``%recipient.bN%`` when every recipient has the
same value in both parts), and each recipient's values (HTML-escaped for the HTML part) travel
in ``recipient-variables`` (``digest.backends.merge`` decides which messages
share a call). Per-recipient header values, subjects and metadata go through the same
variables (``h:List-Unsubscribe = %recipient.h:List-Unsubscribe%``). A message in which
``%recipient.`` occurs anywhere Mailgun substitutes is sent alone, its bodies as they are, and
so is a call of one. Mailgun answers one id per call and reports no per-recipient status, so
recipient addresses are checked locally first.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

import httpx
import orjson

from digest.backends.base import ResultStatus, SendResult, require_setting
from digest.backends.errors import BackendError, PermanentError
from digest.backends.http import ApiCall, HttpBackend
from digest.backends.merge import MergeGroup, group_for_merge, slot_names, slot_values
from digest.errors import ConfigError
from digest.message import OutgoingMessage, format_address, parse_address

if TYPE_CHECKING:
    from digest.config import Settings

VARIABLE_PREFIX = "%recipient."
MAX_CALL_BYTES = 20 * 1024 * 1024  # Mailgun refuses messages over 25 MB


def tag(name: str) -> str:
    return f"{VARIABLE_PREFIX}{name}%"


def _safe(text: str) -> bool:
    return VARIABLE_PREFIX not in text


class MailgunBackend(HttpBackend):
    """Sends through Mailgun's messages API for one sending domain (basic auth ``api:KEY``)."""

    name: ClassVar[str] = "mailgun"
    provider: ClassVar[str] = "Mailgun"
    default_base_url: ClassVar[str] = "https://api.mailgun.net"  # EU: https://api.eu.mailgun.net
    max_batch_size: ClassVar[int] = 1000
    default_rate: ClassVar[float] = 100.0
    validate_addresses: ClassVar[bool] = True

    def __init__(self, api_key: str, *, domain: str, **kwargs: Any) -> None:
        if not domain or "/" in domain:
            raise ConfigError(f"DIGEST_MAILGUN_DOMAIN must be a sending domain, got {domain!r}")
        super().__init__(**kwargs)
        self.domain = domain
        self._path = f"/v3/{quote(domain, safe='')}/messages"
        token = base64.b64encode(f"api:{api_key}".encode()).decode("ascii")
        self._auth = {"Authorization": f"Basic {token}"}

    @classmethod
    def from_settings(
        cls, settings: Settings, *, transport: httpx.BaseTransport | None = None
    ) -> MailgunBackend:
        return cls(
            require_setting(settings.email_api_key, "DIGEST_EMAIL_API_KEY", cls.name),
            domain=require_setting(settings.mailgun_domain, "DIGEST_MAILGUN_DOMAIN", cls.name),
            base_url=settings.email_api_url,
            timeout=settings.send_timeout,
            transport=transport,
        )

    def auth_headers(self) -> dict[str, str]:
        return self._auth

    def plan(self, messages: Sequence[OutgoingMessage], indexes: list[int]) -> list[ApiCall]:
        groups = group_for_merge(messages, indexes, is_safe=_safe, max_call_bytes=MAX_CALL_BYTES)
        return [ApiCall(group.indexes, self._path, form=_form(messages, group)) for group in groups]

    def parse(
        self, call: ApiCall, response: httpx.Response, messages: Sequence[OutgoingMessage]
    ) -> list[SendResult]:
        answer = self.json(response)
        if not isinstance(answer, Mapping) or not isinstance(answer.get("id"), str):
            raise self.malformed(response, "missing the message id")
        provider_id = str(answer["id"])
        return [
            SendResult(messages[index].message_id, ResultStatus.ACCEPTED, provider_id)
            for index in call.indexes
        ]

    def error_for(self, response: httpx.Response) -> BackendError:
        error = super().error_for(response)
        if response.status_code == 404:  # Mailgun's answer to an unknown domain or region
            return PermanentError(
                f"{error}; check DIGEST_MAILGUN_DOMAIN={self.domain!r} and that "
                f"DIGEST_EMAIL_API_URL ({self.base_url}) is the domain's region"
            )
        return error


def _form(messages: Sequence[OutgoingMessage], group: MergeGroup) -> list[tuple[str, str]]:
    """The form fields of one call; per-recipient differences become recipient variables."""
    members = [messages[index] for index in group.indexes]
    first = members[0]
    form = [("from", parse_address(first.sender))]
    form.extend(("to", format_address(m.to, m.to_name)) for m in members)
    parts = group.parts
    if len(members) == 1 or parts is None:  # no recipient variables: the bodies as they are
        form.extend([("html", first.html), ("text", first.text)])
        per_recipient: list[dict[str, str]] = [{}]
    else:
        names = slot_names(members)
        form.append(("html", parts.html_template.render(lambda n: tag(names[0][n]))))
        form.append(("text", parts.text_template.render(lambda n: tag(names[1][n]))))
        per_recipient = [slot_values(m, names) for m in members]
    if first.reply_to:
        form.append(("h:Reply-To", parse_address(first.reply_to)))

    def field_value(name: str, values: list[str]) -> None:
        if len(members) == 1 or all(value == values[0] for value in values):
            form.append((name, values[0]))
            return
        form.append((name, tag(name)))
        for own, value in zip(per_recipient, values, strict=True):
            own[name] = value

    field_value("subject", [m.subject for m in members])
    for header in first.headers:
        field_value(f"h:{header}", [m.headers[header] for m in members])
    for key in sorted(first.metadata):
        field_value(f"v:{key}", [m.metadata[key] for m in members])
    field_value("v:message_id", [m.message_id for m in members])
    if len(members) > 1:
        variables = {m.to: own for m, own in zip(members, per_recipient, strict=True)}
        form.append(("recipient-variables", orjson.dumps(variables).decode()))
    return form
