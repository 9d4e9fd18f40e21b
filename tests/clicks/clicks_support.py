"""What the click tests share: W47, a subscriber maker, the tracked edition's link maker."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from digest.content.weeks import IsoWeek
from digest.db import session_scope
from subscribers import lifecycle
from subscribers.tokens import ClickRef, TokenSigner

W47 = IsoWeek.parse("2026-W47")


def add_subscriber(engine: Engine, email: str) -> int:
    with session_scope(engine) as session:
        outcome = lifecycle.signup(
            session, email, name="Ada", source="test", actor="test", confirmed=True
        )
        assert outcome.subscriber is not None and outcome.subscriber.id is not None
        return outcome.subscriber.id


@dataclass(frozen=True)
class Tracked:
    edition_id: int
    subscriber_id: int
    signer: TokenSigner

    def url(
        self, link: int, *, subscriber_id: int | None = None, edition_id: int | None = None
    ) -> str:
        ref = ClickRef(
            self.edition_id if edition_id is None else edition_id,
            self.subscriber_id if subscriber_id is None else subscriber_id,
            link,
        )
        return f"/r/{self.signer.make_click(ref)}"
