"""Unsubscribe: a GET only shows the button; POST (button or RFC 8058 one-click) unsubscribes."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select
from starlette.testclient import TestClient

from digest.db import session_scope
from subscribers.models import AuditEntry, Cause, Status, Subscriber, Suppression
from subscribers.tokens import Purpose, TokenSigner

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


def _unsubscribes(audit: list[AuditEntry]) -> list[AuditEntry]:
    return [entry for entry in audit if entry.action == "unsubscribe"]


def test_get_shows_a_button_and_changes_nothing(
    client: TestClient,
    signer: TokenSigner,
    add_subscriber: Callable[..., int],
    load: Callable[[int], Subscriber],
) -> None:
    subscriber_id = add_subscriber()
    token = signer.make(subscriber_id, Purpose.UNSUBSCRIBE)
    for method in ("GET", "HEAD"):
        response = client.request(method, f"/unsubscribe/{token}")
        assert response.status_code == 200
    page = client.get(f"/unsubscribe/{token}")
    assert f'<form method="post" action="/unsubscribe/{token}">' in page.text
    assert "ada@example.com" in page.text
    assert load(subscriber_id).status == Status.ACTIVE


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_one_click_post_unsubscribes_without_redirect(
    encoding: str,
    client: TestClient,
    signer: TokenSigner,
    add_subscriber: Callable[..., int],
    load: Callable[[int], Subscriber],
    audit_of: Callable[[int], list[AuditEntry]],
    engine: Engine,
) -> None:
    subscriber_id = add_subscriber()
    url = f"/unsubscribe/{signer.make(subscriber_id, Purpose.UNSUBSCRIBE)}"
    if encoding == "urlencoded":
        response = client.post(url, data=ONE_CLICK)
    else:
        response = client.post(url, files={"List-Unsubscribe": (None, "One-Click")})
    assert response.status_code == 200
    assert "location" not in response.headers
    assert "set-cookie" not in response.headers
    assert "You're unsubscribed" in response.text
    assert load(subscriber_id).status == Status.UNSUBSCRIBED
    [entry] = _unsubscribes(audit_of(subscriber_id))
    assert entry.cause == Cause.ONE_CLICK
    assert (entry.old_status, entry.new_status) == ("active", "unsubscribed")
    with session_scope(engine) as session:
        assert session.exec(select(Suppression)).one().email_key == "ada@example.com"


def test_button_post_records_a_link_unsubscribe(
    client: TestClient,
    signer: TokenSigner,
    add_subscriber: Callable[..., int],
    audit_of: Callable[[int], list[AuditEntry]],
) -> None:
    subscriber_id = add_subscriber()
    response = client.post(f"/unsubscribe/{signer.make(subscriber_id, Purpose.UNSUBSCRIBE)}")
    assert response.status_code == 200
    [entry] = _unsubscribes(audit_of(subscriber_id))
    assert entry.cause == Cause.LINK


def test_unsubscribing_twice_is_fine(
    client: TestClient,
    signer: TokenSigner,
    add_subscriber: Callable[..., int],
    audit_of: Callable[[int], list[AuditEntry]],
) -> None:
    subscriber_id = add_subscriber()
    url = f"/unsubscribe/{signer.make(subscriber_id, Purpose.UNSUBSCRIBE)}"
    assert client.post(url, data=ONE_CLICK).status_code == 200
    assert client.post(url, data=ONE_CLICK).status_code == 200
    assert client.post(url).status_code == 200
    assert len(_unsubscribes(audit_of(subscriber_id))) == 1
    page = client.get(url)
    assert "already unsubscribed" in page.text
    assert "<form" not in page.text


def test_pending_subscriber_can_unsubscribe(
    client: TestClient,
    signer: TokenSigner,
    add_subscriber: Callable[..., int],
    load: Callable[[int], Subscriber],
) -> None:
    subscriber_id = add_subscriber(status=Status.PENDING)
    url = f"/unsubscribe/{signer.make(subscriber_id, Purpose.UNSUBSCRIBE)}"
    assert client.post(url, data=ONE_CLICK).status_code == 200
    assert load(subscriber_id).status == Status.UNSUBSCRIBED


def test_bounced_subscriber_keeps_the_stronger_status(
    client: TestClient,
    signer: TokenSigner,
    add_subscriber: Callable[..., int],
    load: Callable[[int], Subscriber],
) -> None:
    subscriber_id = add_subscriber(status=Status.BOUNCED)
    url = f"/unsubscribe/{signer.make(subscriber_id, Purpose.UNSUBSCRIBE)}"
    assert client.post(url, data=ONE_CLICK).status_code == 200
    assert load(subscriber_id).status == Status.BOUNCED


def _bad_tokens(signer: TokenSigner, subscriber_id: int) -> list[str]:
    good = signer.make(subscriber_id, Purpose.UNSUBSCRIBE)
    flipped = good[:-1] + ("A" if good[-1] != "A" else "B")
    return [
        good[:-1],  # truncated
        good[: len(good) // 2],
        flipped,  # forged signature
        f"{subscriber_id + 1}.{good.split('.')[1]}",  # another id, this id's signature
        signer.make(subscriber_id, Purpose.PREFERENCES),  # wrong purpose
        signer.make(subscriber_id, Purpose.CONFIRM),
        TokenSigner("another-secret-0123456789abcdef").make(subscriber_id, Purpose.UNSUBSCRIBE),
        "%2e%2e",
        "x" * 300,
    ]


def test_bad_tokens_are_refused_and_change_nothing(
    client: TestClient,
    signer: TokenSigner,
    add_subscriber: Callable[..., int],
    load: Callable[[int], Subscriber],
    audit_of: Callable[[int], list[AuditEntry]],
) -> None:
    subscriber_id = add_subscriber()
    before = len(audit_of(subscriber_id))
    bodies = set()
    for token in _bad_tokens(signer, subscriber_id):
        for response in (
            client.get(f"/unsubscribe/{token}"),
            client.post(f"/unsubscribe/{token}", data=ONE_CLICK),
            client.post(f"/unsubscribe/{token}"),
        ):
            assert response.status_code == 400, token
            assert "location" not in response.headers
            bodies.add(response.content)
    assert len(bodies) == 1  # the same answer whatever was wrong
    assert load(subscriber_id).status == Status.ACTIVE
    assert len(audit_of(subscriber_id)) == before


def test_erased_subscriber_is_simply_unsubscribed(client: TestClient, signer: TokenSigner) -> None:
    url = f"/unsubscribe/{signer.make(4242, Purpose.UNSUBSCRIBE)}"
    assert client.get(url).status_code == 200
    response = client.post(url, data=ONE_CLICK)
    assert response.status_code == 200
    assert "You're unsubscribed" in response.text


_FIELDS = "&".join(f"f{n}=x" for n in range(40)) + "&List-Unsubscribe=One-Click"
_MANY_PARTS = (
    "".join(f'--b\r\nContent-Disposition: form-data; name="f{n}"\r\n\r\nx\r\n' for n in range(40))
    + '--b\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\nOne-Click\r\n--b--\r\n'
)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b"List-Unsubscribe=One-Click"),  # no boundary
        ("multipart/form-data; boundary=", b"List-Unsubscribe=One-Click"),
        ("multipart/form-data; boundary=b", _MANY_PARTS.encode()),  # > 32 fields
        ("multipart/form-data; boundary=b", b"--b\r\ngarbage without headers"),
        (
            "multipart/form-data; boundary=b",
            b'--b\r\nContent-Disposition: form-data; name="f"; filename="a.txt"\r\n'
            b"\r\nx\r\n--b--\r\n",
        ),
        ("application/x-www-form-urlencoded", _FIELDS.encode()),  # > 32 fields
        ("application/x-www-form-urlencoded", b"\xff\xfe\x00garbage%%%=&&="),
        ("application/x-www-form-urlencoded", b""),
        ("text/plain", b"List-Unsubscribe=One-Click"),
        ("application/json", b'{"List-Unsubscribe": "One-Click"}'),
        ("application/octet-stream", bytes(range(256))),
        ("", b"\x00\x01\x02"),
    ],
)
def test_one_click_with_a_valid_token_unsubscribes_whatever_the_body(
    content_type: str,
    body: bytes,
    client: TestClient,
    signer: TokenSigner,
    add_subscriber: Callable[..., int],
    load: Callable[[int], Subscriber],
) -> None:
    subscriber_id = add_subscriber()
    url = f"/unsubscribe/{signer.make(subscriber_id, Purpose.UNSUBSCRIBE)}"
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post(url, content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert "You're unsubscribed" in response.text
    assert load(subscriber_id).status == Status.UNSUBSCRIBED


def test_a_forged_token_with_a_garbage_body_changes_nothing(
    client: TestClient,
    signer: TokenSigner,
    add_subscriber: Callable[..., int],
    load: Callable[[int], Subscriber],
) -> None:
    subscriber_id = add_subscriber()
    token = signer.make(subscriber_id, Purpose.UNSUBSCRIBE)
    response = client.post(
        f"/unsubscribe/{token[:-2]}xx",
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "multipart/form-data"},
    )
    assert response.status_code == 400
    assert load(subscriber_id).status == Status.ACTIVE
