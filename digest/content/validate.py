"""Strict, complete validation of comparison documents, with messages that name the field.

The rules are those of ``comparison.schema.json`` plus the cross-reference rules of the content
README (tool slugs unique, reviews point at tools of the same comparison, one review per
persona and tool, every tool reviewed) and a few that keep input unambiguous: duplicate JSON
keys, ``NaN``/``Infinity``, NUL characters, unpaired surrogates and non-real dates are refused.
Every problem in a document is reported, each as ``path: reason`` (``reviews[3].score: must be
between 0 and 100``), and a document with any problem is rejected whole.
"""

from __future__ import annotations

import codecs
import datetime as dt
import json
import re
from decimal import Decimal
from typing import Any

from digest.content.document import ComparisonDoc
from digest.errors import ContentError
from digest.json_bounds import bounds_problem

SLUG_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
TIMESTAMP_RE = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
HTTP_URL_RE = re.compile(r"^https?://[^\s/?#]+([/?#][^\s]*)?$")
# RFC 3986 characters; anything else (quotes, angle brackets, spaces, non-ASCII) must be
# percent-encoded in a URI.
URI_CHARS_RE = re.compile(r"^[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*$")
PERCENT_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")
MAX_URL = 2000

SLUG_RULE = "must be lowercase ASCII words (a-z, 0-9) joined by single hyphens"
TOOL_FIELDS = ("slug", "name", "category", "tagline", "description", "pricing", "entry_price")
REVIEW_FIELDS = ("persona", "tool", "score", "verdict", "text")
COMPARISON_FIELDS = ("slug", "title", "summary", "published_at", "url", "tools", "reviews")


class _Object(dict[str, Any]):
    """A parsed JSON object that remembers keys it saw more than once."""

    duplicates: list[str]


