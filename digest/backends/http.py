"""The pipeline every HTTP API provider shares; each provider overrides only its own steps.

    plan      (provider)  split the batch into calls and build each call's payload
    encode                JSON with orjson, or a form body, once per call; a JSON array is
                          written a chunk at a time from its elements' pieces (``JsonArray``)
    post                  one reusable ``httpx.Client``: pooled connections, timeouts, base URL
    classify              transport failures and status codes -> ``digest.backends.errors``
    parse     (provider)  the provider's answer -> one ``SendResult`` per message of the call

Failures are classified in one place, so every provider means the same thing by each error:

    request never sent: ConnectError, ConnectTimeout, PoolTimeout   RetryableError
    sent, answer lost: ReadTimeout, WriteTimeout, ReadError,        AmbiguousError
        WriteError, RemoteProtocolError, any other transport error
    429 Too Many Requests                                           RateLimitedError, with
                                                                    Retry-After (seconds or date)
    401 / 403                                                       PermanentError: credentials
    5xx, 408 Request Timeout                                        RetryableError
    any other non-2xx                                               PermanentError, with the
                                                                    provider's own message
    2xx whose body is not the expected JSON                         AmbiguousError

A provider may recognise, in a 4xx answer, that only some messages were at fault
(``rejections``): those become ``REJECTED`` results and the rest of the call is planned and sent
again without them.
"""

from __future__ import annotations

import html
import re
from abc import abstractmethod
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, ClassVar, Self, cast
from urllib.parse import urlencode

import httpx
import orjson
from email_validator import EmailNotValidError, validate_email

from digest.backends.base import EmailBackend, ResultStatus, SendResult, require_setting
from digest.backends.errors import (
    AmbiguousError,
    BackendError,
    PermanentError,
    RateLimitedError,
    RetryableError,
)
from digest.message import OutgoingMessage

if TYPE_CHECKING:
    from digest.config import Settings

# Request bodies go out in pieces of at most this size: httpcore copies the unsent rest of a
# ``bytes`` body after every partial socket write, which is quadratic for tens of MB.
BODY_PIECE = 1 << 20
# A JSON array's elements are joined into chunks of about this size as they are written: one
# socket write (and one GIL round trip) per chunk instead of several per message, and chunks
# below glibc's mmap threshold (256 KB), whose memory is reused rather than mapped afresh.
CHUNK_BYTES = 192 * 1024

_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)
_MISCONFIGURED = (httpx.UnsupportedProtocol, httpx.InvalidURL)
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(slots=True)
class ApiCall:
    """One HTTP request carrying some messages of a batch (``indexes`` into the batch).

    The body is one of: ``form`` (URL-encoded), ``array`` (a JSON array whose elements
    ``plan`` encoded already, to split calls by their exact size), or ``json`` (any value).
    """

    indexes: list[int]
    path: str
    json: Any = None
    form: list[tuple[str, str]] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    array: JsonArray | None = None

    def encode(self) -> tuple[Body, str]:
        """The request body and its content type."""
        if self.form is not None:
            form = urlencode(self.form).encode("ascii")
            return Body.of(form), "application/x-www-form-urlencoded"
        if self.array is not None:
            return self.array, "application/json"
        if isinstance(self.json, list):
            array = JsonArray()
            for item in self.json:
                array.append([encoded := orjson.dumps(item)], len(encoded))
            return array, "application/json"
        return Body.of(orjson.dumps(self.json)), "application/json"


class Body:
    """A request body: its length, and its bytes in pieces (``iter`` may be called again)."""

    __slots__ = ("_pieces", "length")

    def __init__(self, pieces: Sequence[bytes], length: int) -> None:
        self._pieces = pieces
        self.length = length

    @classmethod
    def of(cls, data: bytes) -> Body:
        return cls([data], len(data))

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._pieces)


