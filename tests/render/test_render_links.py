"""Tracked links in the email: content links go through /r/{token}, each token names its link
of the edition's table; unsubscribe, preferences and vote links never do; a subscriber who
turned tracking off and the archive copy get the plain URLs; the honeypot is hidden."""

from __future__ import annotations

import re
from dataclasses import replace

from render_support import READER, RendererFactory, make_settings

from digest.content.document import ComparisonDoc
from digest.render.links import HONEYPOT, PIXEL_TAIL, LinkKind, link_table
from subscribers.tokens import TokenSigner, signer_from_settings

TRACKED = re.compile(r"https://verdicts\.example\.com/r/([0-9A-Za-z._-]+)")


def test_every_content_link_is_tracked_and_names_its_target(
    make_renderer: RendererFactory, w47_docs: list[ComparisonDoc]
) -> None:
    renderer = make_renderer(w47_docs, edition_id=7)
    variant = renderer.variant_for([])
    assert variant is not None
    message = variant.message_for(READER, message_id="<l@verdicts.example.com>")
    signer: TokenSigner = signer_from_settings(make_settings())
    table = link_table(w47_docs, "https://verdicts.example.com")
    refs = [signer.read_click(token) for token in TRACKED.findall(message.html)]
    assert refs and all(ref is not None for ref in refs)
    named = {ref.link for ref in refs if ref is not None}
    assert {ref.edition_id for ref in refs if ref} == {7}
    assert {ref.subscriber_id for ref in refs if ref} == {42}
    # Every link of the table is in the email (all six comparisons are full cards), but the
    # open pixel's: open tracking is off by default.
    assert named == {target.link for target in table if target.kind != LinkKind.OPEN}
    assert PIXEL_TAIL not in message.html
    for target in table:
        if target.kind not in (LinkKind.HONEYPOT, LinkKind.OPEN):
            assert target.url.replace("&", "&amp;") not in message.html
    # Unsubscribe, preferences and vote links stay direct.
    assert "https://verdicts.example.com/unsubscribe/42." in message.html
    assert "https://verdicts.example.com/preferences/42." in message.html
    assert "https://verdicts.example.com/vote/42." in message.html
    # The text part tracks its links (the comparisons'), and has no honeypot.
    text_refs = [signer.read_click(token) for token in TRACKED.findall(message.text)]
    comparisons = {t.link for t in table if t.kind == LinkKind.COMPARISON}
    assert {ref.link for ref in text_refs if ref is not None} == comparisons


def test_the_honeypot_is_invisible_to_people_and_screen_readers(
    make_renderer: RendererFactory, w47_docs: list[ComparisonDoc]
) -> None:
    variant = make_renderer(w47_docs, edition_id=7).variant_for([])
    assert variant is not None
    html = variant.message_for(READER, message_id="<h@verdicts.example.com>").html
    signer = signer_from_settings(make_settings())
    anchors = re.findall(r"<a [^>]*>[^<]*</a>", html)
    honeypots = [
        a
        for a in anchors
        if (m := TRACKED.search(a)) and (ref := signer.read_click(m[1])) and ref.link == HONEYPOT
    ]
    assert len(honeypots) == 1
    pot = honeypots[0]
    assert 'aria-hidden="true"' in pot and 'tabindex="-1"' in pot and "display:none" in pot
    assert pot.endswith("></a>")  # no text to read out


def test_opted_out_readers_and_the_archive_get_plain_links(
    make_renderer: RendererFactory, w47_docs: list[ComparisonDoc]
) -> None:
    renderer = make_renderer(w47_docs, edition_id=7)
    variant = renderer.variant_for([])
    assert variant is not None
    plain = variant.message_for(
        replace(READER, track_clicks=False), message_id="<p@verdicts.example.com>"
    )
    assert "/r/" not in plain.html and "/r/" not in plain.text
    for doc in w47_docs:
        assert doc.url in plain.text.splitlines()
    archive = renderer.archive_html()
    assert "/r/" not in archive
    assert all(doc.url in archive for doc in w47_docs if "&" not in doc.url)


def test_tracking_off_site_wide_leaves_no_link_slots(
    make_renderer: RendererFactory, w47_docs: list[ComparisonDoc]
) -> None:
    renderer = make_renderer(w47_docs, settings=make_settings(track_clicks=False))
    variant = renderer.variant_for([])
    assert variant is not None and variant.links is None
    message = variant.message_for(READER, message_id="<o@verdicts.example.com>")
    assert "/r/" not in message.html and 'aria-hidden="true" tabindex' not in message.html


def test_tracked_w47_stays_within_the_size_goal(
    make_renderer: RendererFactory, w47_docs: list[ComparisonDoc]
) -> None:
    variant = make_renderer(w47_docs, edition_id=12345).variant_for([])
    assert variant is not None
    reader = replace(READER, subscriber_id=9_999_999)
    tracked = variant.message_for(reader, message_id="<s@verdicts.example.com>")
    plain = variant.message_for(
        replace(reader, track_clicks=False), message_id="<s@verdicts.example.com>"
    )
    assert len(tracked.html.encode()) <= 45 * 1000
    assert variant.size_report().endswith("all 6 comparisons as full cards")
    print(f"W47 HTML: {len(tracked.html.encode())} B tracked, {len(plain.html.encode())} B plain")
