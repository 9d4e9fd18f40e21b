"""Amazon SES (API v2): ``POST /v2/email/outbound-emails``, one raw MIME message per call.

The message goes as ``Content.Raw.Data`` (the base64 of ``digest.backends.mime``), so every
header is exactly ours. Requests are signed with SigV4 (``digest.backends.sigv4``, service
``ses``). SES names its errors (``X-Amzn-ErrorType`` header or ``__type``/``code`` in the body):

    MessageRejected, BadRequest about an address       the message is REJECTED
    TooManyRequests, Throttling, LimitExceeded         RateLimitedError
    SendingPaused, AccountSendingPaused, AccountSuspended,
    MailFromDomainNotVerified, NotFound (config set)   PermanentError naming the cause
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
import orjson

from digest.backends import sigv4
from digest.backends.base import ResultStatus, SendResult, require_setting
from digest.backends.errors import BackendError, PermanentError, RateLimitedError
from digest.backends.http import ApiCall, Body, HttpBackend, parse_retry_after, tag_value
from digest.backends.mime import build_mime, to_bytes
from digest.message import OutgoingMessage

if TYPE_CHECKING:
    from digest.config import Settings

ACCOUNT_PATH = "/v2/email/account"
logger = logging.getLogger(__name__)
_THROTTLED = {"TooManyRequests", "Throttling", "LimitExceeded"}
_ACCOUNT_BLOCKED = {
    "SendingPaused": "sending is paused for this SES account",
    "AccountSendingPaused": "sending is paused for this SES account",
    "AccountSuspended": "this SES account is suspended",
    "MailFromDomainNotVerified": "the MAIL FROM domain is not verified in SES",
    "NotFound": "a resource named in the request (e.g. DIGEST_SES_CONFIGURATION_SET) is missing",
}
_ABOUT_ADDRESS = re.compile(r"address", re.IGNORECASE)


class SesBackend(HttpBackend):
    """Sends raw MIME messages through SES API v2 in one region."""

    name: ClassVar[str] = "ses"
    provider: ClassVar[str] = "SES"
    default_base_url: ClassVar[str] = "https://email.{region}.amazonaws.com"
    credentials_setting: ClassVar[str] = "DIGEST_SES_ACCESS_KEY_ID and DIGEST_SES_SECRET_ACCESS_KEY"
    max_batch_size: ClassVar[int] = 1
    # SES's default production quota; the account's own comes from GetAccount.
    default_rate: ClassVar[float] = 14.0

    def __init__(
        self,
        access_key_id: str,
        secret_access_key: str,
        *,
        region: str = "us-east-1",
        configuration_set: str | None = None,
        session_token: str | None = None,
        base_url: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(base_url=base_url or self.default_base_url.format(region=region), **kwargs)
        self.access_key_id = access_key_id
        self._secret = secret_access_key
        self._session_token = session_token
        self.region = region
        self.configuration_set = configuration_set
        self._account_rate: tuple[float | None] | None = None  # asked once per backend

    @classmethod
    def from_settings(
        cls, settings: Settings, *, transport: httpx.BaseTransport | None = None
    ) -> SesBackend:
        return cls(
            require_setting(settings.ses_access_key_id, "DIGEST_SES_ACCESS_KEY_ID", cls.name),
            require_setting(
                settings.ses_secret_access_key, "DIGEST_SES_SECRET_ACCESS_KEY", cls.name
            ),
            region=require_setting(settings.ses_region, "DIGEST_SES_REGION", cls.name),
            configuration_set=settings.ses_configuration_set,
            base_url=settings.email_api_url,
            timeout=settings.send_timeout,
            transport=transport,
        )

    def auth_headers(self) -> dict[str, str]:
        return {}

    def account_send_rate(self) -> float | None:
        """``SendQuota.MaxSendRate`` from ``GET /v2/email/account`` (asked once); None when
        the call fails, so the caller falls back to the default rate."""
        if self._account_rate is None:
            self._account_rate = (self._ask_send_rate(),)
        return self._account_rate[0]

    def _ask_send_rate(self) -> float | None:
        url = self.base_url + ACCOUNT_PATH
        headers = {"Accept": "application/json"}
        headers.update(
            sigv4.sign(
                "GET",
                url,
                {},
                b"",
                access_key_id=self.access_key_id,
                secret_access_key=self._secret,
                region=self.region,
                service="ses",
                session_token=self._session_token,
            )
        )
        try:
            response = self.client.get(url, headers=headers)
            quota = orjson.loads(response.content)["SendQuota"] if response.is_success else None
            rate = float(quota["MaxSendRate"]) if quota is not None else None
        except (httpx.HTTPError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            logger.warning("SES GetAccount failed (%s); using the default send rate", exc)
            return None
        if rate is None:
            logger.warning(
                "SES GetAccount answered HTTP %s (%s); using the default send rate",
                response.status_code,
                self.error_detail(response),
            )
        return rate if rate is None or rate > 0 else None

    def sign(self, url: str, headers: dict[str, str], body: Body) -> None:
        headers.update(
            sigv4.sign(
                "POST",
                url,
                {"Content-Type": headers["Content-Type"]},
                b"".join(body),  # one message per call: a small body
                access_key_id=self.access_key_id,
                secret_access_key=self._secret,
                region=self.region,
                service="ses",
                session_token=self._session_token,
            )
        )

    def plan(self, messages: Sequence[OutgoingMessage], indexes: list[int]) -> list[ApiCall]:
        calls = []
        for index in indexes:
            message = messages[index]
            raw = base64.b64encode(to_bytes(build_mime(message))).decode("ascii")
            payload: dict[str, Any] = {
                "Destination": {"ToAddresses": [message.to]},
                "Content": {"Raw": {"Data": raw}},
            }
            if self.configuration_set:
                payload["ConfigurationSetName"] = self.configuration_set
            if message.metadata:
                payload["EmailTags"] = [
                    {"Name": tag_value(key), "Value": tag_value(value)}
                    for key, value in message.metadata.items()
                ]
            calls.append(ApiCall([index], "/v2/email/outbound-emails", json=payload))
        return calls

    def parse(
        self, call: ApiCall, response: httpx.Response, messages: Sequence[OutgoingMessage]
    ) -> list[SendResult]:
        answer = self.json(response)
        if not isinstance(answer, Mapping) or not isinstance(answer.get("MessageId"), str):
            raise self.malformed(response, "missing the MessageId")
        (index,) = call.indexes
        return [SendResult(messages[index].message_id, ResultStatus.ACCEPTED, answer["MessageId"])]

    def rejections(
        self, call: ApiCall, response: httpx.Response, messages: Sequence[OutgoingMessage]
    ) -> dict[int, SendResult]:
        code = error_code(response)
        detail = self.error_detail(response)
        about_address = code == "BadRequest" and bool(_ABOUT_ADDRESS.search(detail))
        if code != "MessageRejected" and not about_address:
            return {}
        (index,) = call.indexes
        return {
            index: SendResult(
                messages[index].message_id,
                ResultStatus.REJECTED,
                error=f"SES {code}: {detail}",
                hard_invalid=about_address,
            )
        }

    def error_for(self, response: httpx.Response) -> BackendError:
        code = error_code(response)
        detail = self.error_detail(response)
        if code in _THROTTLED:
            return RateLimitedError(
                f"SES is throttling ({code}): {detail}",
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        if code in _ACCOUNT_BLOCKED:
            return PermanentError(f"SES refused to send: {_ACCOUNT_BLOCKED[code]} ({detail})")
        return super().error_for(response)


def error_code(response: httpx.Response) -> str:
    """SES's error name without namespace or ``Exception`` suffix (``MessageRejected``)."""
    raw = response.headers.get("X-Amzn-ErrorType", "")
    if not raw:
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            return ""
        if isinstance(body, Mapping):
            raw = str(body.get("__type") or body.get("code") or body.get("Code") or "")
    name = str(raw).split(":", 1)[0].rsplit("#", 1)[-1].strip()
    return name.removesuffix("Exception")