class JsonArray(Body):
    """A JSON array of encoded elements, each kept as the pieces it was encoded in.

    Nothing is joined until the body is written, and then a chunk (``CHUNK_BYTES``) at a
    time: a batch of digests is tens of MB, which would otherwise be held twice (the pieces
    and the joined body) and copied into a fresh allocation for every call.
    """

    __slots__ = ("elements", "sizes")

    def __init__(self) -> None:
        super().__init__((), 2)  # the brackets
        self.elements: list[Sequence[bytes]] = []
        self.sizes: list[int] = []

    def size_with(self, size: int) -> int:
        """The array's length once an element of ``size`` bytes is appended."""
        return self.length + size + (1 if self.elements else 0)

    def append(self, pieces: Sequence[bytes], size: int) -> None:
        """Append an element given as ``pieces`` that are ``size`` bytes together."""
        self.length = self.size_with(size)
        self.elements.append(pieces)
        self.sizes.append(size)

    def __iter__(self) -> Iterator[bytes]:
        chunk: list[bytes] = [b"["]
        filled = 1
        for index, (pieces, size) in enumerate(zip(self.elements, self.sizes, strict=True)):
            if filled > 1 and filled + size > CHUNK_BYTES:  # never a chunk of "[" alone
                yield b"".join(chunk)
                chunk, filled = [], 0
            if index:
                chunk.append(b",")
            chunk.extend(pieces)
            filled += size + 1
        chunk.append(b"]")
        yield b"".join(chunk)


