"""RFC 8058 end to end: the List-Unsubscribe URL of a sent message unsubscribes its reader."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import Engine
from starlette.testclient import TestClient

from digest.backends.outbox import OutboxBackend
from digest.config import Settings
from digest.content.importer import import_paths
from digest.content.weeks import IsoWeek
from digest.delivery.prepare import message_factories, prepare_edition
from digest.delivery.sender import DeliveryEngine
from subscribers.models import AuditEntry, Cause, Status, Subscriber


def test_one_click_post_to_the_url_in_the_sent_header(
    client: TestClient,
    engine: Engine,
    settings: Settings,
    comparisons_dir: Path,
    tmp_path: Path,
    add_subscriber: Callable[..., int],
    load: Callable[[int], Subscriber],
    audit_of: Callable[[int], list[AuditEntry]],
) -> None:
    import_paths(engine, [str(comparisons_dir)])
    ada = add_subscriber("ada@example.com")
    grace = add_subscriber("grace@example.com")
    send_settings = settings.model_copy(update={"send_rate": 1000.0})
    outcome = prepare_edition(engine, send_settings, IsoWeek.parse("2026-W47"))
    assert outcome.edition is not None
    outbox = OutboxBackend(tmp_path / "sent")
    DeliveryEngine(engine, send_settings, outbox, message_factories(engine, send_settings)).run()

    sent = {}
    for path in (tmp_path / "sent").glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        sent[str(message["To"])] = message
    message = next(m for to, m in sent.items() if "ada@example.com" in to)
    assert message.get_all("List-Unsubscribe") is not None
    assert len(message.get_all("List-Unsubscribe")) == 1
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    match = re.search(r"<(https://[^>]+)>", str(message["List-Unsubscribe"]))
    assert match, message["List-Unsubscribe"]

    # What a mailbox provider does: POST the body, no cookies, no redirects followed.
    client.cookies.clear()
    response = client.post(
        match[1],
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert "location" not in response.headers

    assert load(ada).status == Status.UNSUBSCRIBED
    assert load(grace).status == Status.ACTIVE  # the token is Ada's alone
    [entry] = [e for e in audit_of(ada) if e.action == "unsubscribe"]
    assert entry.cause == Cause.ONE_CLICK
