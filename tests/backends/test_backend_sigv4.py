"""SigV4 against the examples AWS publishes (signature test suite and the IAM example)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from digest.backends import sigv4

ACCESS_KEY = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
WHEN = datetime(2015, 8, 30, 12, 36, tzinfo=UTC)


def _sign(method: str, url: str, headers: dict[str, str], service: str) -> dict[str, str]:
    return sigv4.sign(
        method,
        url,
        headers,
        b"",
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET,
        region="us-east-1",
        service=service,
        now=WHEN,
    )


@pytest.mark.parametrize(
    ("method", "url", "signature"),
    [
        # get-vanilla
        (
            "GET",
            "https://example.amazonaws.com/",
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        ),
        # get-vanilla-query-order-key-case: the query is sorted before signing
        (
            "GET",
            "https://example.amazonaws.com/?Param2=value2&Param1=value1",
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        ),
        # post-vanilla
        (
            "POST",
            "https://example.amazonaws.com/",
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        ),
    ],
)
def test_signature_test_suite(method: str, url: str, signature: str) -> None:
    added = _sign(method, url, {}, "service")
    assert added["X-Amz-Date"] == "20150830T123600Z"
    assert added["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={signature}"
    )


def test_iam_list_users_example() -> None:
    url = "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08"
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    canonical = sigv4.canonical_request(
        "GET", url, {**headers, "Host": "iam.amazonaws.com", "X-Amz-Date": "20150830T123600Z"}, b""
    )
    assert sigv4.sha256_hex(canonical.encode()) == (
        "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
    )
    assert _sign("GET", url, headers, "iam")["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date, "
        "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
    )


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        ("20150830", "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"),
        ("20120215", "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"),
    ],
)
def test_signing_key_derivation(date: str, expected: str) -> None:
    assert sigv4.signing_key(SECRET, date, "us-east-1", "iam").hex() == expected


def test_empty_payload_hash() -> None:
    assert sigv4.sha256_hex(b"") == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


def test_session_token_is_signed() -> None:
    added = sigv4.sign(
        "POST",
        "https://email.eu-west-1.amazonaws.com/v2/email/outbound-emails",
        {"Content-Type": "application/json"},
        b"{}",
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET,
        region="eu-west-1",
        service="ses",
        session_token="token-1",
        now=WHEN,
    )
    assert added["X-Amz-Security-Token"] == "token-1"
    assert (
        "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token" in added["Authorization"]
    )


def test_body_and_headers_change_the_signature() -> None:
    def signature(body: bytes, content_type: str) -> str:
        return sigv4.sign(
            "POST",
            "https://email.us-east-1.amazonaws.com/v2/email/outbound-emails",
            {"Content-Type": content_type},
            body,
            access_key_id=ACCESS_KEY,
            secret_access_key=SECRET,
            region="us-east-1",
            service="ses",
            now=WHEN,
        )["Authorization"]

    base = signature(b"{}", "application/json")
    assert base != signature(b"{ }", "application/json")
    assert base != signature(b"{}", "text/plain")
    assert base == signature(b"{}", "application/json")
