"""Content variants: category filtering, no empty digests, one compile per variant."""

from __future__ import annotations

import hashlib

import pytest
from render_support import READER, RendererFactory

from digest.content.document import ComparisonDoc
from digest.errors import NotFoundError
from digest.render.mjml import MjmlCompiler
from digest.render.variants import select, variant_key

DEV = [
    "claude-haiku-open-weights-vs-hugging-face-inference-providers-hub",
    "stackhound-vs-patchwell",
]


def test_followed_categories_select_comparisons_with_a_tool_in_them(
    make_renderer: RendererFactory, w47_docs: list[ComparisonDoc]
) -> None:
    renderer = make_renderer(w47_docs)
    variant = renderer.variant_for(["Developer Tools"])
    assert variant is not None
    assert list(variant.slugs) == DEV
    assert variant.subject == (
        "Claude Haiku Open Weights vs Hugging Face Inference…, and 1 more verdict"
    )
    html = variant.message_for(READER, message_id="<d@v.example>").html
    assert "Stackhound vs Patchwell" in html
    assert "Deskpilot vs Ticketsmith" not in html


def test_empty_follow_list_means_every_comparison(
    make_renderer: RendererFactory, w47_docs: list[ComparisonDoc]
) -> None:
    variant = make_renderer(w47_docs).variant_for([])
    assert variant is not None
    assert list(variant.slugs) == [doc.slug for doc in w47_docs]


def test_categories_match_case_insensitively_and_share_the_variant(
    make_renderer: RendererFactory, w47_docs: list[ComparisonDoc]
) -> None:
    renderer = make_renderer(w47_docs)
    first = renderer.variant_for(["Developer Tools"])
    assert renderer.variant_for(["developer  TOOLS"]) is first
    assert renderer.variant_for(["Developer Tools", "Image & Video"]) is first
    assert renderer.compiles == 1


def test_no_empty_digest(make_renderer: RendererFactory, w47_docs: list[ComparisonDoc]) -> None:
    renderer = make_renderer(w47_docs)
    assert renderer.variant_for(["Image & Video"]) is None
    assert renderer.variant_for(["No Such Category"]) is None
    assert renderer.compiles == 0


def test_each_variant_compiles_once_however_many_recipients(
    make_renderer: RendererFactory, w47_docs: list[ComparisonDoc], compiler: MjmlCompiler
) -> None:
    renderer = make_renderer(w47_docs, compiler=compiler)
    follows = [[], ["Developer Tools"], ["Productivity", "Customer Support"], ["Image & Video"]]
    sent = 0
    for n in range(400):
        variant = renderer.variant_for(follows[n % len(follows)])
        if variant is not None:
            variant.message_for(READER, message_id=f"<{n}@v.example>")
            sent += 1
    assert sent == 300
    assert renderer.compiles == 3
    assert compiler.compiles == 3
    assert len(renderer.variants) == 3


def test_a_second_renderer_reuses_the_compiled_mjml(
    make_renderer: RendererFactory, w47_docs: list[ComparisonDoc], compiler: MjmlCompiler
) -> None:
    make_renderer(w47_docs, compiler=compiler).variant_for([])
    again = make_renderer(w47_docs, compiler=compiler)
    again.variant_for([])
    assert again.compiles == 1  # the renderer built its variant...
    assert compiler.compiles == 1  # ...from the cached MJML output


def test_variant_key_is_a_stable_hash_of_the_slugs(
    make_renderer: RendererFactory, w47_docs: list[ComparisonDoc]
) -> None:
    variant = make_renderer(w47_docs).variant_for(["Developer Tools"])
    assert variant is not None
    assert variant.key == variant_key(DEV)
    assert variant.key == hashlib.sha256("\n".join(DEV).encode()).hexdigest()[:16]
    other = make_renderer(w47_docs).variant_for(["Developer Tools"])
    assert other is not None and other.key == variant.key


def test_variant_by_key_resolves_in_a_fresh_renderer(
    make_renderer: RendererFactory, w47_docs: list[ComparisonDoc]
) -> None:
    key = variant_key(DEV)
    fresh = make_renderer(w47_docs)
    variant = fresh.variant_by_key(key)
    assert list(variant.slugs) == DEV
    assert fresh.variant_by_key(key) is variant
    assert fresh.variant_for(["Developer Tools"]) is variant
    assert fresh.compiles == 1


def test_unknown_variant_key_is_refused(
    make_renderer: RendererFactory, w47_docs: list[ComparisonDoc]
) -> None:
    with pytest.raises(NotFoundError, match="no content variant"):
        make_renderer(w47_docs).variant_by_key("0000000000000000")


def test_select_keeps_edition_order(all_docs: list[ComparisonDoc]) -> None:
    chosen = select(all_docs, ["Customer Support"])
    assert [doc.slug for doc in chosen] == [
        "deskpilot-vs-ticketsmith",
        "hushline-vs-resolvo",
        "replybird-vs-cannedly",
    ]
