"""A subscriber can turn tracked links off in preferences; their next message then carries the
plain links (the ledger's claimed row and the composed message follow the choice)."""

from __future__ import annotations

import re

from clicks_support import Tracked
from sqlalchemy.engine import Engine
from starlette.testclient import TestClient

from digest.db import session_scope
from subscribers.models import Subscriber
from subscribers.tokens import Purpose


def test_a_subscriber_can_turn_tracked_links_off(
    client: TestClient, tracked: Tracked, engine: Engine
) -> None:
    token = tracked.signer.make(tracked.subscriber_id, Purpose.PREFERENCES)
    page = client.get(f"/preferences/{token}").text
    assert 'name="track_clicks" value="1" checked' in page
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None
    # Keep the vote buttons, drop the tracking.
    saved = client.post(
        f"/preferences/{token}",
        data={"csrf": csrf.group(1), "action": "save", "vote_links": "1"},
    )
    assert saved.status_code == 303
    with session_scope(engine) as session:
        subscriber = session.get(Subscriber, tracked.subscriber_id)
        assert subscriber is not None
        assert subscriber.track_clicks is False and subscriber.vote_links is True
    assert 'name="track_clicks" value="1" checked' not in client.get(f"/preferences/{token}").text
