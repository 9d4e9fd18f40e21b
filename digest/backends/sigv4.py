"""AWS Signature Version 4 for a single HTTP request, with ``hmac`` and ``hashlib`` only.

``sign`` returns the headers to add (``X-Amz-Date``, ``Authorization`` and, for temporary
credentials, ``X-Amz-Security-Token``). The steps follow AWS's published algorithm: canonical
request, string to sign, derived signing key, signature; the tests check each one against
AWS's documented examples.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote, unquote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret_access_key: str, date: str, region: str, service: str) -> bytes:
    """The key derived for one day (``YYYYMMDD``), region and service."""
    key = _hmac(f"AWS4{secret_access_key}".encode(), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def canonical_headers(headers: Mapping[str, str]) -> tuple[str, str]:
    """``(canonical header block, signed header names)`` of the headers to sign."""
    folded = {name.strip().lower(): " ".join(value.split()) for name, value in headers.items()}
    names = sorted(folded)
    block = "".join(f"{name}:{folded[name]}\n" for name in names)
    return block, ";".join(names)


def canonical_request(method: str, url: str, headers: Mapping[str, str], body: bytes) -> str:
    """The canonical form of the request, as AWS rebuilds it to check the signature."""
    parts = urlsplit(url)
    path = quote(unquote(parts.path or "/"), safe="/~")
    query = "&".join(
        f"{quote(key, safe='-_.~')}={quote(value, safe='-_.~')}"
        for key, value in sorted(parse_qsl(parts.query, keep_blank_values=True))
    )
    block, signed = canonical_headers(headers)
    return "\n".join([method.upper(), path, query, block, signed, sha256_hex(body)])


def sign(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    access_key_id: str,
    secret_access_key: str,
    region: str,
    service: str,
    session_token: str | None = None,
    now: datetime | None = None,
) -> dict[str, str]:
    """The headers that authenticate this request; ``headers`` are all signed, plus Host."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    amz_date = moment.strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    added = {"X-Amz-Date": amz_date}
    if session_token:
        added["X-Amz-Security-Token"] = session_token
    to_sign = {name.lower(): value for name, value in headers.items()}
    to_sign.setdefault("host", urlsplit(url).netloc)
    to_sign.update({name.lower(): value for name, value in added.items()})
    request = canonical_request(method, url, to_sign, body)
    scope = f"{date}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join([ALGORITHM, amz_date, scope, sha256_hex(request.encode())])
    key = signing_key(secret_access_key, date, region, service)
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    _, signed = canonical_headers(to_sign)
    added["Authorization"] = (
        f"{ALGORITHM} Credential={access_key_id}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
    return added
