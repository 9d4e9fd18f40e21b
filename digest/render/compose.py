"""One compiled variant + one recipient = one complete ``OutgoingMessage``.

``compose`` is the only place a digest message is assembled, for real sends and for the
editor's preview alike, so a preview is exactly what the subscriber receives. Per recipient it
makes two signed tokens, fills three slots in the HTML and the text (one string join each) and
sets the headers:

- ``From`` (``settings.sender``), ``To`` (with the subscriber's name), ``Subject``,
  ``Reply-To`` when configured, and the ``Message-ID`` the caller chose (``new_message_id``);
- ``List-Id: "Site Name" <weekly.example.com>`` (RFC 2919; a non-ASCII site name is
  RFC 2047-encoded, an ASCII one quoted);
- exactly one ``List-Unsubscribe: <https://…/unsubscribe/TOKEN>`` plus ``, <mailto:…>`` when
  ``settings.unsubscribe_mailto`` is set, and ``List-Unsubscribe-Post:
  List-Unsubscribe=One-Click`` (RFC 8058).

Everything that depends only on the settings is computed once, in ``MessageContext``.
"""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.header import Header
from typing import TYPE_CHECKING

from digest.config import Settings
from digest.content import verdicts
from digest.errors import ConfigError
from digest.message import MergeParts, OutgoingMessage, sanitize_display_name
from digest.render.subject import clean_header_text
from subscribers.tokens import Purpose, TokenSigner, preferences_url, unsubscribe_url

if TYPE_CHECKING:
    from digest.render.edition import CompiledVariant

