"""The W47 edition from the database: seed values, Gmail's size limit, official MJML validity."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from npm_tools import npm_package
from render_support import (
    ARCHIVE,
    READER,
    SEED_SLUG,
    W47,
    RendererFactory,
    visible_text,
)
from sqlalchemy.engine import Engine
from sqlmodel import Session

from digest.config import Settings
from digest.content.document import ComparisonDoc
from digest.content.importer import import_paths
from digest.editions.selection import comparisons_for_week
from digest.render.edition import CompiledVariant, EditionRenderer
from digest.render.lint import GMAIL_CLIP_BYTES, lint_message
from digest.render.mjml import MjmlCompiler

# The official MJML CLI in both supported major versions, each in its own npm prefix.
MJML_VERSIONS = {"4.18.0": "npm-mjml", "5.4.1": "npm-mjml5"}


def _w47_variant(settings: Settings, engine: Engine, comparisons_dir: Path) -> CompiledVariant:
    report = import_paths(engine, [str(comparisons_dir)])
    assert report.ok
    with Session(engine) as session:
        docs = comparisons_for_week(session, W47, settings.zone, only_new=False)
    assert len(docs) == 6
    renderer = EditionRenderer(
        settings, docs, week=W47, archive_url=ARCHIVE, compiler=MjmlCompiler()
    )
    variant = renderer.variant_for([])
    assert variant is not None
    return variant


def test_w47_from_the_store_is_under_gmail_clip_size_and_lints_clean(
    settings: Settings, engine: Engine, comparisons_dir: Path
) -> None:
    variant = _w47_variant(settings, engine, comparisons_dir)
    message = variant.message_for(READER, message_id="<w47@verdicts.example.com>")
    size = len(message.html.encode("utf-8"))
    assert size < GMAIL_CLIP_BYTES, f"{size} bytes"
    assert lint_message(message) == []
    assert message.subject == "Deskpilot vs Ticketsmith, and 5 more verdicts"
    titles = [doc.title for doc in variant.comparisons]
    text = visible_text(message.html)
    # Every card, in publication order (after the "in this edition" list).
    positions = [text.rfind(title) for title in titles]
    assert positions == sorted(positions)


def _card(text: str, title: str, next_title: str | None) -> str:
    start = text.rfind(title)  # the card heading, after the table of contents
    end = text.find(next_title, start) if next_title else len(text)
    return text[start:end]


def test_seed_values_appear_in_html_and_text(
    make_renderer: RendererFactory, w47_docs: list[ComparisonDoc]
) -> None:
    renderer = make_renderer(w47_docs)
    variant = renderer.variant_for([])
    message = variant.message_for(READER, message_id="<seed@verdicts.example.com>")
    titles = [doc.title for doc in w47_docs]
    seed = next(i for i, doc in enumerate(w47_docs) if doc.slug == SEED_SLUG)
    card = _card(visible_text(message.html), titles[seed], titles[seed + 1])
    # Verdict first: the panel's call, then each tool's verdict in words and numbers, the
    # price once, whole-number averages, persona scores; one quote; one button.
    assert re.search(
        r"★ The panel's pick: Hugging Face Inference Providers Hub "
        r"Claude Haiku Open Weights Developer Tools · Free \(research/non-commercial license "
        r"only\) Mixed — 2 of 4 reviewers · avg 60/100 Builder 74 Skeptic 52 Futurist 68 "
        r"Founder 45 Would you ship it\? Ship · Skip "
        r"Hugging Face Inference Providers Hub Developer Tools .*"
        r"Ship — 4 of 4 reviewers · avg 79/100 Builder 82",
        card,
    ), card
    assert card.count("“") == 1 and "Read the full comparison" in card
    assert "59.75" not in card and "78.50" not in card
    assert "Free · Free" not in card

    text_card = message.text.split(titles[seed])[-1].split(titles[seed + 1])[0]
    assert ">> The panel's pick: Hugging Face Inference Providers Hub" in text_card
    assert "Mixed — 2 of 4 reviewers (50 % ship) · avg 60/100" in text_card
    assert "Ship — 4 of 4 reviewers (100 % ship) · avg 79/100" in text_card
    assert "  Builder  [###############.....]  74" in text_card


def test_toss_up_is_shown_for_focusloom_vs_calendrift(
    make_renderer: RendererFactory, w47_docs: list[ComparisonDoc]
) -> None:
    docs = [doc for doc in w47_docs if doc.slug == "focusloom-vs-calendrift"]
    variant = make_renderer(docs).variant_for([])
    text = visible_text(variant.message_for(READER, message_id="<t@v.example>").html)
    assert "Toss-up between Focusloom and Calendrift" in text
    assert "pick" not in text.replace("1 toss-up", "")


def _mjml_cli(version: str) -> Path:
    """The official MJML CLI, installed with npm into the repository's cache on first use."""
    return npm_package(MJML_VERSIONS[version], f"mjml@{version}", ".bin/mjml")


MJML = pytest.mark.parametrize("version", list(MJML_VERSIONS))


def _validate_strict(source: str, tmp_path: Path, name: str, version: str) -> None:
    path = tmp_path / f"{name}.mjml"
    path.write_text(source, encoding="utf-8")
    result = subprocess.run(
        [str(_mjml_cli(version)), "--validate", str(path), "--config.validationLevel=strict"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@MJML
def test_w47_mjml_source_passes_the_official_validator_in_strict_mode(
    make_renderer: RendererFactory, w47_docs: list[ComparisonDoc], tmp_path: Path, version: str
) -> None:
    variant = make_renderer(w47_docs).variant_for([])
    _validate_strict(variant.mjml, tmp_path, "w47", version)


@MJML
def test_folded_mjml_source_passes_the_official_validator(
    make_renderer: RendererFactory, w47_docs: list[ComparisonDoc], tmp_path: Path, version: str
) -> None:
    from render_support import make_settings

    settings = make_settings(email_size_budget_kb=30)
    variant = make_renderer(w47_docs, settings=settings).variant_for([])
    assert variant.fit is not None and variant.fit.folded
    _validate_strict(variant.mjml, tmp_path, "folded", version)


@MJML
def test_validator_catches_an_invalid_attribute(tmp_path: Path, version: str) -> None:
    broken = '<mjml><mj-body><mj-section bogus="1"><mj-column><mj-text>x</mj-text></mj-column></mj-section></mj-body></mjml>'  # noqa: E501
    with pytest.raises(AssertionError, match="illegal"):
        _validate_strict(broken, tmp_path, "broken", version)


@MJML
def test_hostile_mjml_source_passes_the_official_validator(
    make_renderer: RendererFactory, tmp_path: Path, version: str
) -> None:
    from test_render_escaping import hostile_doc

    variant = make_renderer([hostile_doc()]).variant_for([])
    _validate_strict(variant.mjml, tmp_path, "hostile", version)


def test_every_week_of_fixtures_renders_under_the_clip_size(
    make_renderer: RendererFactory, all_docs: list[ComparisonDoc]
) -> None:
    import datetime as dt

    from digest.content.weeks import IsoWeek

    weeks: dict[IsoWeek, list[ComparisonDoc]] = {}
    for doc in all_docs:
        weeks.setdefault(IsoWeek.containing(doc.published_at, dt.UTC), []).append(doc)
    assert len(weeks) == 3
    for week, docs in weeks.items():
        variant = make_renderer(docs, week=week).variant_for([])
        message = variant.message_for(READER, message_id="<w@v.example>")
        assert len(message.html.encode()) < GMAIL_CLIP_BYTES, week
        assert lint_message(message) == [], week
