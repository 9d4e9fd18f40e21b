"""The double opt-in email: content, escaping, headers, compile-once, and sending."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from digest.backends.memory import MemoryBackend
from digest.backends.mime import build_mime, to_bytes
from digest.config import Settings
from subscribers import confirmation, lifecycle, suppression
from subscribers.confirmation import confirmation_message, send_confirmation, send_confirmations
from subscribers.models import Status, Subscriber
from subscribers.tokens import Purpose, TokenSigner, signer_from_settings


def _pending(session: Session, email: str = "ada@example.com", name: str = "Ada") -> Subscriber:
    outcome = lifecycle.signup(session, email, name=name)
    session.commit()
    assert outcome.subscriber is not None
    return outcome.subscriber


@pytest.fixture
def signer(settings: Settings) -> TokenSigner:
    return signer_from_settings(settings)


def test_message_content(session: Session, settings: Settings, signer: TokenSigner) -> None:
    subscriber = _pending(session)
    message = confirmation_message(settings, signer, subscriber)
    assert message.subject == "Confirm your subscription to Weekly AI Tool Verdicts"
    assert message.sender == settings.sender
    assert (message.to, message.to_name) == ("ada@example.com", "Ada")
    assert message.metadata == {"kind": "confirm", "subscriber_id": str(subscriber.id)}
    assert re.fullmatch(r"<[0-9a-f]{32}@verdicts\.example\.com>", message.message_id)

    urls = re.findall(r"https://verdicts\.example\.com/confirm/[\w.-]+", message.html)
    assert urls and len(set(urls)) == 1
    token = urls[0].rpartition("/")[2]
    assert signer.read(token, Purpose.CONFIRM) == subscriber.id
    assert urls[0] in message.text
    assert "Hi Ada," in message.html and message.text.startswith("Hi Ada,\n")
    assert "7 days" in message.text
    assert "<mj-" not in message.html and "__digest_slot_" not in message.html
    assert settings.postal_address in message.html


def test_message_ids_are_unique(session: Session, settings: Settings, signer: TokenSigner) -> None:
    subscriber = _pending(session)
    ids = {confirmation_message(settings, signer, subscriber).message_id for _ in range(20)}
    assert len(ids) == 20


def test_names_are_escaped_and_never_reach_headers(
    session: Session, settings: Settings, signer: TokenSigner
) -> None:
    subscriber = _pending(session, name="<script>alert(1)</script> & Co")
    # A name with line breaks can only come from outside the normalizing entry points.
    subscriber.name = "Eve\r\nBcc: victim@example.com"
    message = confirmation_message(settings, signer, subscriber)
    assert "\r" not in message.to_name and "\n" not in message.to_name
    raw = to_bytes(build_mime(message))
    assert b"\r\nBcc:" not in raw

    subscriber.name = "<script>alert(1)</script> & Co"
    message = confirmation_message(settings, signer, subscriber)
    assert "<script>" not in message.html
    assert "Hi &lt;script&gt;alert(1)&lt;/script&gt; &amp; Co," in message.html
    assert "Hi <script>alert(1)</script> & Co," in message.text  # plain text stays plain


def test_idn_address_is_sent_in_ascii(
    session: Session, settings: Settings, signer: TokenSigner
) -> None:
    subscriber = _pending(session, "Zoe@XN--BCHER-KVA.example", name="Zoë")
    assert subscriber.email == "Zoe@bücher.example"  # displayed in Unicode
    message = confirmation_message(settings, signer, subscriber)
    assert message.to == "Zoe@xn--bcher-kva.example"  # sent in ASCII
    assert b"Zoe@xn--bcher-kva.example" in to_bytes(build_mime(message))


def test_mjml_is_compiled_once_per_process(
    session: Session, settings: Settings, signer: TokenSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    from mjml import mjml_to_html as real

    def counting(source: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(source, *args, **kwargs)

    confirmation._compiled_html.cache_clear()
    monkeypatch.setattr(confirmation, "mjml_to_html", counting)
    subscribers = [_pending(session, f"r{i}@example.com", name=f"R{i}") for i in range(5)]
    htmls = [confirmation_message(settings, signer, s).html for s in subscribers]
    assert len(calls) == 1
    assert len(set(htmls)) == 5
    assert all(f"Hi R{i}," in html for i, html in enumerate(htmls))
    confirmation._compiled_html.cache_clear()


def test_send_records_the_time(session: Session, settings: Settings, engine: Engine) -> None:
    subscriber = _pending(session)
    backend = MemoryBackend()
    assert subscriber.id is not None
    result = send_confirmation(engine, settings, backend, subscriber.id)
    assert result is not None and result.accepted
    assert [m.to for m in backend.sent] == ["ada@example.com"]
    session.refresh(subscriber)
    assert subscriber.confirmation_sent_at is not None
    # The anti-spam window now applies to a repeated signup.
    assert not lifecycle.signup(session, "ada@example.com").should_send_confirmation


def test_only_pending_unsuppressed_subscribers_are_mailed(
    session: Session, settings: Settings, engine: Engine
) -> None:
    pending = _pending(session, "pending@example.com")
    active = _pending(session, "active@example.com")
    blocked = _pending(session, "blocked@example.com")
    assert active.id is not None
    lifecycle.confirm(session, active.id, actor="test")
    suppression.suppress(session, "blocked@example.com", actor="cli")
    session.commit()
    backend = MemoryBackend()
    ids = [s.id for s in (pending, active, blocked) if s.id is not None]
    results = send_confirmations(engine, settings, backend, ids)
    assert [m.to for m in backend.sent] == ["pending@example.com"]
    assert len(results) == 1
    assert active.id is not None
    assert send_confirmation(engine, settings, backend, active.id) is None


def test_invalid_address_reported_by_provider_becomes_a_bounce(
    session: Session, settings: Settings, engine: Engine
) -> None:
    subscriber = _pending(session)
    backend = MemoryBackend()
    backend.reject(["ada@example.com"], hard_invalid=True)
    assert subscriber.id is not None
    result = send_confirmation(engine, settings, backend, subscriber.id)
    assert result is not None and not result.accepted
    session.refresh(subscriber)
    assert subscriber.status == Status.BOUNCED
    assert subscriber.confirmation_sent_at is None
    assert suppression.is_suppressed(session, "ada@example.com")


def test_batches_follow_the_backend_limit(
    session: Session, settings: Settings, engine: Engine
) -> None:
    class SmallBatches(MemoryBackend):
        max_batch_size = 2

    subscribers = [_pending(session, f"r{i}@example.com") for i in range(5)]
    backend = SmallBatches()
    ids = [s.id for s in subscribers if s.id is not None]
    results = send_confirmations(engine, settings, backend, ids)
    assert len(results) == 5
    assert [len(batch) for batch in backend.batches] == [2, 2, 1]
