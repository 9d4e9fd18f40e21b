"""The preference page: categories, pause and unsubscribe behind a CSRF check; no open redirect."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import time_machine
from starlette.testclient import TestClient

from digest.config import Settings
from digest.web.csrf import CsrfGuard
from subscribers.models import AuditEntry, Cause, Status, Subscriber
from subscribers.tokens import Purpose, TokenSigner

CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


def _page(client: TestClient, token: str) -> tuple[str, str]:
    response = client.get(f"/preferences/{token}")
    assert response.status_code == 200
    match = CSRF_FIELD.search(response.text)
    assert match is not None
    return response.text, match.group(1)


def test_shows_the_current_choices(
    client: TestClient, signer: TokenSigner, add_subscriber: Callable[..., int]
) -> None:
    token = signer.make(add_subscriber(), Purpose.PREFERENCES)
    text, _csrf = _page(client, token)
    assert "ada@example.com" in text
    assert f'<form method="post" action="/preferences/{token}">' in text
    assert 'name="categories" value="Productivity" checked' not in text  # none chosen: all
    assert 'name="paused" value="1" checked' not in text
    assert 'name="vote_links" value="1" checked' in text  # vote buttons on by default
    assert "saved" not in text


def test_save_redirects_back_with_a_notice(
    client: TestClient,
    signer: TokenSigner,
    add_subscriber: Callable[..., int],
    load: Callable[[int], Subscriber],
    audit_of: Callable[[int], list[AuditEntry]],
) -> None:
    subscriber_id = add_subscriber()
    token = signer.make(subscriber_id, Purpose.PREFERENCES)
    _text, csrf = _page(client, token)
    response = client.post(
        f"/preferences/{token}?next=https://evil.example/",
        data={
            "csrf": csrf,
            "action": "save",
            "categories": ["Image & Video", "Customer Support"],
            "paused": "1",
        },
        headers={"Referer": "https://evil.example/"},
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/preferences/{token}?saved=1"
    subscriber = load(subscriber_id)
    assert subscriber.categories == ["Image & Video", "Customer Support"]
    assert subscriber.paused is True
    assert subscriber.status == Status.ACTIVE
    assert audit_of(subscriber_id)[-1].cause == Cause.PREFERENCE_PAGE

    page = client.get(response.headers["location"])
    assert "Your preferences are saved." in page.text
    assert 'value="Image &amp; Video" checked' in page.text
    assert 'name="paused" value="1" checked' in page.text
    assert 'value="Productivity" checked' not in page.text


def test_unsubscribe_from_the_page(
    client: TestClient,
    signer: TokenSigner,
    add_subscriber: Callable[..., int],
    load: Callable[[int], Subscriber],
    audit_of: Callable[[int], list[AuditEntry]],
) -> None:
    subscriber_id = add_subscriber()
    token = signer.make(subscriber_id, Purpose.PREFERENCES)
    _text, csrf = _page(client, token)
    response = client.post(f"/preferences/{token}", data={"csrf": csrf, "action": "unsubscribe"})
    assert response.status_code == 303
    assert load(subscriber_id).status == Status.UNSUBSCRIBED
    assert audit_of(subscriber_id)[-1].cause == Cause.PREFERENCE_PAGE
    page = client.get(response.headers["location"])
    assert "is unsubscribed" in page.text
    assert "Save preferences" not in page.text


def test_csrf_mismatch_is_refused(
    client: TestClient,
    settings: Settings,
    signer: TokenSigner,
    add_subscriber: Callable[..., int],
    load: Callable[[int], Subscriber],
) -> None:
    subscriber_id = add_subscriber()
    other_id = add_subscriber("bob@example.com")
    token = signer.make(subscriber_id, Purpose.PREFERENCES)
    other_token = signer.make(other_id, Purpose.PREFERENCES)
    _text, csrf = _page(client, token)
    _other_text, other_csrf = _page(client, other_token)
    forged = CsrfGuard("another-secret-0123456789abcdef").issue(token)
    for value in (None, "", "garbage", csrf[:-2], other_csrf, forged):
        data = {"action": "unsubscribe"} | ({} if value is None else {"csrf": value})
        response = client.post(f"/preferences/{token}", data=data)
        assert response.status_code == 403, value
        assert "location" not in response.headers
    assert load(subscriber_id).status == Status.ACTIVE


def test_csrf_value_expires(
    client: TestClient, signer: TokenSigner, add_subscriber: Callable[..., int]
) -> None:
    token = signer.make(add_subscriber(), Purpose.PREFERENCES)
    _text, csrf = _page(client, token)
    with time_machine.travel(time.time() + 2 * 86400):
        response = client.post(f"/preferences/{token}", data={"csrf": csrf, "action": "save"})
    assert response.status_code == 403


def test_bad_tokens_and_forms(
    client: TestClient,
    signer: TokenSigner,
    add_subscriber: Callable[..., int],
    load: Callable[[int], Subscriber],
) -> None:
    subscriber_id = add_subscriber()
    wrong_purpose = signer.make(subscriber_id, Purpose.UNSUBSCRIBE)
    assert client.get(f"/preferences/{wrong_purpose}").status_code == 400
    assert client.post(f"/preferences/{wrong_purpose}", data={}).status_code == 400
    missing = signer.make(subscriber_id + 100, Purpose.PREFERENCES)
    assert client.get(f"/preferences/{missing}").status_code == 400

    token = signer.make(subscriber_id, Purpose.PREFERENCES)
    _text, csrf = _page(client, token)
    odd_action = client.post(f"/preferences/{token}", data={"csrf": csrf, "action": "delete"})
    assert odd_action.status_code == 400
    odd_category = client.post(
        f"/preferences/{token}", data={"csrf": csrf, "action": "save", "categories": "Crypto"}
    )
    assert odd_category.status_code == 400
    assert load(subscriber_id).categories == []
