"""Subject and preheader templates: fields, refusals, header safety, shortening."""

from __future__ import annotations

import pytest
from render_support import ARCHIVE, W47, RendererFactory, make_doc, make_settings

from digest.content.document import ComparisonDoc
from digest.errors import ConfigError
from digest.render.edition import EditionRenderer
from digest.render.subject import (
    FIELDS,
    MAX_SUBJECT,
    SubjectFields,
    check_template,
    clean_header_text,
    render_preheader,
    render_subject,
)


def _fields(docs: list[ComparisonDoc]) -> SubjectFields:
    return SubjectFields.of(docs, W47, "Weekly AI Tool Verdicts")


def test_default_subject_names_the_first_comparison_and_counts_the_rest(
    w47_docs: list[ComparisonDoc],
) -> None:
    settings = make_settings()
    assert render_subject(settings.subject_template, _fields(w47_docs)) == (
        "Deskpilot vs Ticketsmith, and 5 more verdicts"
    )
    assert render_subject(settings.subject_template, _fields(w47_docs[1:3])) == (
        "Claude Haiku Open Weights vs Hugging Face Inference…, and 1 more verdict"
    )
    assert render_subject(settings.subject_template, _fields(w47_docs[:1])) == (
        "Deskpilot vs Ticketsmith"
    )
    assert render_preheader(settings.preheader_template, _fields(w47_docs)) == (
        "Ship or skip: the panel's verdicts on 6 AI tool comparisons from the past week"
    )
    assert "1 AI tool comparison from" in render_preheader(
        settings.preheader_template, _fields(w47_docs[:1])
    )


def test_every_field_renders(w47_docs: list[ComparisonDoc]) -> None:
    template = " | ".join(f"{{{name}}}" for name in FIELDS)
    rendered = render_subject(template, _fields(w47_docs[:2]), limit=1000)
    assert rendered == (
        "Deskpilot vs Ticketsmith | , and 1 more verdict | 2 | 1 | 2 AI tool comparisons | "
        "Deskpilot vs Ticketsmith · Claude Haiku Open Weights vs Hugging Face Inference "
        "Providers Hub | 2026-W47 | Week 47 · 16–22 November 2026 | Weekly AI Tool Verdicts"
    )
    assert render_subject("{count:>3} verdicts", _fields(w47_docs)) == "6 verdicts"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{nope}", "unknown field {nope}"),
        ("{first.__class__}", "unknown field {first.__class__}"),
        ("{titles[0]}", "unknown field {titles[0]}"),
        ("{} and more", "unknown field {}"),
        ("{0}", "unknown field {0}"),
        ("{first", "invalid template"),
        ("first}", "invalid template"),
    ],
)
def test_unknown_or_malformed_fields_are_refused(template: str, message: str) -> None:
    with pytest.raises(ConfigError, match="DIGEST_SUBJECT_TEMPLATE") as info:
        check_template(template, "DIGEST_SUBJECT_TEMPLATE")
    assert message in str(info.value)


def test_renderer_refuses_a_bad_template_up_front(w47_docs: list[ComparisonDoc]) -> None:
    with pytest.raises(ConfigError, match=r"DIGEST_PREHEADER_TEMPLATE: unknown field \{secret\}"):
        EditionRenderer(
            make_settings(preheader_template="{secret}"), w47_docs, week=W47, archive_url=ARCHIVE
        )


def test_format_spec_that_does_not_fit_is_a_config_error(w47_docs: list[ComparisonDoc]) -> None:
    with pytest.raises(ConfigError, match="cannot format"):
        render_subject("{first:d}", _fields(w47_docs))


def test_whitespace_and_controls_collapse_to_one_line() -> None:
    assert clean_header_text(" A\r\nB\tC\x0bD\u2028E\x85F  ") == "A B C D E F"
    assert clean_header_text("A\x00B\x1bC\u202eD") == "ABCD"
    doc = make_doc(title="First\r\nBcc: x@example.com\tline")
    subject = render_subject("{first}{more}", _fields([doc]))
    assert subject == "First Bcc: x@example.com line"


def test_long_titles_are_cut_on_a_word_boundary_keeping_the_count(
    w47_docs: list[ComparisonDoc],
) -> None:
    long_title = " ".join(["Extraordinarily"] * 18)  # 287 characters
    doc = make_doc(title=long_title)
    subject = render_subject("{first}{more}", _fields([doc, *w47_docs[:3]]))
    assert len(subject) <= MAX_SUBJECT
    assert subject.endswith("Extraordinarily…, and 3 more verdicts")
    literal = render_subject("x" * 300 + " {count}", _fields(w47_docs))
    assert len(literal) <= MAX_SUBJECT and literal.endswith("…")


def test_each_variant_has_its_own_subject(
    make_renderer: RendererFactory, w47_docs: list[ComparisonDoc]
) -> None:
    renderer = make_renderer(w47_docs)
    everything = renderer.variant_for([])
    support = renderer.variant_for(["Customer Support"])
    assert everything is not None and support is not None
    assert everything.subject == "Deskpilot vs Ticketsmith, and 5 more verdicts"
    assert support.subject == "Deskpilot vs Ticketsmith"
    assert support.preheader.endswith("on 1 AI tool comparison from the past week")