class HttpBackend(EmailBackend):
    """Base of the API providers: owns the client, the request loop and the error mapping."""

    provider: ClassVar[str]  # how messages name the provider, e.g. "Postmark"
    default_base_url: ClassVar[str]
    credentials_setting: ClassVar[str] = "DIGEST_EMAIL_API_KEY"
    # Providers that report no per-recipient result check addresses locally first, so one
    # malformed address is rejected alone instead of failing the whole request.
    validate_addresses: ClassVar[bool] = False

    def __init__(
        self,
        *,
        base_url: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        self._owns_client = client is None
        self.client = client or httpx.Client(
            timeout=httpx.Timeout(timeout),
            transport=transport,
            follow_redirects=False,
            headers={"User-Agent": "digest"},
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, *, transport: httpx.BaseTransport | None = None
    ) -> HttpBackend:
        """Built from ``settings``; ``transport`` replaces the network (tests)."""
        raise NotImplementedError(f"{cls.__name__} cannot be built from settings")

    # -- provider steps -------------------------------------------------------------------

    @abstractmethod
    def auth_headers(self) -> dict[str, str]:
        """Headers that authenticate every request."""

    @abstractmethod
    def plan(self, messages: Sequence[OutgoingMessage], indexes: list[int]) -> list[ApiCall]:
        """The calls that send ``messages[i]`` for every ``i`` in ``indexes``."""

    @abstractmethod
    def parse(
        self, call: ApiCall, response: httpx.Response, messages: Sequence[OutgoingMessage]
    ) -> list[SendResult]:
        """One result per index of ``call``, in order, from a 2xx answer."""

    def rejections(
        self, call: ApiCall, response: httpx.Response, messages: Sequence[OutgoingMessage]
    ) -> dict[int, SendResult]:
        """From a non-2xx answer, the messages that alone caused it (none by default)."""
        return {}

    def sign(self, url: str, headers: dict[str, str], body: Body) -> None:
        """Add request-specific authentication to ``headers`` (for signed APIs)."""

    def error_for(self, response: httpx.Response) -> BackendError:
        """The error a non-2xx answer stands for; providers refine it for their own codes."""
        status = response.status_code
        detail = self.error_detail(response)
        if status == 429:
            return RateLimitedError(
                f"{self.provider} is rate limiting (HTTP 429): {detail}",
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        if status in (401, 403):
            return PermanentError(
                f"{self.provider} refused the request (HTTP {status}): invalid credentials; "
                f"check {self.credentials_setting} ({detail})"
            )
        if status >= 500 or status == 408:  # 408: the server gave up reading our request
            return RetryableError(f"{self.provider} failed (HTTP {status}): {detail}")
        return PermanentError(f"{self.provider} refused the request (HTTP {status}): {detail}")

    def error_detail(self, response: httpx.Response) -> str:
        """The provider's own explanation of an error answer, short."""
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            return response.text.strip()[:300] or response.reason_phrase
        if isinstance(body, Mapping):
            for key in ("message", "Message", "error", "detail"):
                if isinstance(body.get(key), str):
                    return str(body[key])[:300]
        return str(body)[:300]

    # -- the shared pipeline --------------------------------------------------------------

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        if len(messages) > self.max_batch_size:
            raise ValueError(f"{self.provider} takes at most {self.max_batch_size} messages")
        results: dict[int, SendResult] = {}
        if self.validate_addresses:
            results.update(invalid_addresses(messages))
        pending = [index for index in range(len(messages)) if index not in results]
        calls = deque(self.plan(messages, pending) if pending else [])
        try:
            while calls:
                call = calls.popleft()
                response = self.post(call)
                if response.is_success:
                    parsed = self.parse(call, response, messages)
                    if len(parsed) != len(call.indexes):
                        raise self.malformed(response, "not one result per message")
                    results.update(zip(call.indexes, parsed, strict=True))
                    continue
                rejected = self.rejections(call, response, messages)
                if not rejected:
                    raise self.error_for(response)
                results.update(rejected)
                # Each round removes at least one message, so this ends.
                rest = [index for index in call.indexes if index not in rejected]
                calls.extendleft(reversed(self.plan(messages, rest) if rest else []))
        except BackendError as exc:
            exc.partial_results = tuple(results[index] for index in sorted(results))
            exc.unsent = tuple(
                messages[index].message_id for left in calls for index in left.indexes
            )
            raise
        return [results[index] for index in range(len(messages))]

    def post(self, call: ApiCall) -> httpx.Response:
        """Send one call; transport failures come back as backend errors."""
        body, content_type = call.encode()
        url = self.base_url + call.path
        headers = {"Accept": "application/json", "Content-Type": content_type}
        headers.update(self.auth_headers())
        headers.update(call.headers)
        self.sign(url, headers, body)
        headers["Content-Length"] = str(body.length)
        try:
            return self.client.post(url, content=_writable(body), headers=headers)
        except _NOT_SENT as exc:
            raise RetryableError(
                f"could not reach {self.provider} ({type(exc).__name__}: {exc}); nothing was sent"
            ) from exc
        except _MISCONFIGURED as exc:
            raise PermanentError(f"bad {self.provider} API URL {url!r}: {exc}") from exc
        except httpx.TransportError as exc:
            raise AmbiguousError(
                f"{self.provider} may have accepted the request: {type(exc).__name__} "
                f"after it was sent ({exc})"
            ) from exc

    def json(self, response: httpx.Response) -> Any:
        """The JSON body of a 2xx answer; anything else is ambiguous (it may have been sent)."""
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise self.malformed(response, "not JSON") from None

    def malformed(self, response: httpx.Response, why: str) -> AmbiguousError:
        return AmbiguousError(
            f"{self.provider} answered HTTP {response.status_code} but the answer is {why}: "
            f"{response.text[:200]!r}; the messages may have been accepted"
        )

    def close(self) -> None:
        if self._owns_client:
            self.client.close()


class ApiKeyBackend(HttpBackend):
    """A provider authenticated by one API key (``DIGEST_EMAIL_API_KEY``), sent as a bearer
    token unless the provider says otherwise (``auth_for``)."""

    def __init__(self, api_key: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._auth = self.auth_for(api_key)

    @staticmethod
    def auth_for(api_key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {api_key}"}

    @classmethod
    def options_from(cls, settings: Settings) -> dict[str, Any]:
        """Provider-specific constructor arguments taken from ``settings``."""
        return {}

    @classmethod
    def from_settings(
        cls, settings: Settings, *, transport: httpx.BaseTransport | None = None
    ) -> Self:
        return cls(
            require_setting(settings.email_api_key, "DIGEST_EMAIL_API_KEY", cls.name),
            base_url=settings.email_api_url,
            timeout=settings.send_timeout,
            transport=transport,
            **cls.options_from(settings),
        )

    def auth_headers(self) -> dict[str, str]:
        return self._auth


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP date."""
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def invalid_addresses(messages: Sequence[OutgoingMessage]) -> dict[int, SendResult]:
    """``REJECTED`` results for the messages whose recipient address is not valid syntax."""
    rejected = {}
    for index, message in enumerate(messages):
        try:
            validate_email(message.to, check_deliverability=False)
        except EmailNotValidError as exc:
            rejected[index] = SendResult(
                message.message_id,
                ResultStatus.REJECTED,
                error=f"invalid address {message.to!r}: {exc}",
                hard_invalid=True,
            )
    return rejected


def tag_value(value: str) -> str:
    """A value reduced to the characters provider tags accept (letters, digits, ``_``, ``-``)."""
    return _TAG_UNSAFE.sub("_", value)[:256]


def html_variant(value: str) -> str:
    """How ``value`` appears in HTML text or attributes."""
    return html.escape(value, quote=True)


def _writable(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """The pieces, the large ones as views of at most ``BODY_PIECE`` (views, not slices: no
    piece is copied; the socket layer takes any bytes-like object)."""
    for piece in pieces:
        if len(piece) <= BODY_PIECE:
            yield piece
            continue
        view = memoryview(piece)
        for start in range(0, len(piece), BODY_PIECE):
            yield cast(bytes, view[start : start + BODY_PIECE])
