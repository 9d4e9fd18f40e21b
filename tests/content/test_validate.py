"""Every kind of bad comparison document is refused with a message naming the field."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from digest.content.validate import parse_comparisons, validate_comparison
from digest.errors import ContentError

SEED = "2026-11-17-claude-haiku-open-weights-vs-hugging-face-inference-providers-hub.json"


@pytest.fixture
def seed(comparisons_dir: Path) -> dict[str, Any]:
    return json.loads((comparisons_dir / SEED).read_text(encoding="utf-8"))


def problems_of(document: Any) -> list[str]:
    with pytest.raises(ContentError) as caught:
        validate_comparison(document, "bad.json")
    assert str(caught.value).startswith("bad.json: ")
    return caught.value.problems


def problems_of_bytes(data: bytes) -> list[str]:
    try:
        results = parse_comparisons(data, "bad.json")
    except ContentError as exc:
        return exc.problems
    errors = [result for _label, result in results if isinstance(result, ContentError)]
    assert errors, "expected the document to be refused"
    return errors[0].problems


def test_every_fixture_is_valid(comparisons_dir: Path) -> None:
    files = sorted(comparisons_dir.glob("*.json"))
    assert len(files) >= 3
    for path in files:
        [(_label, result)] = parse_comparisons(path.read_bytes(), path.name)
        assert not isinstance(result, ContentError), result
        assert result.slug in path.name


def test_score_out_of_range_names_the_review(seed: dict[str, Any]) -> None:
    seed["reviews"][3]["score"] = 101
    assert problems_of(seed) == ["reviews[3].score: must be between 0 and 100, got 101"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (-1, "must be between 0 and 100, got -1"),
        (74.5, "must be an integer, got number 74.5"),
        (True, "must be an integer, got boolean true"),
        ("74", 'must be an integer, got string "74"'),
    ],
)
def test_score_types(seed: dict[str, Any], value: Any, expected: str) -> None:
    seed["reviews"][0]["score"] = value
    assert problems_of(seed) == [f"reviews[0].score: {expected}"]


def test_whole_number_written_as_float_is_refused(seed: dict[str, Any]) -> None:
    # 74.0 could be meant as 74 or be a sign of a broken exporter: refuse, do not guess.
    text = json.dumps(seed).replace('"score": 74', '"score": 74.0', 1)
    assert problems_of_bytes(text.encode()) == [
        "reviews[0].score: must be an integer, got number 74.0"
    ]


def test_missing_fields_are_all_reported(seed: dict[str, Any]) -> None:
    del seed["title"]
    del seed["tools"][1]["entry_price"]
    del seed["reviews"][2]["verdict"]
    assert problems_of(seed) == [
        "title: is required",
        "tools[1].entry_price: is required",
        "reviews[2].verdict: is required",
    ]


def test_unknown_fields_are_refused_at_every_level(seed: dict[str, Any]) -> None:
    seed["author"] = "x"
    seed["tools"][0]["logo"] = "x"
    seed["tools"][0]["community"]["sideways"] = 1
    seed["reviews"][0]["stars"] = 5
    assert problems_of(seed) == [
        "author: unknown field",
        "tools[0].logo: unknown field",
        "tools[0].community.sideways: unknown field",
        "reviews[0].stars: unknown field",
    ]


def test_unknown_tool_reference(seed: dict[str, Any]) -> None:
    seed["reviews"][5]["tool"] = "no-such-tool"
    assert problems_of(seed) == [
        'reviews[5].tool: "no-such-tool" is not the slug of a tool in this comparison'
    ]


def test_duplicate_tool_slug_and_unreviewed_tool(seed: dict[str, Any]) -> None:
    seed["tools"].append(copy.deepcopy(seed["tools"][0]))
    problems = problems_of(seed)
    assert problems[0].startswith(
        'tools[2].slug: "claude-haiku-open-weights" is already used by tools[0]'
    )


def test_tool_without_review(seed: dict[str, Any]) -> None:
    tool = copy.deepcopy(seed["tools"][0])
    tool["slug"] = "lonely-tool"
    seed["tools"].append(tool)
    assert problems_of(seed) == ['tools[2]: tool "lonely-tool" has no review']


def test_same_persona_reviews_a_tool_twice(seed: dict[str, Any]) -> None:
    seed["reviews"].append(copy.deepcopy(seed["reviews"][0]))
    problems = problems_of(seed)
    assert len(problems) == 1
    assert problems[0].startswith(f"reviews[{len(seed['reviews']) - 1}]: persona")
    assert "already reviewed" in problems[0] and "reviews[0]" in problems[0]


@pytest.mark.parametrize(
    "slug", ["Bad-Slug", "bad--slug", "-bad", "bad-", "bad slug", "båd", "", "a" * 121]
)
def test_bad_slugs(seed: dict[str, Any], slug: str) -> None:
    seed["slug"] = slug
    [problem] = problems_of(seed)
    assert problem.startswith("slug: ")


@pytest.mark.parametrize(
    "stamp",
    [
        "2026-11-17T09:00:00",  # no timezone
        "2026-11-17 09:00:00Z",  # space separator
        "2026-11-17",
        "2026-11-17T09:00Z",
        "17/11/2026 09:00",
        "2026-11-17T09:00:00+0100",
    ],
)
def test_timestamps_without_timezone_or_shape(seed: dict[str, Any], stamp: str) -> None:
    seed["published_at"] = stamp
    [problem] = problems_of(seed)
    assert problem.startswith("published_at: must be an RFC 3339 date-time with a timezone")


@pytest.mark.parametrize(
    "stamp", ["2026-02-30T10:00:00Z", "2026-11-17T24:00:00Z", "2026-13-01T00:00:00Z"]
)
def test_timestamps_that_are_not_real(seed: dict[str, Any], stamp: str) -> None:
    seed["published_at"] = stamp
    [problem] = problems_of(seed)
    assert problem.startswith("published_at: is not a real date and time")


def test_timestamp_forms_accepted(seed: dict[str, Any]) -> None:
    for stamp in (
        "2026-11-17t09:00:00z",
        "2026-11-17T09:00:00.123456789+05:30",
        "2026-11-17T09:00:00-00:00",
    ):
        seed["published_at"] = stamp
        assert validate_comparison(seed, "ok.json").published_at.tzinfo is not None


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "ftp://example.com/x",
        "//example.com/x",
        "/relative/path",
        'https://example.com/"><script>',
        "https://example.com/a b",
        "https://exämple.com/",
        "HTTPS://example.com/",
        "https://example.com/100%",
    ],
)
def test_unsafe_or_malformed_urls(seed: dict[str, Any], url: str) -> None:
    seed["tools"][0]["url"] = url
    [problem] = problems_of(seed)
    assert problem.startswith("tools[0].url: ")


def test_array_where_an_object_belongs(seed: dict[str, Any]) -> None:
    seed["tools"][0]["community"] = [0, 0]
    seed["reviews"][1] = [seed["reviews"][1]]
    assert problems_of(seed) == [
        "tools[0].community: must be an object, got array",
        "reviews[1]: must be an object, got array",
    ]


def test_file_holding_an_array_is_refused(seed: dict[str, Any]) -> None:
    data = json.dumps([seed]).encode()
    assert problems_of_bytes(data) == [
        "must contain one comparison object, got an array (one comparison per file)"
    ]


def test_list_from_a_url_is_judged_element_by_element(seed: dict[str, Any]) -> None:
    bad = copy.deepcopy(seed)
    bad["slug"] = "Bad"
    results = parse_comparisons(json.dumps([seed, bad]).encode(), "https://x/feed", allow_list=True)
    assert [label for label, _ in results] == ["https://x/feed[0]", "https://x/feed[1]"]
    assert not isinstance(results[0][1], ContentError)
    assert isinstance(results[1][1], ContentError)
    assert str(results[1][1]).startswith("https://x/feed[1]: slug: ")


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("title", "", "title: must not be empty"),
        ("title", "x" * 301, "title: must be 1 to 300 characters, got 301"),
        ("summary", "x" * 1001, "summary: must be at most 1000 characters, got 1001"),
        ("title", None, "title: must be a string, got null"),
        ("tools", {}, "tools: must be an array, got object"),
    ],
)
def test_lengths_and_types(seed: dict[str, Any], field: str, value: Any, expected: str) -> None:
    seed[field] = value
    assert expected in problems_of(seed)


def test_lengths_count_code_points_not_bytes(seed: dict[str, Any]) -> None:
    seed["title"] = "é" * 300  # 600 bytes in UTF-8, 300 characters
    assert validate_comparison(seed, "ok.json").title == "é" * 300


def test_tool_and_review_counts(seed: dict[str, Any]) -> None:
    seed["tools"] = seed["tools"][:1]
    seed["reviews"] = [r for r in seed["reviews"] if r["tool"] == seed["tools"][0]["slug"]]
    assert problems_of(seed) == ["tools: must have 2 to 4 items, got 1"]


def test_verdict_must_be_ship_or_skip(seed: dict[str, Any]) -> None:
    seed["reviews"][0]["verdict"] = "Ship"
    assert problems_of(seed) == ['reviews[0].verdict: must be "ship" or "skip", got "Ship"']


def test_negative_community_votes(seed: dict[str, Any]) -> None:
    seed["tools"][0]["community"] = {"up": -1, "down": 0}
    assert problems_of(seed) == ["tools[0].community.up: must be 0 or more, got -1"]


def test_nul_and_unpaired_surrogates_are_refused(seed: dict[str, Any]) -> None:
    seed["title"] = "nul\x00inside"
    assert problems_of(seed) == ["title: must not contain NUL characters"]
    data = json.dumps(seed).replace("nul\\u0000inside", "bad \\ud800 half").encode()
    assert problems_of_bytes(data) == [
        "title: contains an unpaired surrogate (\\ud800-\\udfff escape)"
    ]


def test_duplicate_keys_are_refused(seed: dict[str, Any]) -> None:
    text = json.dumps(seed)
    text = text.replace('"title": ', '"title": "first", "title": ', 1)
    assert problems_of_bytes(text.encode()) == ["title: appears more than once in the same object"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "is empty; expected a JSON object"),
        (b"   \n", "is empty; expected a JSON object"),
        (b'{"slug": ', "invalid JSON: Expecting value (line 1, column 10)"),
        (
            b"{'slug': 'x'}",
            "invalid JSON: Expecting property name enclosed in double quotes (line 1, column 2)",
        ),
        (b'{"a": NaN}', "invalid JSON: NaN is not valid JSON"),
        (b"\xff\xfe{\x00}\x00", "is UTF-16 encoded; save it as UTF-8"),
        (b'{"title": "caf\xe9"}', "is not valid UTF-8 (byte 0xe9 at offset 14); save it as UTF-8"),
        (b'"just a string"', "must be one comparison object, got string"),
    ],
)
def test_undecodable_files(data: bytes, expected: str) -> None:
    assert problems_of_bytes(data) == [expected]


def test_bom_is_accepted(comparisons_dir: Path) -> None:
    data = b"\xef\xbb\xbf" + (comparisons_dir / SEED).read_bytes()
    [(_label, result)] = parse_comparisons(data, SEED)
    assert not isinstance(result, ContentError)


def test_hostile_text_is_accepted_as_content(seed: dict[str, Any]) -> None:
    seed["title"] = "<script>alert(1)</script> {{ 7*7 }} {% if x %}"
    assert validate_comparison(seed, "ok.json").title == seed["title"]
