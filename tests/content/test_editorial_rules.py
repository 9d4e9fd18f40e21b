"""The editorial rules of ``digest.content.verdicts``: how a verdict is told to a reader."""

from __future__ import annotations

from typing import Any

import pytest

from digest.content.validate import validate_comparison
from digest.content.verdicts import (
    Outcome,
    ScoreBand,
    comparison_verdict,
    first_name,
    greeting,
    outcome_tally,
    percent_label,
    price_line,
    pull_quote,
    quote_excerpt,
    score_band,
)

PERSONAS = ("Builder", "Skeptic", "Futurist", "Founder")


def _doc(scores: dict[str, list[tuple[int, str]]], **extra: Any) -> Any:
    tools = [
        {
            "slug": slug,
            "name": slug.title(),
            "category": "Developer Tools",
            "tagline": "t",
            "description": "d",
            "pricing": "$29/mo per seat",
            "entry_price": "$29/mo",
        }
        for slug in scores
    ]
    reviews = [
        {
            "persona": PERSONAS[i],
            "tool": slug,
            "score": score,
            "verdict": call,
            "text": f"{slug} review {i}. It is {call}.",
        }
        for slug, calls in scores.items()
        for i, (score, call) in enumerate(calls)
    ]
    data = {
        "slug": "-vs-".join(scores),
        "title": " vs ".join(slug.title() for slug in scores),
        "summary": "Which one?",
        "published_at": "2026-11-18T10:00:00Z",
        "url": "https://verdicts.example.com/compare/x",
        "tools": tools,
        "reviews": reviews,
        **extra,
    }
    return validate_comparison(data, "test")


SKIP4 = [(40, "skip"), (30, "skip"), (45, "skip"), (20, "skip")]


def test_all_skip_comparison_has_no_pick_and_says_so() -> None:
    # Deskpilot ranks first (1 of 4 would ship) but is still a Skip: no "pick" beside a Skip.
    doc = _doc({"deskpilot": [(61, "ship"), *SKIP4[1:]], "ticketsmith": SKIP4})
    verdict = comparison_verdict(doc)
    assert verdict.recommended is not None and verdict.recommended.name == "Deskpilot"
    assert verdict.outcome is Outcome.ALL_SKIP
    assert verdict.pick is None
    assert verdict.headline == "The panel would skip both"
    three = _doc({"a": SKIP4, "b": SKIP4, "c": [(10, "skip")] * 4})
    assert comparison_verdict(three).headline == "The panel would skip all 3"
    # The quote is the most decisive review, not a dissent from a pick that does not exist.
    quote = pull_quote(doc, verdict)
    assert quote is not None and not quote.dissent and quote.review.score == 20


def test_toss_up_names_the_tied_tools() -> None:
    doc = _doc(
        {"focusloom": [(70, "ship"), (40, "skip")], "calendrift": [(70, "ship"), (40, "skip")]}
    )
    verdict = comparison_verdict(doc)
    assert verdict.outcome is Outcome.TOSS_UP and verdict.pick is None
    assert verdict.headline == "Toss-up between Focusloom and Calendrift"


def test_pick_and_its_dissent() -> None:
    doc = _doc(
        {
            "hub": [(82, "ship"), (74, "ship"), (80, "ship"), (48, "skip")],
            "haiku": [(74, "ship"), (52, "skip"), (68, "ship"), (45, "skip")],
        }
    )
    verdict = comparison_verdict(doc)
    assert verdict.outcome is Outcome.PICK and verdict.headline == "The panel's pick: Hub"
    hub = verdict.for_tool("hub")
    assert hub.line == "Ship — 3 of 4 reviewers" and hub.percent == "75 % ship"
    assert hub.average_whole == 71 and str(hub.average_score) == "71.00"
    quote = pull_quote(doc, verdict)
    assert quote is not None and quote.dissent and quote.review.persona == "Founder"
    assert outcome_tally(["pick", "pick", "toss-up", "all-skip"]) == (
        "This week: 2 picks, 1 toss-up, 1 to skip."
    )


def test_averages_round_half_up_to_whole_numbers() -> None:
    doc = _doc({"a": [(71, "ship"), (72, "ship")], "b": [(59, "ship"), (60, "skip")]})
    verdict = comparison_verdict(doc)
    assert verdict.for_tool("a").average_whole == 72  # 71.5
    assert verdict.for_tool("b").average_whole == 60  # 59.5


def test_score_colour_follows_the_score_not_the_call() -> None:
    assert score_band(61) is score_band(60) is ScoreBand.MID
    assert score_band(70) is ScoreBand.HIGH and score_band(49) is ScoreBand.LOW


@pytest.mark.parametrize(
    ("entry", "pricing", "shown"),
    [
        ("$29/mo", "$29/mo per seat", "$29/mo per seat"),
        ("$29/mo", "$29/mo", "$29/mo"),
        ("Free", "Free (research license only)", "Free (research license only)"),
        ("$10/mo", "Usage-based", "$10/mo · Usage-based"),
        ("$10/mo", "", "$10/mo"),
        ("", "Usage-based", "Usage-based"),
    ],
)
def test_a_price_is_shown_once(entry: str, pricing: str, shown: str) -> None:
    assert price_line(entry, pricing) == shown


def test_percentages_say_what_they_count() -> None:
    assert percent_label(75) == "75 % ship"


@pytest.mark.parametrize(
    ("name", "explicit", "expected"),
    [
        ("Lindqvist, Astrid", "", "Hi Astrid,"),
        ("Ops Team", "", "Hi Ops,"),
        ("Ops Team", "Sam", "Hi Sam,"),
        ("  Zoë   Fontaine ", "", "Hi Zoë,"),
        ("Mary Ann Lee", "Mary Ann", "Hi Mary Ann,"),
        ("", "", "Hi there,"),
        ("   ", "", "Hi there,"),
        ("Lindqvist,", "", "Hi Lindqvist,"),
        ('"Ada"', "", "Hi Ada,"),
    ],
)
def test_greeting_uses_a_first_name(name: str, explicit: str, expected: str) -> None:
    assert greeting(name, explicit) == expected
    assert first_name("x" * 300) == "x" * 40


def test_quotes_end_at_a_sentence_end() -> None:
    text = "Short first. " + "A long second sentence " * 12 + "ends here. Third."
    assert quote_excerpt(text) == "Short first."
    one = "word " * 80
    cut = quote_excerpt(one)
    assert cut.endswith("…") and len(cut) <= 200 and one.startswith(cut[:-1])
