"""The plain-text part: 80-column lines, score bars, URLs in full, links at the bottom."""

from __future__ import annotations

from dataclasses import replace

from render_support import READER, SEED_SLUG, RendererFactory

from digest.content.document import ComparisonDoc
from digest.render.text import WIDTH, bar, pad, wrap


def _text(
    make_renderer: RendererFactory, docs: list[ComparisonDoc], *, tracked: bool = True
) -> str:
    variant = make_renderer(docs).variant_for([])
    assert variant is not None
    reader = replace(READER, track_clicks=tracked)
    return variant.message_for(reader, message_id="<t@verdicts.example.com>").text


def test_lines_fit_an_80_column_terminal(
    make_renderer: RendererFactory, all_docs: list[ComparisonDoc]
) -> None:
    text = _text(make_renderer, all_docs)
    long_lines = [line for line in text.splitlines() if len(line) > WIDTH]
    assert all(line.startswith("https://") and " " not in line for line in long_lines), long_lines
    assert WIDTH < 80


def test_urls_are_written_out_in_full(
    make_renderer: RendererFactory, w47_docs: list[ComparisonDoc]
) -> None:
    text = _text(make_renderer, w47_docs, tracked=False)
    lines = text.splitlines()
    for doc in w47_docs:
        assert doc.url in lines
    tracked = _text(make_renderer, w47_docs).splitlines()
    assert not any(doc.url in tracked for doc in w47_docs)
    assert sum(line.startswith("https://verdicts.example.com/r/0.42.") for line in tracked) >= len(
        w47_docs
    )
    tail = text[text.rindex("Read the full comparison") :]
    assert "Unsubscribe:\nhttps://verdicts.example.com/unsubscribe/42." in tail
    assert "Manage preferences:\nhttps://verdicts.example.com/preferences/42." in tail
    assert "View in browser:\nhttps://verdicts.example.com/editions/47" in tail
    assert "Verdicts Media, 1 Example Street, Springfield, USA" in tail


def test_scorecard_is_drawn_with_text_bars(
    make_renderer: RendererFactory, w47_docs: list[ComparisonDoc]
) -> None:
    seed = [doc for doc in w47_docs if doc.slug == SEED_SLUG]
    text = _text(make_renderer, seed)
    assert "  Builder  [###############.....]  74" in text
    assert "  Founder  [#########...........]  45" in text
    assert "  Mixed — 2 of 4 reviewers (50 % ship) · avg 60/100" in text
    assert ">> The panel's pick: Hugging Face Inference Providers Hub" in text
    # Verdict first: the pick comes before the tools, the quote after them.
    assert text.index(">> The panel's") < text.index("Builder  [") < text.index("“")
    assert all(len(line) <= 78 for line in text.splitlines() if "://" not in line)
    assert "&amp;" not in text and "&#" not in text and "<" not in text


def test_text_helpers() -> None:
    assert bar(0) == "[" + "." * 20 + "]"
    assert bar(100) == "[" + "#" * 20 + "]"
    assert bar(74) == "[###############.....]"
    assert pad("Builder", 9) == "Builder  "
    assert pad("A very long persona", 8) == "A very ."
    assert wrap("word " * 30, indent="  ").splitlines()[1].startswith("  word")
    assert wrap("https://example.com/" + "x" * 100) == "https://example.com/" + "x" * 100
    assert wrap("") == ""


def test_plain_text_keeps_ampersands_and_non_ascii(
    make_renderer: RendererFactory, all_docs: list[ComparisonDoc]
) -> None:
    docs = [doc for doc in all_docs if doc.slug in {"pixelmint-vs-cut-and-caption",
                                                    "tabsmith-vs-zurich-notes"}]  # fmt: skip
    text = _text(make_renderer, docs)
    assert "Pixelmint vs Cut & Caption" in text
    assert "Zürich Notes (Productivity, " in text