MAX_GREETING_NAME = 80
GREETING_CACHE_SIZE = 50_000
ONE_CLICK = "List-Unsubscribe=One-Click"
_MAILTO = re.compile(r"^(?:mailto:)?([^\s<>@,\"]+@[^\s<>@,?\"]+)(\?[^\s<>\"]*)?$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who a message is for: the subscriber's id (signs the links), address, name and, when
    the subscriber gave one, the first name the greeting uses."""

    subscriber_id: int
    email: str
    name: str = ""
    first_name: str = ""
    track_clicks: bool = True  # the subscriber's choice; the site-wide switch is a setting


def new_message_id(settings_or_domain: Settings | str) -> str:
    """A fresh ``<uuid4hex@sender-domain>`` Message-ID."""
    domain = (
        settings_or_domain
        if isinstance(settings_or_domain, str)
        else settings_or_domain.sender_address.domain
    )
    return f"<{uuid.uuid4().hex}@{domain}>"


def list_id_header(site_name: str, list_id: str) -> str:
    """``"Site Name" <list.id>``: the phrase quoted, or RFC 2047-encoded when not ASCII."""
    name = clean_header_text(site_name)
    if not name:
        return f"<{list_id}>"
    if name.isascii():
        phrase = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    else:
        phrase = " ".join(Header(name, "utf-8").encode(maxlinelen=76).split())
    return f"{phrase} <{list_id}>"


def mailto_uri(value: str) -> str:
    """``settings.unsubscribe_mailto`` (an address or a mailto: URI) as a mailto: URI."""
    match = _MAILTO.match(value.strip())
    if not match:
        raise ConfigError(
            f"DIGEST_UNSUBSCRIBE_MAILTO: {value!r} is not an address or a mailto: URI"
        )
    return f"mailto:{match[1]}{match[2] or ''}"


def greeting_for(name: str, first_name: str = "") -> str:
    """``"Hi Astrid,"`` for ``"Lindqvist, Astrid"``, ``"Hi there,"`` when the name is unknown
    (the rule is ``digest.content.verdicts.greeting``; names are sanitized first)."""
    return verdicts.greeting(
        sanitize_display_name(name)[:MAX_GREETING_NAME] if name else "",
        sanitize_display_name(first_name)[:MAX_GREETING_NAME] if first_name else "",
    )


def escape_html(value: str) -> str:
    """``value`` escaped for HTML text and attributes, non-ASCII as character references."""
    escaped = html.escape(value, quote=True)
    return escaped if escaped.isascii() else escaped.encode("ascii", "xmlcharrefreplace").decode()


def _route_prefix(
    make_url: Callable[[Settings, TokenSigner, int], str],
    settings: Settings,
    signer: TokenSigner,
    purpose: Purpose,
) -> str:
    """The part of ``make_url``'s links before the token (the route stays defined by
    ``subscribers.tokens``; only the per-recipient token is appended here)."""
    url, token = make_url(settings, signer, 0), signer.make(0, purpose)
    if not url.endswith(token):  # pragma: no cover - a change in subscribers.tokens
        raise ValueError(f"cannot find the token in {url!r}")
    return url[: -len(token)]


@dataclass(frozen=True, slots=True)
class MessageContext:
    """What every message of a renderer shares: addresses, list headers, the signer, the
    link prefixes (plain and HTML-escaped) and a cache of escaped greetings."""

    settings: Settings
    signer: TokenSigner
    sender: str
    reply_to: str | None
    list_id: str
    mailto_suffix: str
    domain: str
    unsubscribe_prefix: str
    preferences_prefix: str
    unsubscribe_prefix_html: str
    preferences_prefix_html: str
    greetings: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, settings: Settings, signer: TokenSigner) -> MessageContext:
        mailto = settings.unsubscribe_mailto
        unsubscribe = _route_prefix(unsubscribe_url, settings, signer, Purpose.UNSUBSCRIBE)
        preferences = _route_prefix(preferences_url, settings, signer, Purpose.PREFERENCES)
        return cls(
            settings=settings,
            signer=signer,
            sender=settings.sender,
            reply_to=settings.reply_to or None,
            list_id=list_id_header(settings.site_name, settings.list_id),
            mailto_suffix=f", <{mailto_uri(mailto)}>" if mailto else "",
            domain=settings.sender_address.domain,
            unsubscribe_prefix=unsubscribe,
            preferences_prefix=preferences,
            unsubscribe_prefix_html=escape_html(unsubscribe),
            preferences_prefix_html=escape_html(preferences),
        )

    def greeting(self, name: str, first_name: str = "") -> tuple[str, str]:
        """``(text, html)`` greeting for ``name``; names repeat, so results are cached."""
        key = (name, first_name)
        found = self.greetings.get(key)
        if found is None:
            text = greeting_for(name, first_name)
            found = (text, escape_html(text))
            if len(self.greetings) >= GREETING_CACHE_SIZE:
                self.greetings.clear()
            self.greetings[key] = found
        return found


@dataclass(frozen=True, slots=True)
class Personalized:
    """One recipient's copy of a variant: both bodies, the slot values that filled them (in
    ``Slot`` order, HTML-escaped for the HTML part) and the unsubscribe URL."""

    html: str
    text: str
    unsubscribe_url: str
    html_values: tuple[str, ...]
    text_values: tuple[str, ...]


def personalize(variant: CompiledVariant, recipient: Recipient) -> Personalized:
    """Fill ``variant``'s slots for ``recipient``: the per-recipient hot path.

    Two HMACs, one hash call for every vote link when the email has them
    (``VoteSlots.fill``), one for every tracked link (``LinkSlots.fill``; plain URLs for a
    subscriber who turned tracking off), and two string joins. Tokens are URL-safe (letters, digits,
    ``-_.``), so they are appended to the pre-escaped link prefixes without escaping.
    """
    context = variant.context
    make, subscriber_id = context.signer.make, recipient.subscriber_id
    unsubscribe_token = make(subscriber_id, Purpose.UNSUBSCRIBE)
    preferences_token = make(subscriber_id, Purpose.PREFERENCES)
    unsubscribe = context.unsubscribe_prefix + unsubscribe_token
    greeting, greeting_html = context.greeting(recipient.name, recipient.first_name)
    html_values: tuple[str, ...] = (
        greeting_html,
        context.unsubscribe_prefix_html + unsubscribe_token,
        context.preferences_prefix_html + preferences_token,
    )
    text_values: tuple[str, ...] = (
        greeting,
        unsubscribe,
        context.preferences_prefix + preferences_token,
    )
    votes, links = variant.votes, variant.links
    if votes is not None or links is not None:
        padding = [""] * (variant.slot_count - len(html_values))
        html_list, text_list = [*html_values, *padding], [*text_values, *padding]
        if votes is not None:
            votes.fill(context.signer, subscriber_id, html_list, text_list)
        if links is not None:
            if recipient.track_clicks:
                links.fill(context.signer, subscriber_id, html_list, text_list)
            else:
                links.fill_plain(html_list, text_list)
        html_values, text_values = tuple(html_list), tuple(text_list)
    return Personalized(
        variant.html.fill(html_values),
        variant.text.fill(text_values),
        unsubscribe,
        html_values,
        text_values,
    )


def compose(
    variant: CompiledVariant,
    recipient: Recipient,
    *,
    message_id: str,
    idempotency_key: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> OutgoingMessage:
    """The complete message of ``variant`` for ``recipient``."""
    context = variant.context
    copy = personalize(variant, recipient)
    return OutgoingMessage(
        sender=context.sender,
        to=recipient.email,
        to_name=recipient.name,
        subject=variant.subject,
        html=copy.html,
        text=copy.text,
        message_id=message_id,
        reply_to=context.reply_to,
        headers={
            "List-Id": context.list_id,
            "List-Unsubscribe": f"<{copy.unsubscribe_url}>{context.mailto_suffix}",
            "List-Unsubscribe-Post": ONE_CLICK,
        },
        idempotency_key=idempotency_key,
        metadata=metadata or {},
        merge=MergeParts(
            variant.html, variant.text, copy.html_values, copy.text_values, copy.html, copy.text
        ),
    )
