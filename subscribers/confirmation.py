"""The double opt-in email: build it, send it, remember when it was sent.

The MJML template is rendered and compiled once per process (per site settings); what differs
per recipient, the greeting and the signed confirm link, goes into named slots of the compiled
HTML, HTML-escaped. The text part is rendered from its own template with the same values.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2
from markupsafe import escape
from mjml import mjml_to_html
from sqlmodel import Session, col, select

import digest
from digest.db import utcnow
from digest.message import OutgoingMessage, sanitize_display_name
from subscribers import lifecycle
from subscribers.models import Status, Subscriber, Suppression, SuppressionReason
from subscribers.normalize import ascii_address
from subscribers.tokens import TokenSigner, confirm_url, signer_from_settings

if TYPE_CHECKING:
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
    session: Session,
    settings: Settings,
    backend: EmailBackend,
    subscriber: Subscriber,
    *,
    signer: TokenSigner | None = None,
) -> SendResult | None:
    """Send the confirmation email to a pending subscriber; None if it may not be mailed."""
    results = send_confirmations(session, settings, backend, [subscriber], signer=signer)
    return results[0] if results else None


def send_confirmations(
    session: Session,
    settings: Settings,
    backend: EmailBackend,
    subscribers: Iterable[Subscriber],
    *,
    signer: TokenSigner | None = None,
) -> list[SendResult]:
    """Send confirmation emails in the backend's batch size, one result per message sent.

    Subscribers that are not pending, or are suppressed for a reason other than an earlier
    unsubscribe, are skipped. ``confirmation_sent_at`` is set for every accepted message; an
    address the provider reports as invalid is recorded as a hard bounce. The caller commits.
    """
    signer = signer or signer_from_settings(settings)
    results: list[SendResult] = []
    batch: list[Subscriber] = []
    for subscriber in subscribers:
        batch.append(subscriber)
        if len(batch) >= backend.max_batch_size:
            results.extend(_send_batch(session, settings, backend, signer, batch))
            batch = []
    if batch:
        results.extend(_send_batch(session, settings, backend, signer, batch))
    return results


def _send_batch(
    session: Session,
    settings: Settings,
    backend: EmailBackend,
    signer: TokenSigner,
    batch: list[Subscriber],
) -> list[SendResult]:
    keys = [subscriber.email_key for subscriber in batch]
    blocked = set(
        session.exec(
            select(Suppression.email_key).where(
                col(Suppression.email_key).in_(keys),
                col(Suppression.reason) != str(SuppressionReason.UNSUBSCRIBED),
            )
        )
    )
    eligible = [s for s in batch if s.status == Status.PENDING and s.email_key not in blocked]
    if not eligible:
        return []
    messages = [confirmation_message(settings, signer, subscriber) for subscriber in eligible]
    results = backend.send_batch(messages)
    now = utcnow()
    for subscriber, result in zip(eligible, results, strict=True):
        if result.accepted:
            subscriber.confirmation_sent_at = now
            session.add(subscriber)
        elif result.hard_invalid:
            lifecycle.record_bounce(
                session,
                subscriber.email,
                hard=True,
                actor=f"backend:{backend.name}",
                detail=result.error or "rejected by the provider",
            )
    return results