def _object_pairs(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object()
    obj.duplicates = []
    for key, value in pairs:
        if key in obj:
            obj.duplicates.append(key)
        obj[key] = value
    return obj


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def decode_json(data: bytes, source: str) -> Any:
    """Bytes (UTF-8, with or without BOM) to JSON values, or a ``ContentError`` saying why not."""
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        raise ContentError(source, ["is UTF-32 encoded; save it as UTF-8"])
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ContentError(source, ["is UTF-16 encoded; save it as UTF-8"])
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data[exc.start : exc.start + 1].hex()
        raise ContentError(
            source, [f"is not valid UTF-8 (byte 0x{bad} at offset {exc.start}); save it as UTF-8"]
        ) from None
    if not text.strip():
        raise ContentError(source, ["is empty; expected a JSON object"])
    problem = bounds_problem(data)
    if problem is not None:
        raise ContentError(source, [problem])
    try:
        return json.loads(
            text,
            object_pairs_hook=_object_pairs,
            parse_float=Decimal,
            parse_constant=_refuse_constant,
        )
    except json.JSONDecodeError as exc:
        raise ContentError(
            source, [f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"]
        ) from None
    except ValueError as exc:
        raise ContentError(source, [f"invalid JSON: {exc}"]) from None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _shown(value: Any) -> str:
    text = str(value) if isinstance(value, Decimal) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


class _Checker:
    """Walks one parsed document and collects every problem with its path."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}" if path else message)

    def object(
        self, path: str, value: Any, required: tuple[str, ...], optional: tuple[str, ...] = ()
    ) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.fail(path, f"must be an object, got {_kind(value)}")
            return None
        prefix = f"{path}." if path else ""
        for key in getattr(value, "duplicates", []):
            self.fail(f"{prefix}{key}", "appears more than once in the same object")
        for key in value:
            if key not in required and key not in optional:
                self.fail(f"{prefix}{key}", "unknown field")
        for key in required:
            if key not in value:
                self.fail(f"{prefix}{key}", "is required")
        return value

    def array(self, path: str, value: Any, low: int, high: int) -> list[Any]:
        if not isinstance(value, list):
            self.fail(path, f"must be an array, got {_kind(value)}")
            return []
        if not low <= len(value) <= high:
            self.fail(path, f"must have {low} to {high} items, got {len(value)}")
        return value

    def string(self, path: str, value: Any, low: int, high: int) -> str | None:
        if not isinstance(value, str):
            self.fail(path, f"must be a string, got {_kind(value)}")
            return None
        if "\x00" in value:
            self.fail(path, "must not contain NUL characters")
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            self.fail(path, "contains an unpaired surrogate (\\ud800-\\udfff escape)")
            return None
        length = len(value)
        if length < low or length > high:
            if low == 0:
                self.fail(path, f"must be at most {high} characters, got {length}")
            elif low == 1 and length == 0:
                self.fail(path, "must not be empty")
            else:
                self.fail(path, f"must be {low} to {high} characters, got {length}")
            return None
        return value

    def integer(self, path: str, value: Any, low: int, high: int | None) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, f"must be an integer, got {_kind(value)} {_shown(value)}")
            return None
        if value < low or (high is not None and value > high):
            rule = f"between {low} and {high}" if high is not None else f"{low} or more"
            self.fail(path, f"must be {rule}, got {value}")
            return None
        return value

    def slug(self, path: str, value: Any) -> str | None:
        text = self.string(path, value, 1, 120)
        if text is not None and not SLUG_RE.match(text):
            self.fail(path, f"{SLUG_RULE}, got {_shown(text)}")
            return None
        return text

    def url(self, path: str, value: Any) -> None:
        text = self.string(path, value, 1, MAX_URL)
        if text is None:
            return
        if not HTTP_URL_RE.match(text):
            self.fail(path, f"must be an absolute http or https URL, got {_shown(text)}")
        elif not URI_CHARS_RE.match(text) or PERCENT_RE.search(text):
            self.fail(path, f"has characters a URL cannot contain unencoded, got {_shown(text)}")

    def timestamp(self, path: str, value: Any) -> None:
        text = self.string(path, value, 1, 64)
        if text is None:
            return
        if not TIMESTAMP_RE.match(text):
            self.fail(
                path,
                "must be an RFC 3339 date-time with a timezone, such as "
                f"2026-11-17T09:00:00Z or 2026-11-17T10:00:00+01:00, got {_shown(text)}",
            )
            return
        try:
            parse_timestamp(text)
        except ValueError as exc:
            self.fail(path, f"is not a real date and time ({exc}), got {_shown(text)}")


def parse_timestamp(text: str) -> dt.datetime:
    """An RFC 3339 timestamp (already shape-checked) as an aware datetime."""
    normalized = text[:10] + "T" + text[11:]
    if normalized[-1] in "zZ":
        normalized = normalized[:-1] + "+00:00"
    return dt.datetime.fromisoformat(normalized)


def _check_tool(check: _Checker, path: str, tool: Any) -> str | None:
    obj = check.object(path, tool, TOOL_FIELDS, ("url", "community"))
    if obj is None:
        return None
    slug = check.slug(f"{path}.slug", obj["slug"]) if "slug" in obj else None
    limits = {
        "name": (1, 120),
        "category": (1, 60),
        "tagline": (0, 200),
        "description": (0, 5000),
        "pricing": (0, 300),
        "entry_price": (1, 40),
    }
    for field, (low, high) in limits.items():
        if field in obj:
            check.string(f"{path}.{field}", obj[field], low, high)
    if "url" in obj:
        check.url(f"{path}.url", obj["url"])
    if "community" in obj:
        votes = check.object(f"{path}.community", obj["community"], ("up", "down"))
        if votes is not None:
            for field in ("up", "down"):
                if field in votes:
                    check.integer(f"{path}.community.{field}", votes[field], 0, None)
    return slug


def _check_review(check: _Checker, path: str, review: Any) -> dict[str, Any] | None:
    obj = check.object(path, review, REVIEW_FIELDS)
    if obj is None:
        return None
    if "persona" in obj:
        check.string(f"{path}.persona", obj["persona"], 1, 40)
    if "tool" in obj:
        check.slug(f"{path}.tool", obj["tool"])
    if "score" in obj:
        check.integer(f"{path}.score", obj["score"], 0, 100)
    if "verdict" in obj and obj["verdict"] not in ("ship", "skip"):
        check.fail(f"{path}.verdict", f'must be "ship" or "skip", got {_shown(obj["verdict"])}')
    if "text" in obj:
        check.string(f"{path}.text", obj["text"], 1, 10000)
    return obj


def _check_references(check: _Checker, tool_slugs: list[str | None], reviews: list[Any]) -> None:
    """The README's rules the schema cannot express."""
    first_use: dict[str, int] = {}
    for index, slug in enumerate(tool_slugs):
        if slug is None:
            continue
        if slug in first_use:
            check.fail(
                f"tools[{index}].slug", f'"{slug}" is already used by tools[{first_use[slug]}]'
            )
        else:
            first_use[slug] = index
    reviewed: set[str] = set()
    pairs: dict[tuple[str, str], int] = {}
    for index, review in enumerate(reviews):
        if not isinstance(review, dict):
            continue
        tool, persona = review.get("tool"), review.get("persona")
        if not isinstance(tool, str):
            continue
        if tool not in first_use:
            if None not in tool_slugs:  # an invalid tool slug was already reported
                check.fail(
                    f"reviews[{index}].tool",
                    f'"{tool}" is not the slug of a tool in this comparison',
                )
            continue
        reviewed.add(tool)
        if isinstance(persona, str):
            if (persona, tool) in pairs:
                earlier = pairs[persona, tool]
                check.fail(
                    f"reviews[{index}]",
                    f'persona "{persona}" already reviewed tool "{tool}" in reviews[{earlier}]',
                )
            else:
                pairs[persona, tool] = index
    for slug, index in first_use.items():
        if slug not in reviewed:
            check.fail(f"tools[{index}]", f'tool "{slug}" has no review')


def validate_comparison(value: Any, source: str, path: str = "") -> ComparisonDoc:
    """A parsed JSON value to a ``ComparisonDoc``, or ``ContentError`` listing every problem."""
    check = _Checker()
    obj = check.object(path, value, COMPARISON_FIELDS)
    if obj is None:
        what = "one comparison object" if not path else "a comparison object"
        raise ContentError(
            source, [f"{path + ': ' if path else ''}must be {what}, got {_kind(value)}"]
        )
    sub = (lambda name: f"{path}.{name}") if path else (lambda name: name)
    if "slug" in obj:
        check.slug(sub("slug"), obj["slug"])
    if "title" in obj:
        check.string(sub("title"), obj["title"], 1, 300)
    if "summary" in obj:
        check.string(sub("summary"), obj["summary"], 0, 1000)
    if "published_at" in obj:
        check.timestamp(sub("published_at"), obj["published_at"])
    if "url" in obj:
        check.url(sub("url"), obj["url"])
    tools = check.array(sub("tools"), obj.get("tools", []), 2, 4) if "tools" in obj else []
    reviews = check.array(sub("reviews"), obj.get("reviews", []), 1, 40) if "reviews" in obj else []
    tool_slugs = [_check_tool(check, f"{sub('tools')}[{i}]", tool) for i, tool in enumerate(tools)]
    for index, review in enumerate(reviews):
        _check_review(check, f"{sub('reviews')}[{index}]", review)
    if not path:
        _check_references(check, tool_slugs, reviews)
    else:
        nested = _Checker()
        _check_references(nested, tool_slugs, reviews)
        check.problems.extend(f"{path}.{problem}" for problem in nested.problems)
    if check.problems:
        raise ContentError(source, check.problems)
    return _build(obj)


def _build(obj: dict[str, Any]) -> ComparisonDoc:
    data = dict(obj)
    data["published_at"] = parse_timestamp(obj["published_at"])
    return ComparisonDoc.model_validate(data)


def parse_comparisons(
    data: bytes, source: str, *, allow_list: bool = False
) -> list[tuple[str, ComparisonDoc | ContentError]]:
    """Decode and validate one file or response body.

    Returns ``(label, doc or error)`` per comparison: one for an object; one per element for a
    JSON array when ``allow_list`` (each element labelled ``source[i]`` and judged on its own).
    A body that cannot be decoded at all raises ``ContentError``.
    """
    value = decode_json(data, source)
    if isinstance(value, list):
        if not allow_list:
            raise ContentError(
                source,
                ["must contain one comparison object, got an array (one comparison per file)"],
            )
        if not value:
            raise ContentError(source, ["is an empty array; expected comparison objects"])
        return [
            (f"{source}[{i}]", _attempt(item, f"{source}[{i}]")) for i, item in enumerate(value)
        ]
    return [(source, _attempt(value, source))]


def _attempt(value: Any, label: str) -> ComparisonDoc | ContentError:
    try:
        return validate_comparison(value, label)
    except ContentError as exc:
        return exc
