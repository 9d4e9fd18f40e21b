"""Subscriber lists in and out as CSV: ``email,name,timezone,categories`` (+ ``status`` on export).

Import is built for lists of 100,000 rows and more: every row is validated in Python first
(each bad row is reported with its line number and every reason), the addresses already known
are looked up in bulk, and the good new rows go in with multi-row INSERTs (their audit entries
with one INSERT ... SELECT per chunk), all in the caller's one transaction. Rules:

- UTF-8 only (a byte order mark is fine); anything else is refused naming the file.
- A header line is required; ``email`` is mandatory, ``name``, ``timezone`` and ``categories``
  (``;``-separated, empty for all) are optional; unknown columns are refused.
- An address already subscribed (active or pending) is left as it is and counted as
  ``existing``; an unsubscribed, bounced, complained or suppressed one is never brought back
  and is counted as ``skipped_suppressed``.
- Without ``confirmed`` new subscribers are pending (the caller then sends confirmation
  emails); with it they are active, with the consent source recorded.

Export neutralizes spreadsheet formulas (a cell starting with ``= + - @``, tab or CR gets a
leading ``'``), and import strips that mark again, so export -> import round-trips.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import sqlalchemy as sa
from sqlmodel import Session, col, select

from digest.db import UTCDateTime, utcnow
from digest.errors import DigestError, InputError
from subscribers.audit import Action
from subscribers.models import AuditEntry, Cause, Status, Subscriber, Suppression
from subscribers.normalize import (
    normalize_categories,
    normalize_email,
    normalize_name,
    validate_timezone,
)
from subscribers.suppression import insert_ignore

COLUMNS = ("email", "name", "timezone", "categories")
EXPORT_COLUMNS = (*COLUMNS, "status")
CATEGORY_SEPARATOR = ";"
_LOOKUP_CHUNK = 500
_INSERT_CHUNK = 1000
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_SUBSCRIBERS: sa.Table = Subscriber.__table__  # type: ignore[attr-defined]
_AUDIT_LOG: sa.Table = AuditEntry.__table__  # type: ignore[attr-defined]
_VARYING_COLUMNS = ("email", "email_key", "name", "timezone", "categories")
_QUIET_STATUSES = frozenset({Status.ACTIVE, Status.PENDING})

_T = TypeVar("_T")
_V = TypeVar("_V")
CsvSource = str | Path | IO[bytes]
CsvDestination = str | Path | IO[str]


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """A row that was not imported: its physical line number in the file and why."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True, slots=True)
class ParsedRow:
    """A valid row, normalized."""

    line: int
    email: str
    key: str
    name: str
    timezone: str
    categories: list[str]


@dataclass(slots=True)
class ImportReport:
    """What an import did; ``imported_ids`` lists the new subscribers in file order."""

    source: str
    imported: int = 0
    existing: int = 0
    skipped_suppressed: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)
    imported_ids: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.rejected

    def summary(self) -> str:
        return (
            f"imported {self.imported}, existing {self.existing}, "
            f"skipped {self.skipped_suppressed}, rejected {len(self.rejected)}"
        )


# -- reading -------------------------------------------------------------------------------------


def _read_text(source: CsvSource) -> tuple[str, str]:
    """The file's text and a label naming it; refuses anything but UTF-8."""
    if isinstance(source, str | Path):
        label = str(source)
        try:
            data = Path(source).read_bytes()
        except FileNotFoundError:
            raise InputError(f"{label}: no such file") from None
        except OSError as exc:
            raise InputError(f"{label}: cannot read: {exc.strerror or exc}") from None
    else:
        label = str(getattr(source, "name", "<stream>"))
        data = source.read()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError(f"{label}: the file is UTF-16; save it as UTF-8 and import it again")
    try:
        return data.decode("utf-8-sig"), label
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(
            f"{label}: not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); "
            "save the file as UTF-8 and import it again"
        ) from None


