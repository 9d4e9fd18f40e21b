"""Vote links: GET and HEAD record nothing, the button POST records one vote that can be changed,
every unusable token gets the plain 400 page, and the public aggregate adds imported votes to
the newsletter's."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from starlette.testclient import TestClient
from votes_support import COMPARISON, SCANNER_AGENTS, Voting

from digest.votes.models import Vote, VoteEvent
from subscribers.tokens import Purpose, TokenSigner


def votes(engine: Engine) -> list[tuple[int, str, str]]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(Vote.subscriber_id, Vote.tool_slug, Vote.choice).order_by(Vote.id)  # type: ignore[arg-type]
        )
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]


def events(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(sa.select(sa.func.count()).select_from(VoteEvent)).scalar_one()
        )


def press(client: TestClient, page_html: str) -> object:
    """Submit the (first) form of a page as a browser would."""
    action = re.search(r'<form method="post" action="([^"]+)"', page_html)
    choice = re.search(r'name="choice" value="([^"]+)"', page_html)
    assert action and choice, page_html
    return client.post(action.group(1), data={"choice": choice.group(1)})


def test_get_and_head_show_the_button_and_record_nothing(
    client: TestClient, voting: Voting, engine: Engine
) -> None:
    url = voting.url("deskpilot", "ship")
    for agent in SCANNER_AGENTS:
        for method in ("GET", "HEAD"):
            response = client.request(method, url, headers={"User-Agent": agent})
            assert response.status_code == 200
            assert response.headers["cache-control"] == "no-store"
    page = client.get(url)
    assert "Record my vote: Ship Deskpilot" in page.text
    assert f'action="{url}"' in page.text
    assert votes(engine) == [] and events(engine) == 0


def test_the_button_records_a_vote_and_the_last_one_counts(
    client: TestClient, voting: Voting, engine: Engine
) -> None:
    page = client.get(voting.url("deskpilot", "ship"))
    recorded = press(client, page.text)
    assert recorded.status_code == 200  # type: ignore[attr-defined]
    assert "Thanks: you'd ship Deskpilot" in recorded.text  # type: ignore[attr-defined]
    assert votes(engine) == [(voting.subscriber_id, "deskpilot", "ship")]
    # Imported 3 up / 14 down, plus this vote: 4 of 18 ship = 22 % -> Skip.
    assert "Skip · 22 % ship" in recorded.text  # type: ignore[attr-defined]
    changed = press(client, recorded.text)  # the "Change my vote to Skip" button
    assert "Thanks: you'd skip Deskpilot" in changed.text  # type: ignore[attr-defined]
    assert votes(engine) == [(voting.subscriber_id, "deskpilot", "skip")]
    assert events(engine) == 2
    # Another tool of the same comparison is a vote of its own.
    press(client, client.get(voting.url("ticketsmith", "ship")).text)
    assert sorted(votes(engine)) == [
        (voting.subscriber_id, "deskpilot", "skip"),
        (voting.subscriber_id, "ticketsmith", "ship"),
    ]


def test_a_post_without_the_buttons_field_records_nothing(
    client: TestClient, voting: Voting, engine: Engine
) -> None:
    url = voting.url("deskpilot", "ship")
    for data in ({}, {"choice": "skip"}, {"choice": "SHIP"}):
        response = client.post(url, data=data)
        assert response.status_code == 200
        assert "Record my vote" in response.text
    assert votes(engine) == []


def _tampered(signer: TokenSigner, voting: Voting) -> list[str]:
    good = signer.make_vote(voting.ref("deskpilot", "ship"))
    body, _, signature = good.rpartition(".")
    parts = body.split(".")
    swapped_choice = ".".join([*parts[:4], "k"]) + "." + signature
    swapped_tool = ".".join([*parts[:3], "1", parts[4]]) + "." + signature
    other_subscriber = ".".join(["999", *parts[1:]]) + "." + signature
    return [
        good[:-1],
        good[:-5],
        body,
        swapped_choice,
        swapped_tool,
        other_subscriber,
        good + ".1",
        signer.make(voting.subscriber_id, Purpose.UNSUBSCRIBE),
        signer.make(voting.subscriber_id, Purpose.VOTE),
        TokenSigner("another secret key of forty characters.").make_vote(voting.ref()),
        "%C2%B2",
        "x" * 400,
    ]


def test_unusable_tokens_get_the_plain_400_page(
    client: TestClient, voting: Voting, engine: Engine
) -> None:
    for token in _tampered(voting.signer, voting):
        for method in ("GET", "POST"):
            response = client.request(method, f"/vote/{token}", data={"choice": "ship"})
            assert response.status_code == 400, (method, token)
            assert "This link is not valid" in response.text
    assert votes(engine) == []


def test_links_of_an_edition_older_than_their_lifetime_are_refused(
    client: TestClient, voting: Voting, engine: Engine
) -> None:
    from digest.editions.models import Edition

    url = voting.url()
    assert client.get(url).status_code == 200
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=121)
    with engine.begin() as connection:
        connection.execute(
            sa.update(Edition).where(Edition.id == voting.edition_id).values(created_at=old)  # type: ignore[arg-type]
        )
    # A new app: the cards of the old edition are not cached yet.
    from digest.backends.memory import MemoryBackend
    from digest.web.app import create_app

    settings = client.app.state.services.settings  # type: ignore[attr-defined]
    with TestClient(create_app(settings, backend=MemoryBackend(), engine=engine)) as fresh:
        assert fresh.get(url).status_code == 400
        assert fresh.post(url, data={"choice": "ship"}).status_code == 400
    assert votes(engine) == []


def test_links_that_name_what_their_edition_did_not_carry_are_refused(
    client: TestClient, voting: Voting, engine: Engine
) -> None:
    signer = voting.signer
    not_in_edition = voting.ref(comparison=1)
    no_such_tool = voting.ref(tool_position=2)
    other_edition = voting.ref(edition_id=voting.edition_id + 100)
    erased = voting.ref(subscriber_id=voting.subscriber_id + 100)
    for ref in (not_in_edition, no_such_tool, other_edition, erased):
        url = f"/vote/{signer.make_vote(ref)}"
        assert client.get(url).status_code == 400
        assert client.post(url, data={"choice": "ship"}).status_code == 400
    assert votes(engine) == []


def test_a_vote_stays_when_its_subscriber_unsubscribes_and_goes_when_erased(
    client: TestClient, voting: Voting, engine: Engine
) -> None:
    from digest.db import session_scope
    from subscribers import lifecycle
    from subscribers.models import Cause

    press(client, client.get(voting.url()).text)
    with session_scope(engine) as session:
        lifecycle.unsubscribe(session, voting.subscriber_id, cause=Cause.LINK, actor="test")
    assert votes(engine) == [(voting.subscriber_id, "deskpilot", "ship")]
    with session_scope(engine) as session:
        lifecycle.remove(session, "ada@example.com", actor="test")
    assert votes(engine) == [] and events(engine) == 0


def test_the_public_aggregate_adds_newsletter_votes_to_imported_ones(
    client: TestClient, voting: Voting, new_subscriber: Callable[[str], int]
) -> None:
    before = client.get(f"/api/votes/{COMPARISON}.json")
    assert before.status_code == 200
    assert before.headers["cache-control"].startswith("public, max-age=")
    deskpilot = before.json()["tools"][0]
    assert (deskpilot["ship"], deskpilot["skip"], deskpilot["votes"]) == (3, 14, 17)
    assert before.json()["tools"][1]["label"] is None  # Ticketsmith: no votes at all
    for number in range(3):
        other = new_subscriber(f"reader{number}@example.com")
        press(client, client.get(voting.url("ticketsmith", "ship", subscriber_id=other)).text)
    press(client, client.get(voting.url("ticketsmith", "skip")).text)
    after = client.get(f"/api/votes/{COMPARISON}.json").json()
    ticketsmith = after["tools"][1]
    assert ticketsmith["newsletter"] == {"ship": 3, "skip": 1}
    assert (ticketsmith["share"], ticketsmith["label"], ticketsmith["votes"]) == (75, "Ship", 4)
    assert after["updated_at"] is not None
    etag = client.get(f"/api/votes/{COMPARISON}.json").headers["etag"]
    assert (
        client.get(f"/api/votes/{COMPARISON}.json", headers={"If-None-Match": etag}).status_code
        == 304
    )
    assert client.get("/api/votes/no-such-thing.json").status_code == 404
    assert client.get("/api/votes/..%2Fetc.json").status_code == 404


def test_vote_posts_are_rate_limited_per_client(
    settings: object, engine: Engine, voting: Voting
) -> None:
    from digest.backends.memory import MemoryBackend
    from digest.web.app import create_app

    limited = settings.model_copy(update={"vote_rate_per_minute": 3})  # type: ignore[attr-defined]
    with TestClient(create_app(limited, backend=MemoryBackend(), engine=engine)) as client:
        url = voting.url()
        codes = [client.post(url, data={"choice": "ship"}).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]


def test_votes_off_site_wide_refuses_links(
    settings: object, engine: Engine, voting: Voting
) -> None:
    from digest.backends.memory import MemoryBackend
    from digest.web.app import create_app

    off = settings.model_copy(update={"votes": False})  # type: ignore[attr-defined]
    with TestClient(create_app(off, backend=MemoryBackend(), engine=engine)) as client:
        assert client.get(voting.url()).status_code == 400
        assert client.post(voting.url(), data={"choice": "ship"}).status_code == 400
    assert votes(engine) == []


def test_network_prefixes_never_keep_the_address() -> None:
    from digest.network import network_prefix

    assert network_prefix("203.0.113.77") == "203.0.113.0/24"
    assert network_prefix("2001:db8:1234:5678::1") == "2001:db8:1234::/48"
    assert network_prefix("::ffff:198.51.100.9") == "198.51.100.0/24"
    assert network_prefix("testclient") == "" and network_prefix(None) == ""


def test_fifty_concurrent_presses_of_one_button_leave_one_vote(
    live_server: Callable[[Callable[[str], object]], str],
    settings: object,
    engine: Engine,
    voting: Voting,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from digest.backends.memory import MemoryBackend
    from digest.web.app import create_app

    roomy = settings.model_copy(update={"vote_rate_per_minute": 1000})  # type: ignore[attr-defined]
    base = live_server(lambda _url: create_app(roomy, backend=MemoryBackend(), engine=engine))
    url = base + voting.url("deskpilot", "skip")
    with httpx.Client(timeout=60) as http, ThreadPoolExecutor(max_workers=16) as pool:
        codes = list(
            pool.map(lambda _: http.post(url, data={"choice": "skip"}).status_code, range(50))
        )
    assert codes == [200] * 50
    assert votes(engine) == [(voting.subscriber_id, "deskpilot", "skip")]
    assert events(engine) == 50


def test_a_subscriber_can_turn_vote_buttons_off_in_preferences(
    client: TestClient, voting: Voting, engine: Engine
) -> None:
    from digest.db import session_scope
    from subscribers.models import Subscriber

    token = voting.signer.make(voting.subscriber_id, Purpose.PREFERENCES)
    page = client.get(f"/preferences/{token}").text
    assert 'name="vote_links" value="1" checked' in page
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None
    saved = client.post(f"/preferences/{token}", data={"csrf": csrf.group(1), "action": "save"})
    assert saved.status_code == 303
    with session_scope(engine) as session:
        subscriber = session.get(Subscriber, voting.subscriber_id)
        assert subscriber is not None and subscriber.vote_links is False
    assert 'name="vote_links" value="1" checked' not in client.get(f"/preferences/{token}").text
