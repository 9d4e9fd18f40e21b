"""Derived verdicts match the expected values of every fixture (the content README's table)."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from digest.content.document import ComparisonDoc
from digest.content.validate import parse_comparisons
from digest.content.verdicts import CommunityVotes, comparison_verdict, label_for, round_half_up


def load(path: Path) -> ComparisonDoc:
    [(_label, doc)] = parse_comparisons(path.read_bytes(), path.name)
    assert isinstance(doc, ComparisonDoc)
    return doc


def test_seed_comparison(comparisons_dir: Path) -> None:
    doc = load(
        comparisons_dir
        / "2026-11-17-claude-haiku-open-weights-vs-hugging-face-inference-providers-hub.json"
    )
    verdict = comparison_verdict(doc)
    haiku, hub = verdict.tools
    assert (haiku.name, haiku.label, haiku.ship_percent, haiku.ship, haiku.skip) == (
        "Claude Haiku Open Weights",
        "Mixed",
        50,
        2,
        2,
    )
    assert haiku.average_score == Decimal("59.75")
    assert (hub.name, hub.label, hub.ship_percent, hub.ship, hub.skip) == (
        "Hugging Face Inference Providers Hub",
        "Ship",
        100,
        4,
        0,
    )
    assert hub.average_score == Decimal("78.50")
    assert verdict.recommended is hub
    assert haiku.community.label == "No community votes yet"


def _expected_rows(readme: Path) -> list[list[str]]:
    rows = []
    for line in readme.read_text(encoding="utf-8").splitlines():
        if line.startswith("| `2026-"):
            rows.append([cell.strip().strip("`") for cell in line.strip("|").split("|")])
    return rows


def test_every_fixture_matches_the_readme_table(comparisons_dir: Path) -> None:
    readme = comparisons_dir / "README.md"
    if not readme.exists():
        pytest.skip("the fixtures README with the expected table is not present")
    rows = _expected_rows(readme)
    assert len(rows) >= 30
    for (
        file,
        _w_utc,
        _w_ny,
        tool_name,
        label,
        percent,
        ship_skip,
        average,
        community,
        recommended,
    ) in rows:
        verdict = comparison_verdict(load(comparisons_dir / file))
        tool = next(t for t in verdict.tools if t.name == tool_name)
        ship, skip = (int(n) for n in ship_skip.split(" / "))
        assert (tool.label.value, tool.ship_percent, tool.ship, tool.skip) == (
            label,
            int(percent),
            ship,
            skip,
        )
        assert tool.average_score == Decimal(average)
        assert tool.community.label == community.split(": ", 1)[1]
        expected = None if recommended.startswith("none") else recommended
        assert (verdict.recommended.name if verdict.recommended else None) == expected, file


@pytest.mark.parametrize(
    ("numerator", "denominator", "places", "expected"),
    [
        (25, 2, 0, "13"),
        (133333, 2000, 2, "66.67"),
        (66665, 1000, 2, "66.67"),
        (5, 2, 0, "3"),
        (7, 2, 0, "4"),
    ],
)
def test_rounding_is_half_up_and_exact(
    numerator: int, denominator: int, places: int, expected: str
) -> None:
    assert round_half_up(numerator, denominator, places) == Decimal(expected)


def test_label_boundaries() -> None:
    assert [label_for(p).value for p in (0, 25, 26, 74, 75, 100)] == [
        "Skip",
        "Skip",
        "Mixed",
        "Mixed",
        "Ship",
        "Ship",
    ]


def test_community_labels() -> None:
    assert CommunityVotes(0, 0).label == "No community votes yet"
    assert CommunityVotes(0, 6).label == "0% of 6 votes up"
    assert CommunityVotes(1, 0).label == "100% of 1 vote up"
    assert re.fullmatch(r"\d+% of 49 votes up", CommunityVotes(37, 12).label)