def _records(text: str) -> Iterator[tuple[int, list[str] | csv.Error]]:
    """(first physical line, fields) of each non-blank record; a csv.Error in place of the
    fields of a record the csv module could not parse."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=False)
    last_line = 0
    while True:
        start = last_line + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if reader.line_num == last_line:  # no progress: give up on the rest
                yield start, exc
                return
            last_line = reader.line_num
            yield start, exc
            continue
        last_line = reader.line_num
        if fields and any(cell.strip() for cell in fields):
            yield start, fields


def _unneutralize(cell: str) -> str:
    if len(cell) > 1 and cell[0] == "'" and cell[1] in "=+-@\t\r":
        return cell[1:]
    return cell


def _parse_categories(raw: str) -> list[str]:
    raw = _unneutralize(raw).strip()
    return normalize_categories(raw.split(CATEGORY_SEPARATOR)) if raw else []


def _cached(
    cache: dict[str, _V],
    raw: str,
    parse: Callable[[str], _V],
    problems: list[str],
    prefix: str,
) -> _V | None:
    """``parse(raw)`` remembered in ``cache``; on failure the reason joins ``problems``."""
    try:
        value = cache[raw] = parse(raw)
    except DigestError as exc:
        problems.append(f"{prefix}{exc}")
        return None
    return value


def _header(fields: list[str], label: str) -> list[str]:
    names = [cell.strip().lower() for cell in fields]
    expected = ",".join(COLUMNS)
    unknown = [name for name in names if name not in COLUMNS]
    if unknown:
        shown = ", ".join(repr(name) for name in unknown)
        raise InputError(
            f"{label}: unknown column(s) {shown} in the header line; expected {expected}"
        )
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise InputError(f"{label}: column(s) {', '.join(duplicated)} appear twice in the header")
    if "email" not in names:
        raise InputError(
            f"{label}: the header line has no 'email' column; the first line must name the "
            f"columns, e.g. {expected}"
        )
    return names


def parse_csv(source: CsvSource) -> tuple[list[ParsedRow], list[RejectedRow], str]:
    """Validate every row: (good rows, rejected rows, label of the source). No database access."""
    text, label = _read_text(source)
    records = _records(text)
    first = next(records, None)
    if first is None:
        raise InputError(f"{label}: the file is empty; expected a header line {','.join(COLUMNS)}")
    if isinstance(first[1], csv.Error):
        raise InputError(f"{label}: line {first[0]}: malformed header line: {first[1]}")
    columns = _header(first[1], label)
    rows: list[ParsedRow] = []
    rejected: list[RejectedRow] = []
    first_line_of: dict[str, int] = {}
    # The same few timezones and category lists recur on most rows: validate each once.
    zones: dict[str, str] = {}
    category_lists: dict[str, list[str]] = {}
    for line, fields in records:
        if isinstance(fields, csv.Error):
            rejected.append(RejectedRow(line, f"malformed CSV: {fields}"))
            continue
        if len(fields) != len(columns):
            rejected.append(
                RejectedRow(line, f"expected {len(columns)} fields, found {len(fields)}")
            )
            continue
        values = dict(zip(columns, fields, strict=True))
        problems: list[str] = []
        email = key = name = ""
        try:
            address = normalize_email(_unneutralize(values["email"]))
            email, key = address.email, address.key
        except DigestError as exc:
            problems.append(str(exc))
        try:
            name = normalize_name(_unneutralize(values.get("name", "")))
        except DigestError as exc:
            problems.append(str(exc))
        timezone = zones.get(values.get("timezone", ""))
        if timezone is None:
            timezone = _cached(zones, values.get("timezone", ""), validate_timezone, problems, "")
        raw_categories = values.get("categories", "")
        categories = category_lists.get(raw_categories)
        if categories is None:
            categories = _cached(
                category_lists, raw_categories, _parse_categories, problems, "bad category: "
            )
        if not problems and key in first_line_of:
            problems.append(f"duplicate address {email}, first on line {first_line_of[key]}")
        if problems or timezone is None or categories is None:
            rejected.append(RejectedRow(line, "; ".join(problems)))
            continue
        first_line_of[key] = line
        rows.append(ParsedRow(line, email, key, name, timezone, categories))
    return rows, rejected, label


# -- importing -----------------------------------------------------------------------------------


def _chunks(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def import_csv(
    session: Session,
    source: CsvSource,
    *,
    confirmed: bool = False,
    actor: str = "cli",
    consent_source: str | None = None,
) -> ImportReport:
    """Import a subscriber CSV into the session's transaction (the caller commits).

    ``consent_source`` is stored as each new subscriber's ``source`` (default: ``import:`` and
    the file name). Raises ``InputError`` for a file that cannot be read at all (encoding,
    header); bad rows are reported in the result and the good ones are imported.
    """
    rows, rejected, label = parse_csv(source)
    report = ImportReport(source=label, rejected=rejected)
    origin = (consent_source or f"import:{Path(label).name}")[:200]
    keys = [row.key for row in rows]

    statuses: dict[str, str] = {}
    suppressed: set[str] = set()
    for key_chunk in _chunks(keys, _LOOKUP_CHUNK):
        statuses.update(
            session.exec(
                select(Subscriber.email_key, Subscriber.status).where(
                    col(Subscriber.email_key).in_(key_chunk)
                )
            ).all()
        )
        suppressed.update(
            session.exec(
                select(Suppression.email_key).where(col(Suppression.email_key).in_(key_chunk))
            ).all()
        )

    new_rows: list[ParsedRow] = []
    for row in rows:
        status = statuses.get(row.key)
        if row.key in suppressed or (status is not None and status not in _QUIET_STATUSES):
            report.skipped_suppressed += 1
        elif status is not None:
            report.existing += 1
        else:
            new_rows.append(row)

    now = utcnow()
    new_status = Status.ACTIVE if confirmed else Status.PENDING
    constants: dict[str, Any] = {
        "status": str(new_status),
        "paused": False,
        "source": origin,
        "created_at": now,
        "updated_at": now,
        "confirmed_at": now if confirmed else None,
    }
    audit_rows = _audit_from_rows(
        now=now,
        actor=actor,
        new_status=new_status,
        detail={"source": origin, "consent": "recorded" if confirmed else "pending"},
    )
    for chunk in _chunks(new_rows, _INSERT_CHUNK):
        inserted = _insert_subscribers(session, chunk, constants)
        # A row another process inserted meanwhile is skipped by the INSERT: it exists now.
        report.existing += len(chunk) - len(inserted)
        ids = [inserted[row.key] for row in chunk if row.key in inserted]
        report.imported += len(ids)
        report.imported_ids.extend(ids)
        if ids:
            session.exec(audit_rows, params={"ids": ids})
    return report


class _DriverValue(sa.types.UserDefinedType[Any]):
    """A bind parameter whose value is already in the database driver's form.

    SQLAlchemy converts every value of every row on its way to the driver (timestamps to
    strings on SQLite, lists to JSON, ...). For 100,000 rows that costs more than the INSERT;
    ``_insert_subscribers`` converts the values shared by all rows once, with the columns' own
    processors, and binds them with this pass-through type.
    """

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:  # pragma: no cover - never used in DDL
        return "DRIVER_VALUE"


def _insert_subscribers(
    session: Session, rows: Sequence[ParsedRow], constants: dict[str, Any]
) -> dict[str, int]:
    """Insert ``rows`` (skipping keys that exist by now); returns email_key -> new id."""
    table = _SUBSCRIBERS
    dialect = session.get_bind().dialect
    columns = [*_VARYING_COLUMNS, *constants]
    processors = {
        name: table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns
    }

    def driver(name: str, value: Any) -> Any:
        processor = processors[name]
        return value if processor is None else processor(value)

    shared = {name: driver(name, value) for name, value in constants.items()}
    categories: dict[tuple[str, ...], Any] = {}
    values = []
    for row in rows:
        wanted = tuple(row.categories)
        if wanted not in categories:
            categories[wanted] = driver("categories", row.categories)
        values.append(
            {
                "email": driver("email", row.email),
                "email_key": driver("email_key", row.key),
                "name": driver("name", row.name),
                "timezone": driver("timezone", row.timezone),
                "categories": categories[wanted],
                **shared,
            }
        )
    statement = (
        insert_ignore(session, table)
        .values({name: sa.bindparam(name, type_=_DriverValue()) for name in columns})
        .returning(table.c.id, table.c.email_key)
    )
    return {key: id_ for id_, key in session.exec(statement, params=values).all()}


def _audit_from_rows(
    *, now: dt.datetime, actor: str, new_status: Status, detail: dict[str, Any]
) -> sa.Insert:
    """An INSERT of one audit entry per subscriber id in the ``ids`` parameter, built by the
    database from the subscriber rows themselves."""
    subscribers = _SUBSCRIBERS
    return _AUDIT_LOG.insert().from_select(
        ["subscriber_id", "email_key", "at", "action", "cause", "actor", "new_status", "detail"],
        sa.select(
            subscribers.c.id,
            subscribers.c.email_key,
            sa.literal(now, UTCDateTime),
            sa.literal(str(Action.IMPORT)),
            sa.literal(str(Cause.IMPORT)),
            sa.literal(actor[:200]),
            sa.literal(str(new_status)),
            sa.literal(detail, sa.JSON),
        ).where(subscribers.c.id.in_(sa.bindparam("ids", expanding=True))),
    )


# -- exporting -----------------------------------------------------------------------------------


def neutralize(cell: str) -> str:
    """A cell that a spreadsheet will show as text, never evaluate as a formula."""
    return f"'{cell}" if cell.startswith(_FORMULA_STARTS) else cell


def export_csv(
    session: Session, destination: CsvDestination, *, status: Status | None = None
) -> int:
    """Write every subscriber (or those with ``status``) as UTF-8 CSV; returns the row count."""
    if isinstance(destination, str | Path):
        with Path(destination).open("w", encoding="utf-8", newline="") as handle:
            return _write(session, handle, status)
    return _write(session, destination, status)


def _write(session: Session, handle: IO[str], status: Status | None) -> int:
    writer = csv.writer(handle, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    table = _SUBSCRIBERS
    statement = sa.select(
        table.c.email, table.c.name, table.c.timezone, table.c.categories, table.c.status
    ).order_by(table.c.id)
    if status is not None:
        statement = statement.where(table.c.status == str(status))
    count = 0
    rows = session.connection().execute(statement.execution_options(yield_per=2000))
    for email, name, timezone, categories, row_status in rows:
        writer.writerow(
            [
                neutralize(email),
                neutralize(name),
                neutralize(timezone),
                neutralize(CATEGORY_SEPARATOR.join(categories)),
                str(row_status),
            ]
        )
        count += 1
    return count
