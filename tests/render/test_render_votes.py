"""Vote links and readers' figures in the email: two signed links per tool in both parts, none
for a subscriber who turned them off or when votes are off site-wide, none in the archive; the
community figure of voted tools on their cards and in the recap of the previous edition."""

from __future__ import annotations

import re

import pytest
from render_support import ARCHIVE, READER, RendererFactory, make_settings, visible_text

from digest.content.document import ComparisonDoc
from digest.content.verdicts import CommunityVotes
from digest.render.archive import archive_html
from subscribers.tokens import signer_from_settings

VOTE_LINK = re.compile(r"https://verdicts\.example\.com/vote/([A-Za-z0-9._-]+)")


def _links(text: str) -> list[str]:
    return VOTE_LINK.findall(text)


def test_every_tool_has_a_ship_and_a_skip_link_in_both_parts(
    make_renderer: RendererFactory, w47_docs: list[ComparisonDoc]
) -> None:
    renderer = make_renderer(w47_docs, edition_id=7)
    message = renderer.variant_for([]).message_for(READER, message_id="<v@verdicts.example.com>")  # type: ignore[union-attr]
    html_tokens, text_tokens = _links(message.html), _links(message.text)
    tools = sum(len(doc.tools) for doc in w47_docs)
    assert len(html_tokens) == len(text_tokens) == 2 * tools
    assert html_tokens == text_tokens
    assert visible_text(message.html).count("Would you ship it? Ship · Skip") == tools
    signer = signer_from_settings(renderer.settings)
    refs = [signer.read_vote(token) for token in html_tokens]
    assert all(ref is not None for ref in refs)
    seen = {(r.subscriber_id, r.edition_id, r.comparison, r.tool, r.choice) for r in refs if r}
    expected = {
        (READER.subscriber_id, 7, position, tool, choice)
        for position, doc in enumerate(w47_docs)
        for tool in range(len(doc.tools))
        for choice in ("ship", "skip")
    }
    assert seen == expected


def test_positions_are_the_editions_even_in_a_narrower_variant(
    make_renderer: RendererFactory, w47_docs: list[ComparisonDoc]
) -> None:
    renderer = make_renderer(w47_docs, edition_id=7)
    category = w47_docs[-1].tools[0].category
    variant = renderer.variant_for([category])
    assert variant is not None and len(variant.comparisons) < len(w47_docs)
    message = variant.message_for(READER, message_id="<n@verdicts.example.com>")
    signer = signer_from_settings(renderer.settings)
    positions = {ref.comparison for t in _links(message.html) if (ref := signer.read_vote(t))}
    slugs = [doc.slug for doc in w47_docs]
    assert positions == {slugs.index(doc.slug) for doc in variant.comparisons}


def test_no_vote_links_for_an_opted_out_reader_off_site_wide_or_in_the_archive(
    make_renderer: RendererFactory, w47_docs: list[ComparisonDoc]
) -> None:
    renderer = make_renderer(w47_docs, edition_id=7)
    variant = renderer.variant_for([], votes=False)  # the subscriber turned them off
    assert variant is not None
    message = variant.message_for(READER, message_id="<o@verdicts.example.com>")
    assert _links(message.html) == [] and _links(message.text) == []
    assert "Would you ship it?" not in message.html + message.text
    assert "/unsubscribe/" in message.html  # the other slots are still filled
    assert _links(renderer.archive_html()) == []
    with_links = renderer.variant_for([])
    assert with_links is not None
    with pytest.raises(ValueError, match="without vote links"):
        archive_html(with_links, renderer.settings)

    off = make_settings(votes=False)
    plain = make_renderer(w47_docs, settings=off).variant_for([])
    assert plain is not None and plain.votes is None
    copy = plain.message_for(READER, message_id="<p@verdicts.example.com>")
    assert "Would you ship it?" not in copy.html + copy.text


def test_voted_tools_show_the_readers_figure_and_the_recap_lists_last_edition(
    make_renderer: RendererFactory, w47_docs: list[ComparisonDoc]
) -> None:
    first, earlier = w47_docs[0], w47_docs[1]
    community = {
        (first.slug, first.tools[0].slug): CommunityVotes(6, 15),
        (earlier.slug, earlier.tools[1].slug): CommunityVotes(3, 1),
    }
    renderer = make_renderer(w47_docs[:1], edition_id=8, community=community, recap=[earlier])
    message = renderer.variant_for([]).message_for(READER, message_id="<r@verdicts.example.com>")  # type: ignore[union-attr]
    text = visible_text(message.html)
    assert "Readers: Mixed — 29 % ship of 21 votes" in text
    assert text.count("Readers:") == 1  # only the tool readers voted on
    assert "What readers said last time" in text
    assert f"{earlier.tools[1].name}: Ship — 75 % ship of 4 votes" in text
    assert earlier.tools[0].name + ":" not in text.split("What readers said last time")[1]
    assert "What readers said last time" in message.text
    assert f"{earlier.tools[1].name}: Ship — 75 % ship of 4 votes" in message.text
    assert ARCHIVE in message.html
