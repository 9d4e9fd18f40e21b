"""The open pixel in the email: off by default; with DIGEST_TRACK_OPENS on, exactly one hidden
1x1 image at the end of the HTML part of a tracked reader's message, signed for the link table's
``open`` entry; never in the text part, in an opted-out reader's message or in the archive;
its largest size reserved by the size budget."""

from __future__ import annotations

import re
from dataclasses import replace

from render_support import READER, RendererFactory, make_settings

from digest.content.document import ComparisonDoc
from digest.render.links import PIXEL_RESERVE, TOKEN_RESERVE, LinkKind, link_table, open_link
from subscribers.tokens import signer_from_settings

BASE = "https://verdicts.example.com"
IMAGES = re.compile(r"<img\b[^>]*>")
TRACKED = re.compile(re.escape(BASE) + r"/r/([0-9A-Za-z._-]+)")


def _pixels(html: str) -> list[str]:
    return [image for image in IMAGES.findall(html) if 'width="1"' in image]


def test_the_open_entry_is_last_in_the_link_table(w47_docs: list[ComparisonDoc]) -> None:
    table = link_table(w47_docs, BASE)
    assert table[-1].kind == LinkKind.OPEN and open_link(table) == len(table) - 1
    assert [target.kind for target in table].count(LinkKind.OPEN) == 1
    # The content links keep the numbers of a table frozen before the pixel existed.
    assert open_link(table[:-1]) is None


def test_no_pixel_by_default(make_renderer: RendererFactory, w47_docs: list[ComparisonDoc]) -> None:
    variant = make_renderer(w47_docs, edition_id=7).variant_for([])
    assert variant is not None and variant.links is not None and variant.links.pixel is None
    message = variant.message_for(READER, message_id="<d@verdicts.example.com>")
    assert _pixels(message.html) == []


def test_one_hidden_pixel_at_the_end_of_a_tracked_readers_html(
    make_renderer: RendererFactory, w47_docs: list[ComparisonDoc]
) -> None:
    settings = make_settings(track_opens=True)
    variant = make_renderer(w47_docs, edition_id=7, settings=settings).variant_for([])
    assert variant is not None
    message = variant.message_for(READER, message_id="<p@verdicts.example.com>")
    [pixel] = _pixels(message.html)
    for attribute in ('alt=""', 'width="1"', 'height="1"', "display:block", "opacity:0"):
        assert attribute in pixel
    match = TRACKED.search(pixel)
    assert match is not None
    ref = signer_from_settings(settings).read_click(match[1])
    assert ref is not None
    assert (ref.edition_id, ref.subscriber_id) == (7, 42)
    assert ref.link == open_link(link_table(w47_docs, BASE))
    # At the end of the footer: after the postal address, nothing visible follows it.
    assert message.html.index(pixel) > message.html.index(settings.postal_address)
    assert "<a " not in message.html[message.html.index(pixel) :]
    # The text part has no image and no token of the pixel's link.
    assert "<img" not in message.text
    text_refs = [
        signer_from_settings(settings).read_click(t) for t in TRACKED.findall(message.text)
    ]
    assert text_refs and all(r is not None and r.link != ref.link for r in text_refs)


def test_no_pixel_for_an_opted_out_reader_nor_in_the_archive(
    make_renderer: RendererFactory, w47_docs: list[ComparisonDoc]
) -> None:
    renderer = make_renderer(w47_docs, edition_id=7, settings=make_settings(track_opens=True))
    variant = renderer.variant_for([])
    assert variant is not None
    plain = variant.message_for(
        replace(READER, track_clicks=False), message_id="<o@verdicts.example.com>"
    )
    assert _pixels(plain.html) == [] and "/r/" not in plain.html + plain.text
    assert _pixels(renderer.archive_html()) == []
    assert "/r/" not in renderer.archive_html()


def test_opens_without_clicks_track_the_pixel_alone(
    make_renderer: RendererFactory, w47_docs: list[ComparisonDoc]
) -> None:
    settings = make_settings(track_opens=True, track_clicks=False)
    variant = make_renderer(w47_docs, edition_id=7, settings=settings).variant_for([])
    assert variant is not None
    message = variant.message_for(READER, message_id="<a@verdicts.example.com>")
    assert len(_pixels(message.html)) == 1
    assert len(TRACKED.findall(message.html)) == 1  # the pixel's URL, no content link
    assert "/r/" not in message.text
    assert 'aria-hidden="true" tabindex="-1"' not in message.html  # no honeypot either


def test_the_size_budget_reserves_the_pixel(
    make_renderer: RendererFactory, w47_docs: list[ComparisonDoc]
) -> None:
    off = make_renderer(w47_docs, edition_id=7).variant_for([])
    on = make_renderer(w47_docs, edition_id=7, settings=make_settings(track_opens=True))
    variant = on.variant_for([])
    assert off is not None and variant is not None
    assert off.fit is not None and variant.fit is not None
    # The pixel's slot is measured at its largest: a link slot's reserve plus the element.
    reserve = len(BASE) + 3 + TOKEN_RESERVE + PIXEL_RESERVE
    assert variant.fit.size - off.fit.size == reserve
    reader = replace(READER, subscriber_id=9_999_999_999)
    message = variant.message_for(reader, message_id="<b@verdicts.example.com>")
    assert len(message.html.encode()) <= variant.fit.size
