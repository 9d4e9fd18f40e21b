"""The size budget: however many comparisons, the HTML stays under Gmail's clipping size,
the comparisons past the budget become one-line entries, and the subject stays short."""

from __future__ import annotations

import pytest
from render_support import READER, RendererFactory, make_settings, visible_text

from digest.backends.mime import build_mime, to_bytes
from digest.content.document import ComparisonDoc
from digest.render.budget import KIB, Fit, fit
from digest.render.lint import lint_message
from digest.render.subject import MAX_SUBJECT

KB = 1000  # the goals are in kB, as mail clients and Gmail's notice count them


def pool(docs: list[ComparisonDoc], count: int) -> list[ComparisonDoc]:
    """``count`` comparisons: the fixtures, then copies under new slugs and titles."""
    out = list(docs)
    n = 0
    while len(out) < count:
        source = docs[n % len(docs)]
        out.append(
            source.model_copy(update={"slug": f"{source.slug}-{n}", "title": f"{source.title} {n}"})
        )
        n += 1
    return out[:count]


def test_six_comparisons_are_full_cards_well_under_the_goal(
    make_renderer: RendererFactory, w47_docs: list[ComparisonDoc]
) -> None:
    variant = make_renderer(w47_docs).variant_for([])
    message = variant.message_for(READER, message_id="<b6@verdicts.example.com>")
    assert variant.fit is not None and variant.fit.folded == 0
    assert len(message.html.encode()) <= 45 * KB
    assert len(to_bytes(build_mime(message))) <= 70 * KB
    assert "more verdicts this week" not in visible_text(message.html)
    assert variant.size_report().endswith("all 6 comparisons as full cards")


@pytest.mark.parametrize("count", [12, 20, 60])
def test_many_comparisons_fold_and_never_clip(
    make_renderer: RendererFactory, all_docs: list[ComparisonDoc], count: int
) -> None:
    docs = pool(all_docs, count)
    variant = make_renderer(docs).variant_for([])
    message = variant.message_for(READER, message_id="<b@verdicts.example.com>")
    size = len(message.html.encode())
    assert size <= 95 * KB, size
    assert size <= make_settings().email_size_budget_kb * KIB
    assert lint_message(message) == []
    fitted = variant.fit
    assert fitted is not None and fitted.total == count
    text = visible_text(message.html)
    if fitted.folded:
        assert f"And {fitted.folded} more verdicts this week" in text
        # The last comparison is still there: a line of its own, or counted with the link.
        if fitted.listed:
            assert docs[-1].title in text and docs[-1].title in message.text
        assert "folded into one-line entries" in variant.size_report()
    # Every card that is there is whole, and the footer is never cut off.
    assert text.count("Read the full comparison") == fitted.full
    assert "Unsubscribe" in text and text.rstrip().endswith("USA")


def test_a_smaller_budget_folds_sooner(
    make_renderer: RendererFactory, w47_docs: list[ComparisonDoc]
) -> None:
    settings = make_settings(email_size_budget_kb=30)
    variant = make_renderer(w47_docs, settings=settings).variant_for([])
    assert variant.fit is not None and 0 < variant.fit.full < 6
    assert variant.fit.size <= 30 * KIB
    text = visible_text(variant.message_for(READER, message_id="<s@v.example>").html)
    assert f"And {6 - variant.fit.full} more verdicts this week" in text


def test_fit_searches_full_cards_then_lines() -> None:
    def measure(full: int, listed: int) -> int:
        return 10_000 + 5_000 * full + 300 * listed

    assert fit(6, 50_000, measure) == Fit(6, 0, 6, 40_000, 50_000)
    assert fit(20, 50_000, measure).full == 7  # 10,000 + 35,000 + 13 x 300 = 48,900
    lines_only = fit(500, 50_000, measure)
    assert (lines_only.full, lines_only.listed) == (0, 133)
    nothing = fit(5, 5_000, measure)
    assert (nothing.full, nothing.listed) == (0, 0)


def test_long_titles_keep_every_subject_within_the_limit(
    make_renderer: RendererFactory, all_docs: list[ComparisonDoc]
) -> None:
    long = all_docs[0].model_copy(
        update={
            "title": "Supercalifragilistic Enterprise Knowledge Retrieval Platform vs "
            "Another Extremely Long Named Assistant For Teams",
            "slug": "long-title",
        }
    )
    for docs in ([long], [long, *all_docs[1:3]], pool(all_docs, 20)):
        variant = make_renderer(docs).variant_for([])
        assert len(variant.subject) <= MAX_SUBJECT, variant.subject
        message = variant.message_for(READER, message_id="<l@verdicts.example.com>")
        assert not [w for w in lint_message(message) if w.code == "subject-length"]
    subject = make_renderer([long, *all_docs[1:3]]).variant_for([]).subject
    assert subject.endswith("…, and 2 more verdicts")
    assert subject.split("…")[0] in long.title  # cut at a word boundary
    assert long.title.startswith(subject.split("…")[0] + " ")
