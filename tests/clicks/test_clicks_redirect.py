"""Tracked links: /r/{token} redirects to the edition's frozen target and records the hit off
the request path; no token can make it redirect anywhere else."""

from __future__ import annotations

import sqlalchemy as sa
from clicks_support import Tracked
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.testclient import TestClient

from digest.clicks import store
from digest.clicks.models import ClickHit
from digest.clicks.recorder import ClickRecorder


def hits(engine: Engine) -> list[tuple[int, int, str, str, str]]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(
                ClickHit.subscriber_id,  # type: ignore[arg-type]
                ClickHit.link,
                ClickHit.method,
                ClickHit.user_agent,
                ClickHit.network,
            ).order_by(ClickHit.id)  # type: ignore[arg-type]
        )
        return [(int(r[0]), int(r[1]), str(r[2]), str(r[3]), str(r[4])) for r in rows]


def flush(app: Starlette) -> None:
    recorder = app.state.click_recorder
    assert isinstance(recorder, ClickRecorder)
    recorder.flush()


def test_the_edition_froze_its_link_table(tracked: Tracked, engine: Engine) -> None:
    with engine.connect() as connection:
        table = store.links(connection, tracked.edition_id)
    assert table[0].kind == "honeypot" and table[0].link == 0
    # The open pixel comes last, so the content links keep their numbers.
    assert table[-1].kind == "open" and [t.kind for t in table].count("open") == 1
    kinds = {link.kind for link in table}
    assert kinds == {"honeypot", "comparison", "tool", "open"}
    assert [link.link for link in table] == list(range(len(table)))
    assert all(link.url.startswith("https://") for link in table)


def test_a_tracked_link_redirects_and_records_the_hit(
    client: TestClient, app: Starlette, tracked: Tracked, engine: Engine
) -> None:
    with engine.connect() as connection:
        target = store.target(connection, tracked.edition_id, 1)
    response = client.get(tracked.url(1), headers={"User-Agent": "Mozilla/5.0 Firefox/133.0"})
    assert response.status_code == 302
    assert target is not None and response.headers["location"] == target.url
    assert response.headers["cache-control"] == "no-store"
    head = client.head(tracked.url(2), headers={"User-Agent": "Mozilla/5.0"})
    assert head.status_code == 302
    flush(app)
    recorded = hits(engine)
    assert [(s, link, method) for s, link, method, _, _ in recorded] == [
        (tracked.subscriber_id, 1, "GET"),
        (tracked.subscriber_id, 2, "HEAD"),
    ]
    assert recorded[0][3] == "Mozilla/5.0 Firefox/133.0"
    # The test client's address is not an IP: no network is kept, and never a full address.
    assert all("/" in network or network == "" for *_, network in recorded)


def test_unusable_tokens_get_the_plain_400_page_and_record_nothing(
    client: TestClient, app: Starlette, tracked: Tracked, engine: Engine
) -> None:
    good = tracked.url(1)
    token = good.removeprefix("/r/")
    edition, subscriber, link, signature = token.split(".")
    with engine.connect() as connection:
        links = len(store.links(connection, tracked.edition_id))
    other_edition = tracked.edition_id + 1
    bad = [
        f"/r/{edition}.{subscriber}.{link}.{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}",
        f"/r/{edition}.{subscriber}.2.{signature}",  # a swapped link id
        f"/r/{edition}.{int(subscriber) + 1}.{link}.{signature}",  # another subscriber
        f"/r/{other_edition}.{subscriber}.{link}.{signature}",  # another edition, same link
        tracked.url(links),  # signed, but past the end of the edition's table
        tracked.url(1, edition_id=other_edition),  # signed, for an edition that has no table
        f"/r/{token}.x",
        "/r/1.2.3",
        "/r/https:evil.example",
        "/r/" + "9" * 30 + ".1.1.AAAAAAAAAAAA",
    ]
    for url in bad:
        for method in ("GET", "HEAD"):
            response = client.request(method, url)
            assert response.status_code == 400, url
            assert "location" not in response.headers
    assert "This link is not valid" in client.get(bad[0]).text
    flush(app)
    assert hits(engine) == []


def test_another_editions_link_id_is_refused(
    client: TestClient, tracked: Tracked, engine: Engine
) -> None:
    """A link id valid in one edition names nothing in an edition whose table is shorter."""
    from digest.clicks.models import EditionLink
    from digest.db import session_scope
    from digest.editions.models import Edition, EditionStatus

    with session_scope(engine) as session:
        edition = Edition(newsletter="other", week="2026-W48", status=EditionStatus.SENT)
        session.add(edition)
        session.flush()
        assert edition.id is not None
        session.add(
            EditionLink(edition_id=edition.id, link=0, kind="honeypot", url="https://x.example/")
        )
        other = edition.id
    assert client.get(tracked.url(0, edition_id=other)).status_code == 302
    assert client.get(tracked.url(3, edition_id=other)).status_code == 400


def test_without_tracking_old_links_still_redirect_and_nothing_is_recorded(
    click_settings, engine: Engine, tracked: Tracked
) -> None:
    from digest.backends.memory import MemoryBackend
    from digest.web.app import create_app

    app = create_app(
        click_settings.model_copy(update={"track_clicks": False}),
        backend=MemoryBackend(),
        engine=engine,
    )
    with TestClient(app, follow_redirects=False) as client:
        assert client.get(tracked.url(1)).status_code == 302
        flush(app)
    assert hits(engine) == []
