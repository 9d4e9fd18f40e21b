"""The web archive copy of an edition ("View in browser"): the email without personal parts.

The archive is the "all categories" variant with its slots filled by neutral values: a
generic greeting, and the unsubscribe and preferences links pointing at the generic
preferences page (``{base_url}/preferences``), where a reader asks for a link by email.
Nothing in it identifies or acts for a subscriber, so it is safe to publish: it is compiled
without vote links (they are per subscriber), its content links are plain (never tracked), and
it shows the community figures readers made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from digest.config import Settings
from digest.render.compose import escape_html

if TYPE_CHECKING:
    from digest.render.edition import CompiledVariant

ARCHIVE_GREETING = "Hello,"


def archive_url(settings: Settings, edition_ref: int | str) -> str:
    """Where an edition is published: ``{base_url}/editions/{edition_ref}``."""
    return f"{settings.base_url}/editions/{edition_ref}"


def generic_preferences_url(settings: Settings) -> str:
    return f"{settings.base_url}/preferences"


def archive_html(variant: CompiledVariant, settings: Settings) -> str:
    """``variant``'s HTML with neutral values in every slot."""
    _check_neutral(variant)
    page = escape_html(generic_preferences_url(settings))
    return variant.html.fill(
        _with_links(variant, [escape_html(ARCHIVE_GREETING), page, page], True)
    )


def archive_text(variant: CompiledVariant, settings: Settings) -> str:
    """The plain-text counterpart of ``archive_html``."""
    _check_neutral(variant)
    page = generic_preferences_url(settings)
    return variant.text.fill(_with_links(variant, [ARCHIVE_GREETING, page, page], False))


def _with_links(variant: CompiledVariant, values: list[str], html: bool) -> list[str]:
    """``values`` and the plain URL (escaped for the HTML part when ``html``) in every link
    slot."""
    links = variant.links
    if links is None:
        return values
    padded = values + [""] * (links.slot_count - len(values))
    scratch = list(padded)
    if html:
        links.fill_plain(padded, scratch)
    else:
        links.fill_plain(scratch, padded)
    return padded


def _check_neutral(variant: CompiledVariant) -> None:
    if variant.votes is not None:
        raise ValueError("the archive copy is the variant without vote links")
