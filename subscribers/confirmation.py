"""The double opt-in email: build it, send it, remember when it was sent.

The MJML template is rendered and compiled once per process (per site settings); what differs
per recipient, the greeting and the signed confirm link, goes into named slots of the compiled
HTML, HTML-escaped. The text part is rendered from its own template with the same values.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2
from markupsafe import escape
from mjml import mjml_to_html

import digest
from digest.backends.errors import PermanentError, RetryableError
from digest.db import immediate_session
from digest.message import OutgoingMessage, sanitize_display_name
from subscribers import lifecycle
from subscribers.models import Subscriber
from subscribers.normalize import ascii_address
from subscribers.tokens import TokenSigner, confirm_url, signer_from_settings

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from digest.backends.base import EmailBackend, SendResult
    from digest.config import Settings

HTML_TEMPLATE = "confirm.mjml.j2"
TEXT_TEMPLATE = "confirm.txt.j2"
_SLOTS = ("greeting", "confirm_url")
_SLOT_MARK = re.compile(r"__digest_slot_([a-z_]+?)__")


def templates_dir() -> Path:
    """``templates/email`` of the source tree, or its copy bundled in the installed package."""
    bundled = Path(digest.__file__).parent / "_templates" / "email"
    if bundled.is_dir():
        return bundled
    return Path(__file__).resolve().parent.parent / "templates" / "email"


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir()),
        autoescape=jinja2.select_autoescape(enabled_extensions=("mjml.j2", "html.j2")),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


@lru_cache(maxsize=8)
def _compiled_html(site_name: str, postal_address: str, max_age_days: int) -> tuple[str, ...]:
    """The compiled HTML split at its slots: literal, slot name, literal, slot name, ..."""
    source = (
        _environment()
        .get_template(HTML_TEMPLATE)
        .render(
            site_name=site_name,
            postal_address=postal_address,
            max_age_days=max_age_days,
            **{slot: f"__digest_slot_{slot}__" for slot in _SLOTS},
        )
    )
    result = mjml_to_html(source)
    if result.errors:
        raise RuntimeError(f"{HTML_TEMPLATE} does not compile: {result.errors}")
    parts = tuple(_SLOT_MARK.split(result.html))
    missing = set(_SLOTS) - set(parts[1::2])
    if missing:
        raise RuntimeError(f"{HTML_TEMPLATE} lost its slots in compilation: {sorted(missing)}")
    return parts


def _fill(parts: Sequence[str], values: dict[str, str]) -> str:
    return "".join(
        part if index % 2 == 0 else str(escape(values[part])) for index, part in enumerate(parts)
    )


def _greeting(name: str) -> str:
    clean = sanitize_display_name(name)
    return f"Hi {clean}," if clean else "Hi,"


def confirmation_message(
    settings: Settings, signer: TokenSigner, subscriber: Subscriber
) -> OutgoingMessage:
    """The confirmation email for one pending subscriber."""
    assert subscriber.id is not None, "flush the subscriber before mailing it"
    values = {
        "greeting": _greeting(subscriber.name),
        "confirm_url": confirm_url(settings, signer, subscriber.id),
    }
    html = _fill(
        _compiled_html(settings.site_name, settings.postal_address, signer.confirm_max_age_days),
        values,
    )
    text = (
        _environment()
        .get_template(TEXT_TEMPLATE)
        .render(
            site_name=settings.site_name,
            postal_address=settings.postal_address,
            max_age_days=signer.confirm_max_age_days,
            **values,
        )
    )
    return OutgoingMessage(
        sender=settings.sender,
        to=ascii_address(subscriber.email),
        to_name=subscriber.name,
        subject=f"Confirm your subscription to {settings.site_name}",
        html=html,
        text=text,
        message_id=f"<{uuid.uuid4().hex}@{settings.sender_address.domain}>",
        reply_to=settings.reply_to,
        metadata={"kind": "confirm", "subscriber_id": str(subscriber.id)},
    )


def send_confirmation(
    engine: Engine,
    settings: Settings,
    backend: EmailBackend,
    subscriber_id: int,
    *,
    signer: TokenSigner | None = None,
) -> SendResult | None:
    """Send the confirmation email to a pending subscriber; None if it is not sent (not
    pending, suppressed, or one was sent less than ten minutes ago)."""
    results = send_confirmations(engine, settings, backend, [subscriber_id], signer=signer)
    return results[0] if results else None


def send_confirmations(
    engine: Engine,
    settings: Settings,
    backend: EmailBackend,
    subscriber_ids: Sequence[int],
    *,
    signer: TokenSigner | None = None,
) -> list[SendResult]:
    """Send confirmation emails in the backend's batch size, one result per message sent.

    Each message is recorded before it is sent: one transaction (``BEGIN IMMEDIATE`` on
    SQLite, so it waits for the write lock instead of failing) sets ``confirmation_sent_at``
    with one conditional UPDATE on the rows still pending, not suppressed (except by an earlier
    unsubscribe) and not sent to in the last ten minutes, and only the rows it updated are
    mailed. Concurrent sign-ups of one address therefore send one email, and a crash after the
    record sends none (a sign-up after ten minutes sends a new one). A message the provider
    did not accept gives its record back, so the next sign-up retries at once; an address the
    provider reports as invalid is recorded as a hard bounce.
    """
    signer = signer or signer_from_settings(settings)
    results: list[SendResult] = []
    size = max(1, backend.max_batch_size)
    for start in range(0, len(subscriber_ids), size):
        results.extend(
            _send_batch(engine, settings, backend, signer, subscriber_ids[start : start + size])
        )
    return results


def _send_batch(
    engine: Engine,
    settings: Settings,
    backend: EmailBackend,
    signer: TokenSigner,
    ids: Sequence[int],
) -> list[SendResult]:
    with immediate_session(engine) as session:
        eligible = lifecycle.reserve_confirmations(session, ids)
    if not eligible:
        return []
    messages = [confirmation_message(settings, signer, subscriber) for subscriber in eligible]
    try:
        results = backend.send_batch(messages)
    except (RetryableError, PermanentError) as exc:
        # Nothing past the partial results was handed over: those records go back. After an
        # AmbiguousError (or a crash) they stay: the email may be out, and a second one
        # would be the double send this order exists to prevent.
        done = {result.message_id for result in exc.partial_results if result.accepted}
        _release(
            engine,
            backend,
            [s for s, m in zip(eligible, messages, strict=True) if m.message_id not in done],
            [],
        )
        raise
    failed = [(s, r) for s, r in zip(eligible, results, strict=True) if not r.accepted]
    if failed:
        _release(engine, backend, [s for s, _r in failed], [r for _s, r in failed])
    return results


def _release(
    engine: Engine,
    backend: EmailBackend,
    subscribers: Sequence[Subscriber],
    results: Sequence[SendResult],
) -> None:
    """Give back the records of emails not sent; record hard bounces among ``results``."""
    with immediate_session(engine) as session:
        for index, subscriber in enumerate(subscribers):
            assert subscriber.id is not None and subscriber.confirmation_sent_at is not None
            lifecycle.release_confirmation(session, subscriber.id, subscriber.confirmation_sent_at)
            result = results[index] if index < len(results) else None
            if result is not None and result.hard_invalid:
                lifecycle.record_bounce(
                    session,
                    subscriber.email,
                    hard=True,
                    actor=f"backend:{backend.name}",
                    detail=result.error or "rejected by the provider",
                )
