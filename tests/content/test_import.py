"""Importing comparisons: upsert by slug, rejected files store nothing, URLs, PostgreSQL too."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from digest.content.importer import fetch_url, import_paths
from digest.content.models import Comparison, Review, Tool
from digest.content.store import count_comparisons, get_comparison
from digest.errors import ContentError, InputError

SEED = "2026-11-17-claude-haiku-open-weights-vs-hugging-face-inference-providers-hub.json"
SEED_SLUG = "claude-haiku-open-weights-vs-hugging-face-inference-providers-hub"


def test_imports_every_fixture_then_reports_them_unchanged(
    engine: Engine, comparisons_dir: Path
) -> None:
    total = len(list(comparisons_dir.glob("*.json")))
    first = import_paths(engine, [str(comparisons_dir)])
    assert first.summary() == f"imported {total}, updated 0, unchanged 0, rejected 0"
    second = import_paths(engine, [str(comparisons_dir)])
    assert second.summary() == f"imported 0, updated 0, unchanged {total}, rejected 0"
    with Session(engine) as session:
        assert count_comparisons(session) == total


def test_round_trip_keeps_the_document(engine: Engine, comparisons_dir: Path) -> None:
    import_paths(engine, [str(comparisons_dir / SEED)])
    original = json.loads((comparisons_dir / SEED).read_text(encoding="utf-8"))
    with Session(engine) as session:
        doc = get_comparison(session, SEED_SLUG)
    assert doc is not None
    stored = doc.model_dump(mode="json", exclude_none=True)
    assert stored["reviews"] == original["reviews"]
    assert stored["tools"] == original["tools"]
    assert doc.published_at.isoformat() == "2026-11-17T14:00:00+00:00"


def test_changed_file_updates_and_records_updated_at(
    engine: Engine, comparisons_dir: Path, tmp_path: Path
) -> None:
    path = tmp_path / SEED
    shutil.copy(comparisons_dir / SEED, path)
    import_paths(engine, [str(path)])
    data = json.loads(path.read_text(encoding="utf-8"))
    data["title"] = "A new title"
    data["reviews"][0]["score"] = 12
    data["tools"][0]["slug"] = "renamed-tool"
    for review in data["reviews"]:
        if review["tool"] == "claude-haiku-open-weights":
            review["tool"] = "renamed-tool"
    path.write_text(json.dumps(data), encoding="utf-8")
    report = import_paths(engine, [str(path)])
    assert report.summary() == "imported 0, updated 1, unchanged 0, rejected 0"
    with Session(engine) as session:
        row = session.exec(select(Comparison)).one()
        assert row.title == "A new title" and row.updated_at is not None
        doc = get_comparison(session, SEED_SLUG)
        assert (
            doc is not None and doc.reviews[0].score == 12 and doc.tools[0].slug == "renamed-tool"
        )
        assert len(session.exec(select(Tool)).all()) == 2
        assert len(session.exec(select(Review)).all()) == 8


def test_bad_file_rejected_whole_good_ones_still_imported(
    engine: Engine, comparisons_dir: Path, tmp_path: Path
) -> None:
    shutil.copy(comparisons_dir / SEED, tmp_path / SEED)
    bad: dict[str, Any] = json.loads((comparisons_dir / SEED).read_text(encoding="utf-8"))
    bad["slug"] = "a-bad-one"
    bad["reviews"][3]["score"] = 150
    (tmp_path / "bad.json").write_text(json.dumps(bad), encoding="utf-8")
    (tmp_path / "broken.json").write_bytes(b"{not json")
    (tmp_path / "notes.txt").write_text("ignored", encoding="utf-8")
    report = import_paths(engine, [str(tmp_path)])
    assert report.summary() == "imported 1, updated 0, unchanged 0, rejected 2"
    messages = sorted(str(error) for error in report.rejected)
    assert (
        messages[0]
        == f"{tmp_path / 'bad.json'}: reviews[3].score: must be between 0 and 100, got 150"
    )
    assert messages[1].startswith(f"{tmp_path / 'broken.json'}: invalid JSON")
    with Session(engine) as session:
        assert session.exec(select(Comparison.slug)).all() == [SEED_SLUG]
        assert len(session.exec(select(Tool)).all()) == 2


def test_same_slug_defined_differently_in_one_run_is_refused(
    engine: Engine, comparisons_dir: Path, tmp_path: Path
) -> None:
    data = json.loads((comparisons_dir / SEED).read_text(encoding="utf-8"))
    (tmp_path / "a.json").write_text(json.dumps(data), encoding="utf-8")
    data["title"] = "Another title"
    (tmp_path / "b.json").write_text(json.dumps(data), encoding="utf-8")
    report = import_paths(engine, [str(tmp_path)])
    assert report.summary() == "imported 0, updated 0, unchanged 0, rejected 2"
    assert "is defined differently" in str(report.rejected[0])
    with Session(engine) as session:
        assert count_comparisons(session) == 0


def test_identical_copies_count_once(engine: Engine, comparisons_dir: Path, tmp_path: Path) -> None:
    shutil.copy(comparisons_dir / SEED, tmp_path / "a.json")
    shutil.copy(comparisons_dir / SEED, tmp_path / "b.json")
    report = import_paths(engine, [str(tmp_path)])
    assert report.summary() == "imported 1, updated 0, unchanged 0, rejected 0"
    assert len(report.warnings) == 1


def test_missing_path_and_empty_arguments(engine: Engine, tmp_path: Path) -> None:
    report = import_paths(engine, [str(tmp_path / "nope.json")])
    assert [str(e) for e in report.rejected] == [
        f"{tmp_path / 'nope.json'}: no such file or directory"
    ]
    with pytest.raises(InputError):
        import_paths(engine, [])


def _client(handler: Any) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))


def test_url_returning_a_list(engine: Engine, comparisons_dir: Path) -> None:
    documents = [
        json.loads(p.read_text(encoding="utf-8"))
        for p in sorted(comparisons_dir.glob("*.json"))[:3]
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url == "https://feed.example.com/comparisons.json"
        return httpx.Response(200, json=documents)

    report = import_paths(
        engine, ["https://feed.example.com/comparisons.json"], client=_client(handler)
    )
    assert report.summary() == "imported 3, updated 0, unchanged 0, rejected 0"


def test_url_errors_are_reported(engine: Engine) -> None:
    client = _client(lambda request: httpx.Response(404))
    report = import_paths(engine, ["https://feed.example.com/missing.json"], client=client)
    assert [str(e) for e in report.rejected] == [
        "https://feed.example.com/missing.json: answered HTTP 404"
    ]
    with pytest.raises(ContentError, match="only https:// URLs are fetched"):
        fetch_url("http://feed.example.com/x.json")

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(ContentError, match="could not be fetched"):
        fetch_url("https://feed.example.com/x.json", client=_client(refuse))


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 5000 + b"]" * 5000,
        b"[" * 100_000,  # unclosed
        b'{"slug": ' + b'{"a": ' * 3000 + b"1" + b"}" * 3000 + b"}",
        b"[" * 65 + b"]" * 65,
    ],
)
def test_deeply_nested_file_is_one_line_and_the_others_still_import(
    engine: Engine, comparisons_dir: Path, tmp_path: Path, body: bytes
) -> None:
    shutil.copy(comparisons_dir / SEED, tmp_path / SEED)
    (tmp_path / "deep.json").write_bytes(body)
    report = import_paths(engine, [str(tmp_path)])
    assert report.summary() == "imported 1, updated 0, unchanged 0, rejected 1"
    [rejected] = report.rejected
    assert str(rejected) == f"{tmp_path / 'deep.json'}: too deeply nested (limit 64)"


def test_nesting_up_to_the_limit_is_parsed(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "nested.json").write_bytes(b"[" * 64 + b"]" * 64)
    [rejected] = import_paths(engine, [str(tmp_path)]).rejected
    assert "too deeply nested" not in str(rejected)  # refused by validation, not by depth


def test_brackets_inside_strings_do_not_count() -> None:
    from digest.json_bounds import bounds_problem, nesting_depth

    text = b'{"a": "' + b"[" * 1000 + b'\\" [[[", "b": [[1]]}'
    assert nesting_depth(text) == 3 and bounds_problem(text) is None


def test_deeply_nested_url_is_rejected_in_one_line(engine: Engine) -> None:
    client = _client(lambda request: httpx.Response(200, content=b"[" * 20_000 + b"]" * 20_000))
    report = import_paths(engine, ["https://feed.example.com/deep.json"], client=client)
    assert [str(e) for e in report.rejected] == [
        "https://feed.example.com/deep.json: too deeply nested (limit 64)"
    ]
