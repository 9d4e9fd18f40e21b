"""A send carries tracked links to every subscriber except one who turned them off, whose
message has the plain links; every tracked link's target is in the edition's link table."""

from __future__ import annotations

import re

import sqlalchemy as sa
from delivery_support import W47, EngineFactory, add_subscribers
from sqlalchemy.engine import Engine

from digest.backends.memory import MemoryBackend
from digest.clicks import store
from digest.config import Settings
from digest.delivery.prepare import prepare_edition
from digest.delivery.sender import RunOutcome
from subscribers.models import Subscriber
from subscribers.tokens import signer_from_settings

TRACKED = re.compile(r"/r/([0-9A-Za-z._-]+)")


def test_tracked_links_follow_each_subscribers_choice(
    loaded: Engine, send_settings: Settings, make_sender: EngineFactory, backend: MemoryBackend
) -> None:
    add_subscribers(loaded, 3)
    with loaded.begin() as connection:
        opted_out, address = connection.execute(
            sa.select(Subscriber.id, Subscriber.email).order_by(Subscriber.id).limit(1)  # type: ignore[arg-type]
        ).one()
        connection.execute(
            sa.update(Subscriber).where(Subscriber.id == opted_out).values(track_clicks=False)  # type: ignore[arg-type]
        )
    outcome = prepare_edition(loaded, send_settings, W47)
    assert outcome.edition is not None and outcome.edition.id is not None
    assert make_sender().run([outcome.edition.id]).outcome is RunOutcome.DONE
    signer = signer_from_settings(send_settings)
    with loaded.connect() as connection:
        table = {link.link: link.url for link in store.links(connection, outcome.edition.id)}
    assert len(backend.sent) == 3
    plain = next(m for m in backend.sent if m.to == address)
    for message in backend.sent:
        if message is plain:
            continue
        refs = [signer.read_click(token) for token in TRACKED.findall(message.html)]
        assert refs and all(ref is not None and ref.link in table for ref in refs)
        assert {ref.edition_id for ref in refs if ref} == {outcome.edition.id}
        assert len({ref.subscriber_id for ref in refs if ref}) == 1
        assert opted_out not in {ref.subscriber_id for ref in refs if ref}
    assert "/r/" not in plain.html and "/r/" not in plain.text
    assert any(url in plain.text for url in table.values())
