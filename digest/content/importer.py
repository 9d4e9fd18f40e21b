"""Import comparisons from files, directories and https URLs into the store.

Each document is validated whole and stored in its own transaction: a bad file is rejected
with every problem named, and the good files of the same run are still imported. Two sources
in one run that define the same slug differently are both refused (which one should win is a
guess), while identical copies count once.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from digest.content.document import ComparisonDoc
from digest.content.store import UpsertOutcome, content_hash, upsert_comparison
from digest.content.validate import parse_comparisons
from digest.db import session_scope
from digest.errors import ContentError, InputError
from digest.json_bounds import MAX_DOCUMENT_BYTES

log = logging.getLogger(__name__)

MAX_FILE_BYTES = MAX_DOCUMENT_BYTES
URL_TIMEOUT = httpx.Timeout(20.0, connect=10.0)


@dataclass
class ImportReport:
    imported: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    rejected: list[ContentError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.rejected

    def summary(self) -> str:
        return (
            f"imported {len(self.imported)}, updated {len(self.updated)}, "
            f"unchanged {len(self.unchanged)}, rejected {len(self.rejected)}"
        )


@dataclass(frozen=True)
class Source:
    """One body to import: its label for messages, its bytes, and whether it may be a list."""

    label: str
    data: bytes
    allow_list: bool = False


def is_url(target: str) -> bool:
    return target.startswith(("https://", "http://"))


def iter_sources(
    targets: Iterable[str], *, client: httpx.Client | None = None
) -> Iterator[Source | ContentError]:
    """Expand files, directories (``*.json``, recursively, sorted) and URLs into sources."""
    for target in targets:
        if is_url(target):
            try:
                yield fetch_url(target, client=client)
            except ContentError as exc:
                yield exc
            continue
        path = Path(target)
        if path.is_dir():
            files = sorted(
                p
                for p in path.rglob("*.json")
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not files:
                yield ContentError(str(path), ["directory contains no .json files"])
            for file in files:
                yield _read_file(file)
        elif path.is_file():
            yield _read_file(path)
        else:
            yield ContentError(target, ["no such file or directory"])


def _read_file(path: Path) -> Source | ContentError:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return ContentError(str(path), [f"is {size} bytes; the limit is {MAX_FILE_BYTES}"])
        return Source(str(path), path.read_bytes())
    except OSError as exc:
        return ContentError(str(path), [f"cannot be read: {exc.strerror or exc}"])


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def fetch_url(url: str, *, client: httpx.Client | None = None) -> Source:
    """GET one comparison or a JSON array of them; https only (plain http only to loopback)."""
    parsed = httpx.URL(url)
    if parsed.scheme != "https" and not (parsed.scheme == "http" and _loopback(parsed.host)):
        raise ContentError(url, ["only https:// URLs are fetched"])
    own_client = client is None
    http = client or httpx.Client(timeout=URL_TIMEOUT, follow_redirects=False)
    try:
        with http.stream("GET", url, headers={"Accept": "application/json"}) as response:
            if response.is_redirect:
                raise ContentError(
                    url, [f"redirects (HTTP {response.status_code}); give the final URL"]
                )
            if response.status_code != 200:
                raise ContentError(url, [f"answered HTTP {response.status_code}"])
            body = bytearray()
            for chunk in response.iter_bytes():
                body.extend(chunk)
                if len(body) > MAX_FILE_BYTES:
                    raise ContentError(url, [f"response is larger than {MAX_FILE_BYTES} bytes"])
    except httpx.HTTPError as exc:
        raise ContentError(url, [f"could not be fetched: {exc}"]) from None
    finally:
        if own_client:
            http.close()
    return Source(url, bytes(body), allow_list=True)


def import_sources(engine: Engine, sources: Iterable[Source | ContentError]) -> ImportReport:
    """Validate every source, then store each valid comparison in its own transaction."""
    report = ImportReport()
    candidates: list[tuple[str, ComparisonDoc]] = []
    for source in sources:
        if isinstance(source, ContentError):
            report.rejected.append(source)
            continue
        try:
            parsed = parse_comparisons(source.data, source.label, allow_list=source.allow_list)
        except ContentError as exc:
            report.rejected.append(exc)
            continue
        for label, result in parsed:
            if isinstance(result, ContentError):
                report.rejected.append(result)
            else:
                candidates.append((label, result))
    for label, doc in _refuse_conflicts(candidates, report):
        _store(engine, label, doc, report)
    return report


def _refuse_conflicts(
    candidates: list[tuple[str, ComparisonDoc]], report: ImportReport
) -> list[tuple[str, ComparisonDoc]]:
    by_slug: dict[str, list[tuple[str, ComparisonDoc]]] = {}
    for label, doc in candidates:
        by_slug.setdefault(doc.slug, []).append((label, doc))
    accepted: list[tuple[str, ComparisonDoc]] = []
    for slug, group in by_slug.items():
        if len({content_hash(doc) for _label, doc in group}) > 1:
            labels = ", ".join(label for label, _doc in group)
            for label, _doc in group:
                report.rejected.append(
                    ContentError(label, [f'slug: "{slug}" is defined differently in {labels}'])
                )
            continue
        accepted.append(group[0])
        for label, _doc in group[1:]:
            report.warnings.append(f"{label}: same comparison as {group[0][0]}; imported once")
    return accepted


def _store(engine: Engine, label: str, doc: ComparisonDoc, report: ImportReport) -> None:
    for attempt in range(2):
        try:
            with session_scope(engine) as session:
                outcome = upsert_comparison(session, doc, label)
            break
        except IntegrityError:
            # Another import inserted the same slug between our read and write: retry as update.
            if attempt:
                raise
    {
        UpsertOutcome.IMPORTED: report.imported,
        UpsertOutcome.UPDATED: report.updated,
        UpsertOutcome.UNCHANGED: report.unchanged,
    }[outcome].append(doc.slug)
    log.info("comparison %s %s from %s", doc.slug, outcome.value, label)


def import_paths(
    engine: Engine, targets: Iterable[str], *, client: httpx.Client | None = None
) -> ImportReport:
    targets = list(targets)
    if not targets:
        raise InputError("nothing to import: give files, directories or https:// URLs")
    return import_sources(engine, iter_sources(targets, client=client))
