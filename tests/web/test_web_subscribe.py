"""Sign-up and confirmation pages: double opt-in, no enumeration, no spam, clear errors."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from digest.backends.errors import RetryableError
from digest.backends.memory import MemoryBackend
from digest.config import Settings
from digest.db import session_scope
from digest.web import routes_subscription
from digest.web.app import create_app
from digest.web.routes_subscription import CATEGORIES
from digest.web.services import WebServices
from subscribers.models import AuditEntry, Status, Subscriber
from subscribers.tokens import Purpose, TokenSigner

CONFIRM_LINK = re.compile(r"https://verdicts\.example\.com(/confirm/[A-Za-z0-9._-]+)")


def _subscriber(engine: Engine, email_key: str) -> Subscriber | None:
    with session_scope(engine) as session:
        return session.exec(select(Subscriber).where(Subscriber.email_key == email_key)).first()


def test_form_offers_every_category(client: TestClient) -> None:
    response = client.get("/subscribe")
    assert response.status_code == 200
    assert '<form method="post" action="/subscribe"' in response.text
    for category in CATEGORIES:
        assert f'value="{category.replace("&", "&amp;")}"' in response.text


def test_root_redirects_to_the_form(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["location"] == "/subscribe"


def test_double_opt_in(
    client: TestClient,
    backend: MemoryBackend,
    engine: Engine,
    audit_of: Callable[[int], list[AuditEntry]],
) -> None:
    response = client.post(
        "/subscribe",
        data={
            "email": "Ada@Example.com",
            "name": "Ada",
            "categories": ["Developer Tools", "Productivity"],
            "timezone": "Europe/Berlin",
        },
    )
    assert response.status_code == 200
    assert "Check your inbox" in response.text
    subscriber = _subscriber(engine, "ada@example.com")
    assert subscriber is not None and subscriber.id is not None
    assert subscriber.status == Status.PENDING
    assert subscriber.categories == ["Developer Tools", "Productivity"]
    assert subscriber.timezone == "Europe/Berlin"
    assert subscriber.source == "web"

    assert [message.to for message in backend.sent] == ["Ada@example.com"]
    link = CONFIRM_LINK.search(backend.sent[0].text)
    assert link is not None

    # A link scanner's GET and HEAD: a page with one button, and no change.
    page = client.get(link.group(1))
    assert page.status_code == 200
    assert f'<form method="post" action="{link.group(1)}">' in page.text
    assert page.text.count("<button") == 1 and "You're subscribed" not in page.text
    assert client.head(link.group(1)).status_code == 200
    pending = _subscriber(engine, "ada@example.com")
    assert pending is not None and pending.status == Status.PENDING

    confirmed = client.post(link.group(1))
    assert confirmed.status_code == 200
    assert "You're subscribed" in confirmed.text
    assert re.search(r'href="/preferences/[A-Za-z0-9._-]+"', confirmed.text)
    after = _subscriber(engine, "ada@example.com")
    assert after is not None and after.status == Status.ACTIVE

    again = client.post(link.group(1))  # idempotent
    assert again.status_code == 200
    later = client.get(link.group(1))  # the link opened again: says so, changes nothing
    assert later.status_code == 200 and "You're subscribed" in later.text
    assert [entry.action for entry in audit_of(subscriber.id)] == ["signup", "confirm"]


def test_get_and_head_on_a_confirm_link_never_confirm(
    client: TestClient,
    signer: TokenSigner,
    engine: Engine,
    audit_of: Callable[[int], list[AuditEntry]],
) -> None:
    client.post("/subscribe", data={"email": "scanned@example.com"})
    subscriber = _subscriber(engine, "scanned@example.com")
    assert subscriber is not None and subscriber.id is not None
    path = f"/confirm/{signer.make(subscriber.id, Purpose.CONFIRM)}"
    for _ in range(3):
        assert client.get(path).status_code == 200
        assert client.head(path).status_code == 200
        assert client.get(path, headers={"Accept": "*/*", "User-Agent": "scanner"}).is_success
    after = _subscriber(engine, "scanned@example.com")
    assert after is not None and after.status == Status.PENDING and after.confirmed_at is None
    assert [entry.action for entry in audit_of(subscriber.id)] == ["signup"]


def test_repeated_signups_send_one_mail_and_answer_the_same(
    client: TestClient, backend: MemoryBackend, add_subscriber: Callable[..., int]
) -> None:
    add_subscriber("known@example.com")
    answers = [
        client.post("/subscribe", data={"email": "new@example.com"}),
        client.post("/subscribe", data={"email": "NEW@example.com"}),
        client.post("/subscribe", data={"email": "known@example.com"}),
    ]
    assert len(backend.sent) == 1  # the second sign-up within 10 minutes sends nothing
    assert {answer.status_code for answer in answers} == {200}
    assert len({answer.content for answer in answers}) == 1
    assert len({tuple(sorted(answer.headers.items())) for answer in answers}) == 1


def test_suppressed_address_gets_the_same_answer_and_no_mail(
    client: TestClient, backend: MemoryBackend, add_subscriber: Callable[..., int]
) -> None:
    add_subscriber("gone@example.com", Status.COMPLAINED)
    fresh = client.post("/subscribe", data={"email": "fresh@example.com"})
    complained = client.post("/subscribe", data={"email": "gone@example.com"})
    assert complained.status_code == fresh.status_code == 200
    assert complained.content == fresh.content
    assert [message.to for message in backend.sent] == ["fresh@example.com"]


def test_no_category_means_all(client: TestClient, engine: Engine) -> None:
    client.post("/subscribe", data={"email": "all@example.com"})
    subscriber = _subscriber(engine, "all@example.com")
    assert subscriber is not None and subscriber.categories == []


def test_invalid_address_shows_the_form_again(client: TestClient, engine: Engine) -> None:
    response = client.post(
        "/subscribe",
        data={"email": '"><script>alert(1)</script>', "name": "Eve", "categories": "Productivity"},
    )
    assert response.status_code == 400
    assert "That is not a valid email address." in response.text
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;" in response.text  # kept in the field, escaped
    assert 'value="Eve"' in response.text
    assert 'value="Productivity" checked' in response.text
    with session_scope(engine) as session:
        assert session.exec(select(Subscriber)).first() is None


def test_missing_address(client: TestClient) -> None:
    response = client.post("/subscribe", data={"email": "  "})
    assert response.status_code == 400
    assert "Enter your email address." in response.text


def test_unknown_category_is_refused(client: TestClient, backend: MemoryBackend) -> None:
    response = client.post("/subscribe", data={"email": "a@example.com", "categories": "Crypto"})
    assert response.status_code == 400
    assert "Choose categories from the list." in response.text
    assert backend.sent == []


def test_empty_timezone_is_the_default(client: TestClient, engine: Engine) -> None:
    client.post("/subscribe", data={"email": "tz@example.com", "timezone": ""})
    subscriber = _subscriber(engine, "tz@example.com")
    assert subscriber is not None and subscriber.timezone == "UTC"


@pytest.mark.parametrize(
    "zone",
    [
        "Mars/Olympus",
        "Europe",
        "America",
        "Etc",
        "posixrules/..",
        "../../etc/passwd",
        "Europe/",
        "x" * 10_000,
        "UTC\x00",
        "Europe/Berlin/Mitte",
    ],
)
def test_a_timezone_that_is_not_a_zone_is_a_400(
    client: TestClient, engine: Engine, backend: MemoryBackend, zone: str
) -> None:
    response = client.post("/subscribe", data={"email": "tz@example.com", "timezone": zone})
    assert response.status_code == 400
    assert "Unknown timezone" in response.text
    assert len(response.text) < 20_000  # the value is not echoed in full
    assert _subscriber(engine, "tz@example.com") is None and backend.sent == []


def test_filled_trap_field_does_nothing(
    client: TestClient, backend: MemoryBackend, engine: Engine
) -> None:
    human = client.post("/subscribe", data={"email": "human@example.com"})
    bot = client.post("/subscribe", data={"email": "bot@example.com", "website": "http://x"})
    assert bot.status_code == 200 and bot.content == human.content
    assert _subscriber(engine, "bot@example.com") is None
    assert [message.to for message in backend.sent] == ["human@example.com"]


def test_failed_confirmation_mail_is_sent_on_the_next_try(
    client: TestClient, backend: MemoryBackend
) -> None:
    backend.fail_next(RetryableError("provider down"))
    first = client.post("/subscribe", data={"email": "retry@example.com"})
    assert first.status_code == 200
    assert backend.sent == []
    second = client.post("/subscribe", data={"email": "retry@example.com"})
    assert second.content == first.content
    assert [message.to for message in backend.sent] == ["retry@example.com"]


def test_bad_confirm_tokens_change_nothing(
    client: TestClient, signer: TokenSigner, engine: Engine
) -> None:
    client.post("/subscribe", data={"email": "pending@example.com"})
    subscriber = _subscriber(engine, "pending@example.com")
    assert subscriber is not None and subscriber.id is not None
    good = signer.make(subscriber.id, Purpose.CONFIRM)
    for token in (
        good[:-1],
        good[:-2] + ("A" if good[-2] != "A" else "B") + good[-1],
        signer.make(subscriber.id, Purpose.UNSUBSCRIBE),
        signer.make(subscriber.id + 1, Purpose.CONFIRM),  # no such subscriber
        "1",
    ):
        for response in (client.get(f"/confirm/{token}"), client.post(f"/confirm/{token}")):
            assert response.status_code == 400, token
            assert "This link is not valid" in response.text
    after = _subscriber(engine, "pending@example.com")
    assert after is not None and after.status == Status.PENDING


def test_confirm_after_unsubscribing_does_not_reactivate(
    client: TestClient, signer: TokenSigner, add_subscriber: Callable[..., int], engine: Engine
) -> None:
    subscriber_id = add_subscriber("left@example.com", Status.UNSUBSCRIBED)
    path = f"/confirm/{signer.make(subscriber_id, Purpose.CONFIRM)}"
    assert client.get(path).status_code == 409
    response = client.post(path)
    assert response.status_code == 409
    with session_scope(engine) as session:
        subscriber = session.get(Subscriber, subscriber_id)
        assert subscriber is not None and subscriber.status == Status.UNSUBSCRIBED
        confirms = session.exec(select(AuditEntry).where(AuditEntry.action == "confirm")).all()
        assert confirms == []


def test_the_answer_leaves_before_the_database_is_touched(
    settings: Settings,
    engine: Engine,
    add_subscriber: Callable[..., int],
    live_server: Callable[[Callable[[str], Starlette]], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Same work for a new and a known address: the sign-up is recorded after the answer, so
    its timing cannot tell them apart (bench/signup_timing.py measures the medians)."""
    add_subscriber("known@example.com")
    gate = threading.Event()
    recorded: list[str] = []
    original = routes_subscription._signup

    def held_signup(svc: WebServices, **fields: Any) -> int | None:
        assert gate.wait(10)
        recorded.append(fields["email"])
        return original(svc, **fields)

    monkeypatch.setattr(routes_subscription, "_signup", held_signup)
    backend = MemoryBackend()
    base_url = live_server(lambda _url: create_app(settings, backend=backend, engine=engine))
    answers = []
    for email in ("new@example.com", "known@example.com"):
        with httpx.Client(base_url=base_url, timeout=5) as client:
            answers.append(client.post("/subscribe", data={"email": email}))
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].content == answers[1].content
    assert recorded == []  # both answered while the database work was still held
    gate.set()
    deadline = time.monotonic() + 10
    while (len(backend.sent) < 1 or len(recorded) < 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [m.to for m in backend.sent] == ["new@example.com"]
    assert sorted(recorded) == ["known@example.com", "new@example.com"]


def test_sign_up_may_give_the_first_name_the_greeting_uses(
    client: TestClient, engine: Engine
) -> None:
    form = client.get("/subscribe")
    assert 'name="first_name"' in form.text and 'autocomplete="given-name"' in form.text
    response = client.post(
        "/subscribe",
        data={"email": "ops@example.com", "name": "Ops Team", "first_name": " Sam "},
    )
    assert response.status_code == 200
    subscriber = _subscriber(engine, "ops@example.com")
    assert subscriber is not None
    assert (subscriber.name, subscriber.first_name) == ("Ops Team", "Sam")
