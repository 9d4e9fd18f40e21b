"""Subscriber lists in and out as CSV: ``email,name,timezone,categories`` (+ ``status`` on export).

Import is built for lists of 100,000 rows and more, and streams: the file is read and
validated ``CHUNK_ROWS`` rows at a time (each bad row is reported with its line number and
every reason), and each chunk's addresses are looked up in bulk and its good new rows go in
through the database driver in bulk (one ``executemany`` on SQLite; ``COPY`` into a temporary
table and one ``INSERT ... SELECT`` on PostgreSQL), their audit entries with one
``INSERT ... SELECT``. Memory stays flat whatever the file's size: only the rows of one chunk
are held; the 8-byte hash and line of every address seen (to report a repeated address with
the line it repeats) are kept in a temporary table. Every chunk goes into the caller's one
transaction, so an error that stops the import (a byte that is not UTF-8 on line 300,000, a
database failure) leaves nothing half-imported once the caller rolls back; a bad row stops
nothing. Rules:

- UTF-8 only (a byte order mark is fine); anything else is refused naming the file.
- A header line is required; ``email`` is mandatory, ``name``, ``timezone``, ``categories``
  (``;``-separated, empty for all) and ``first_name`` (what the greeting uses; without it the
  greeting takes it from ``name``) are optional; unknown columns are refused.
- An address already subscribed (active or pending) is left as it is and counted as
  ``existing``; an unsubscribed, bounced, complained or suppressed one is never brought back
  and is counted as ``skipped_suppressed``.
- Without ``confirmed`` new subscribers are pending (the caller then sends confirmation
  emails); with it they are active, with the consent source recorded.

Export neutralizes spreadsheet formulas (a cell starting with ``= + - @``, tab or CR gets a
leading ``'``), and import strips that mark again, so export -> import round-trips.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import uuid
from array import array
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel import Session

from digest.db import utcnow
from digest.errors import DigestError, InputError
from subscribers.audit import Action
from subscribers.models import AuditEntry, Cause, Status, Subscriber, Suppression
from subscribers.normalize import (
    normalize_categories,
    normalize_email,
    normalize_name,
    validate_timezone,
)

COLUMNS = ("email", "name", "timezone", "categories", "first_name")
EXPORT_COLUMNS = ("email", "name", "timezone", "categories", "status")
CATEGORY_SEPARATOR = ";"
CHUNK_ROWS = 5_000  # rows validated, looked up and inserted together
_SQLITE_LOOKUP_CHUNK = 500
_PG_LOOKUP_CHUNK = 10_000
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_SUBSCRIBERS: sa.Table = Subscriber.__table__  # type: ignore[attr-defined]
_AUDIT_LOG: sa.Table = AuditEntry.__table__  # type: ignore[attr-defined]
_SUPPRESSIONS: sa.Table = Suppression.__table__  # type: ignore[attr-defined]
_VARYING_COLUMNS = ("email", "email_key", "name", "timezone", "categories", "first_name")
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
    first_name: str = ""


@dataclass(slots=True)
class ImportReport:
    """What an import did; ``imported_ids`` lists the new subscribers in file order."""

    source: str
    imported: int = 0
    existing: int = 0
    skipped_suppressed: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)
    # 8 bytes an id (a list of ints costs 36): a million new subscribers take 8 MB.
    imported_ids: array[int] = field(default_factory=lambda: array("q"))

    @property
    def ok(self) -> bool:
        return not self.rejected

    def summary(self) -> str:
        return (
            f"imported {self.imported}, existing {self.existing}, "
            f"skipped {self.skipped_suppressed}, rejected {len(self.rejected)}"
        )


# -- reading -------------------------------------------------------------------------------------


@contextmanager
def _open_text(source: CsvSource) -> Iterator[tuple[IO[str], str]]:
    """The source as text decoded while it is read (UTF-8, BOM skipped), and a label naming
    it; refuses UTF-16 at once and other encodings when the first bad byte is reached."""
    if isinstance(source, str | Path):
        label = str(source)
        try:
            binary: IO[bytes] = Path(source).open("rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            raise InputError(f"{label}: no such file") from None
        except OSError as exc:
            raise InputError(f"{label}: cannot read: {exc.strerror or exc}") from None
    else:
        label = str(getattr(source, "name", "<stream>"))
        binary = source if source.seekable() else io.BytesIO(source.read())
    try:
        start = binary.tell()
        if binary.read(2) in (b"\xff\xfe", b"\xfe\xff"):
            raise InputError(f"{label}: the file is UTF-16; save it as UTF-8 and import it again")
        binary.seek(start)
        text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
        try:
            yield text, label
        except UnicodeDecodeError:
            binary.seek(start)
            raise _not_utf8(binary, label) from None
        finally:
            text.detach()
    finally:
        if isinstance(source, str | Path):
            binary.close()


def _not_utf8(binary: IO[bytes], label: str) -> InputError:
    """The error naming the first byte of ``binary`` that is not UTF-8, and its line."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    while chunk := binary.read(1 << 16):
        try:
            decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            bad = exc.start - len(decoder.getstate()[0])
            bad = max(bad, 0)
            line += chunk.count(b"\n", 0, bad)
            return InputError(
                f"{label}: not UTF-8 text (byte 0x{chunk[bad]:02x} on line {line}); "
                "save the file as UTF-8 and import it again"
            )
        line += chunk.count(b"\n")
    return InputError(f"{label}: not UTF-8 text; save the file as UTF-8 and import it again")


def _records(text: IO[str]) -> Iterator[tuple[int, list[str] | csv.Error]]:
    """(first physical line, fields) of each non-blank record; a csv.Error in place of the
    fields of a record the csv module could not parse."""
    reader = csv.reader(text, strict=False)
    last_line = 0  # the last physical line of the previous record
    while True:
        try:
            for fields in reader:
                start, last_line = last_line + 1, reader.line_num
                # Blank: no cell with anything but whitespace (join + strip is the fast test).
                if "".join(fields).strip():
                    yield start, fields
            return
        except csv.Error as exc:
            if reader.line_num == last_line:  # no progress: give up on the rest
                yield last_line + 1, exc
                return
            start, last_line = last_line + 1, reader.line_num
            yield start, exc


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
    """Validate every row: (good rows, rejected rows, label of the source). No database access.

    Holds every row in memory; ``import_csv`` streams instead.
    """
    rows: list[ParsedRow] = []
    rejected: list[RejectedRow] = []
    with _open_text(source) as (text, label):
        for good, bad in _chunks_of_rows(_parse_rows(text, label), _MemorySeen()):
            rows.extend(good)
            rejected.extend(bad)
    return rows, rejected, label


class _SeenKeys(Protocol):
    """The addresses of the file met in earlier chunks: hash of the key -> first line."""

    def first_lines(self, hashes: Sequence[int]) -> dict[int, int]: ...

    def add(self, pairs: Sequence[tuple[int, int]]) -> None: ...


class _MemorySeen:
    def __init__(self) -> None:
        self._lines: dict[int, int] = {}

    def first_lines(self, hashes: Sequence[int]) -> dict[int, int]:
        return {h: self._lines[h] for h in hashes if h in self._lines}

    def add(self, pairs: Sequence[tuple[int, int]]) -> None:
        self._lines.update(pairs)


class _TableSeen:
    """``_SeenKeys`` in a temporary table of the import's transaction, so that a file of any
    size costs the same memory: (8-byte hash, line) per address, on the database's side."""

    def __init__(self, connection: sa.Connection) -> None:
        self._connection = connection
        self._postgresql = _is_postgresql(connection)
        self.name = f"digest_seen_{uuid.uuid4().hex[:16]}"
        on_commit = " ON COMMIT DROP" if self._postgresql else ""
        connection.exec_driver_sql(
            f"CREATE TEMPORARY TABLE {self.name} "
            f"(key_hash BIGINT PRIMARY KEY, line INTEGER NOT NULL){on_commit}"
        )

    def first_lines(self, hashes: Sequence[int]) -> dict[int, int]:
        found: dict[int, int] = {}
        if self._postgresql:
            found.update(
                self._connection.exec_driver_sql(
                    f"SELECT key_hash, line FROM {self.name} "  # noqa: S608
                    "WHERE key_hash = ANY(%(hashes)s::bigint[])",
                    {"hashes": list(hashes)},
                ).all()
            )
            return found
        for chunk in _chunks(hashes, _SQLITE_LOOKUP_CHUNK):
            marks = ", ".join("?" * len(chunk))
            found.update(
                self._connection.exec_driver_sql(
                    f"SELECT key_hash, line FROM {self.name} WHERE key_hash IN ({marks})",  # noqa: S608
                    tuple(chunk),
                ).all()
            )
        return found

    def add(self, pairs: Sequence[tuple[int, int]]) -> None:
        if not pairs:
            return
        mark = "%s" if self._postgresql else "?"
        self._connection.exec_driver_sql(
            f"INSERT INTO {self.name} (key_hash, line) VALUES ({mark}, {mark})",  # noqa: S608
            list(pairs),
        )

    def drop(self) -> None:
        self._connection.exec_driver_sql(f"DROP TABLE IF EXISTS {self.name}")


def _chunks_of_rows(
    items: Iterator[ParsedRow | RejectedRow], seen: _SeenKeys
) -> Iterator[tuple[list[ParsedRow], list[RejectedRow]]]:
    """``items`` in chunks of ``CHUNK_ROWS`` records: (good rows, rejected rows in line order),
    a repeated address rejected with the line it first appeared on (found by an 8-byte hash
    of its key: two different addresses of one file share one about once in 10**8 files of a
    million rows)."""
    while True:
        records = list(islice(items, CHUNK_ROWS))
        if not records:
            return
        candidates = [item for item in records if isinstance(item, ParsedRow)]
        rejected = [item for item in records if isinstance(item, RejectedRow)]
        hashes = [_key_hash(row.key) for row in candidates]
        earlier = seen.first_lines(hashes)
        good: list[ParsedRow] = []
        new: dict[int, int] = {}
        for row, hashed in zip(candidates, hashes, strict=True):
            first = earlier.get(hashed) or new.get(hashed)
            if first is not None:
                rejected.append(
                    RejectedRow(row.line, f"duplicate address {row.email}, first on line {first}")
                )
                continue
            new[hashed] = row.line
            good.append(row)
        seen.add(list(new.items()))
        rejected.sort(key=lambda row: row.line)
        yield good, rejected


def _key_hash(key: str) -> int:
    # Signed: it fits a BIGINT column.
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), signed=True)


def _parse_rows(text: IO[str], label: str) -> Iterator[ParsedRow | RejectedRow]:
    """Each record of ``text`` validated on its own, in file order (repeated addresses are
    ``_chunks_of_rows``'s business); ``InputError`` for a bad header."""
    records = _records(text)
    first = next(records, None)
    if first is None:
        raise InputError(f"{label}: the file is empty; expected a header line {','.join(COLUMNS)}")
    if isinstance(first[1], csv.Error):
        raise InputError(f"{label}: line {first[0]}: malformed header line: {first[1]}")
    columns = _header(first[1], label)
    # The same few timezones and category lists recur on most rows: validate each once.
    zones: dict[str, str] = {}
    category_lists: dict[str, list[str]] = {}
    width = len(columns)
    at = {name: index for index, name in enumerate(columns)}
    email_at = at["email"]
    # An optional column that is absent reads as an empty cell.
    name_at, zone_at, categories_at, first_at = (
        at.get(name) for name in ("name", "timezone", "categories", "first_name")
    )
    for line, fields in records:
        if isinstance(fields, csv.Error):
            yield RejectedRow(line, f"malformed CSV: {fields}")
            continue
        if len(fields) != width:
            yield RejectedRow(line, f"expected {width} fields, found {len(fields)}")
            continue
        problems: list[str] = []
        email = key = name = first_name = ""
        try:
            address = normalize_email(_unneutralize(fields[email_at]))
            email, key = address.email, address.key
        except DigestError as exc:
            problems.append(str(exc))
        try:
            name, first_name = (
                normalize_name(_unneutralize(fields[at] if at is not None else ""))
                for at in (name_at, first_at)
            )
        except DigestError as exc:
            problems.append(str(exc))
        raw_zone = fields[zone_at] if zone_at is not None else ""
        timezone = zones.get(raw_zone)
        if timezone is None:
            timezone = _cached(zones, raw_zone, validate_timezone, problems, "")
        raw_categories = fields[categories_at] if categories_at is not None else ""
        categories = category_lists.get(raw_categories)
        if categories is None:
            categories = _cached(
                category_lists, raw_categories, _parse_categories, problems, "bad category: "
            )
        if problems or timezone is None or categories is None:
            yield RejectedRow(line, "; ".join(problems))
            continue
        yield ParsedRow(line, email, key, name, timezone, categories, first_name)


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
    the file name). Raises ``InputError`` for a file that cannot be read to its end (encoding,
    header): the caller must then roll back, since chunks before it are in the transaction.
    Bad rows are reported in the result and the good ones are imported.
    """
    with _open_text(source) as (text, label):
        report = ImportReport(source=label)
        origin = (consent_source or f"import:{Path(label).name}")[:200]
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
        audit_constants: dict[str, Any] = {
            "at": now,
            "action": str(Action.IMPORT),
            "cause": str(Cause.IMPORT),
            "actor": actor[:200],
            "new_status": str(new_status),
            "detail": {"source": origin, "consent": "recorded" if confirmed else "pending"},
        }
        # The statements below run on the connection: flush pending changes first, as the
        # session does before a statement of its own (unless autoflush is off).
        if session.autoflush:
            session.flush()
        seen = _TableSeen(session.connection())
        for good, rejected in _chunks_of_rows(_parse_rows(text, label), seen):
            report.rejected.extend(rejected)
            _import_chunk(session, good, report, constants, audit_constants)
        seen.drop()
    return report


def _import_chunk(
    session: Session,
    rows: list[ParsedRow],
    report: ImportReport,
    constants: dict[str, Any],
    audit_constants: dict[str, Any],
) -> None:
    """Look up, insert and audit one chunk of valid rows; counts go into ``report``."""
    if not rows:
        return
    statuses, suppressed = _known_addresses(session, [row.key for row in rows])
    new_rows: list[ParsedRow] = []
    for row in rows:
        status = statuses.get(row.key)
        if row.key in suppressed or (status is not None and status not in _QUIET_STATUSES):
            report.skipped_suppressed += 1
        elif status is not None:
            report.existing += 1
        else:
            new_rows.append(row)
    if not new_rows:
        return
    inserted = _insert_subscribers(session, new_rows, constants)
    # A row another process inserted meanwhile is skipped by the INSERT: it exists now.
    report.existing += len(new_rows) - len(inserted)
    ids = [inserted[row.key] for row in new_rows if row.key in inserted]
    report.imported_ids.extend(ids)
    report.imported += len(ids)
    _insert_audit_entries(session, ids, audit_constants)


# The bulk statements below go to the database driver directly (``exec_driver_sql``, ``COPY``):
# SQLAlchemy would otherwise compile and convert every value of every row, which for 100,000
# rows costs many times the database work. Values that need converting (timestamps, JSON,
# booleans) are converted with their columns' own types, so what is stored is exactly what the
# ORM stores. Only table and column names from the models are interpolated into the SQL.


def _is_postgresql(connection: sa.Connection) -> bool:
    name = connection.dialect.name
    if name not in ("sqlite", "postgresql"):
        raise NotImplementedError(f"unsupported database dialect {name!r}")
    return name == "postgresql"


def _driver_value(connection: sa.Connection, column: sa.Column[Any], value: Any) -> Any:
    """``value`` as the driver receives it for ``column`` (the column type's bind processor)."""
    dialect = connection.dialect
    processor = column.type.dialect_impl(dialect).bind_processor(dialect)
    return value if processor is None else processor(value)


def _json_serializer(connection: sa.Connection) -> Callable[[Any], str]:
    """The function that turns a value into the JSON text a ``sa.JSON`` column stores."""
    dialect = connection.dialect
    if dialect.name == "postgresql":
        # The column's type hands psycopg the value, which serializes it with the dialect's
        # serializer (``json.dumps`` unless the engine was given another).
        serializer: Callable[[Any], str] = dialect._json_serializer or json.dumps
        return serializer
    processor = _SUBSCRIBERS.c.categories.type.dialect_impl(dialect).bind_processor(dialect)
    assert processor is not None, "the JSON type always serializes on SQLite"
    return processor


def _categories_writer(connection: sa.Connection) -> Callable[[list[str]], str]:
    """The function that turns a category list into the JSON text the ``categories`` column
    stores, serializing each distinct list once."""
    serialize = _json_serializer(connection)
    texts: dict[tuple[str, ...], str] = {}

    def write(categories: list[str]) -> str:
        wanted = tuple(categories)
        text = texts.get(wanted)
        if text is None:
            text = texts[wanted] = serialize(categories)
        return text

    return write


def _known_addresses(session: Session, keys: Sequence[str]) -> tuple[dict[str, str], set[str]]:
    """(email_key -> status of the subscribers, email_keys on the suppression list) of ``keys``."""
    connection = session.connection()
    statuses: dict[str, str] = {}
    suppressed: set[str] = set()
    subscribers, suppressions = _SUBSCRIBERS.name, _SUPPRESSIONS.name
    if _is_postgresql(connection):
        # Both tables in one statement, each chunk of keys sent once as an array.
        lookup = (
            "SELECT k.email_key, s.status, p.email_key IS NOT NULL "  # noqa: S608
            "FROM unnest(%(keys)s::text[]) AS k (email_key) "
            f"LEFT JOIN {subscribers} AS s ON s.email_key = k.email_key "
            f"LEFT JOIN {suppressions} AS p ON p.email_key = k.email_key "
            "WHERE s.email_key IS NOT NULL OR p.email_key IS NOT NULL"
        )
        for key_chunk in _chunks(keys, _PG_LOOKUP_CHUNK):
            for key, status, is_suppressed in connection.exec_driver_sql(
                lookup, {"keys": list(key_chunk)}
            ):
                if status is not None:
                    statuses[key] = status
                if is_suppressed:
                    suppressed.add(key)
        return statuses, suppressed
    # SQLite: plain IN lists, short enough for any limit on the number of parameters.
    for key_chunk in _chunks(keys, _SQLITE_LOOKUP_CHUNK):
        marks = ", ".join("?" * len(key_chunk))
        where = f"WHERE email_key IN ({marks})"
        parameters = tuple(key_chunk)
        statuses.update(
            connection.exec_driver_sql(
                f"SELECT email_key, status FROM {subscribers} {where}",  # noqa: S608
                parameters,
            ).all()
        )
        suppressed.update(
            connection.exec_driver_sql(
                f"SELECT email_key FROM {suppressions} {where}",  # noqa: S608
                parameters,
            ).scalars()
        )
    return statuses, suppressed


def _insert_subscribers(
    session: Session, rows: Sequence[ParsedRow], constants: dict[str, Any]
) -> dict[str, int]:
    """Insert ``rows`` in file order, skipping keys that exist by now; returns email_key -> new
    id. ``constants`` are the values of the other columns, the same for every row."""
    if not rows:
        return {}
    connection = session.connection()
    if _is_postgresql(connection):
        return _insert_subscribers_postgresql(connection, rows, constants)
    return _insert_subscribers_sqlite(connection, rows, constants)


def _insert_subscribers_sqlite(
    connection: sa.Connection, rows: Sequence[ParsedRow], constants: dict[str, Any]
) -> dict[str, int]:
    """One ``executemany`` of ``INSERT ... ON CONFLICT DO NOTHING``; the new ids are read back
    as the ids above the largest one before it."""
    table = _SUBSCRIBERS
    shared = tuple(
        _driver_value(connection, table.c[name], value) for name, value in constants.items()
    )
    names = [*_VARYING_COLUMNS, *constants]
    insert = (
        f"INSERT INTO {table.name} ({', '.join(names)}) "  # noqa: S608
        f"VALUES ({', '.join('?' * len(names))}) ON CONFLICT DO NOTHING"
    )
    categories = _categories_writer(connection)
    first, *rest = [
        (
            row.email,
            row.key,
            row.name,
            row.timezone,
            categories(row.categories),
            row.first_name,
            *shared,
        )
        for row in rows
    ]
    inserted: dict[str, int] = dict(
        connection.exec_driver_sql(f"{insert} RETURNING email_key, id", first).all()
    )
    # That INSERT holds the database's write lock until the transaction ends, so no other
    # connection adds a row from here on: every id above the largest one now is one of ours
    # (ids only grow, the table is AUTOINCREMENT).
    largest = connection.exec_driver_sql(f"SELECT max(id) FROM {table.name}").scalar_one()  # noqa: S608
    if rest:
        connection.exec_driver_sql(insert, rest)
        inserted.update(
            connection.exec_driver_sql(
                f"SELECT email_key, id FROM {table.name} WHERE id > ?",  # noqa: S608
                (largest or 0,),
            ).all()
        )
    return inserted


def _insert_subscribers_postgresql(
    connection: sa.Connection, rows: Sequence[ParsedRow], constants: dict[str, Any]
) -> dict[str, int]:
    """``COPY`` into a temporary table, then one ``INSERT ... SELECT ... ON CONFLICT DO
    NOTHING RETURNING`` in file order, the constants bound once with their columns' types."""
    table = _SUBSCRIBERS
    staging = sa.Table(
        f"digest_import_{uuid.uuid4().hex[:16]}",
        sa.MetaData(),
        sa.Column("line", sa.Integer, nullable=False),
        sa.Column("email", sa.Text, nullable=False),
        sa.Column("email_key", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("timezone", sa.Text, nullable=False),
        sa.Column("categories", sa.JSON, nullable=False),
        sa.Column("first_name", sa.Text, nullable=False),
        prefixes=["TEMPORARY"],
        postgresql_on_commit="DROP",
    )
    staging.create(connection)
    driver_connection = connection.connection.driver_connection
    assert driver_connection is not None
    columns = ", ".join(column.name for column in staging.c)
    with (
        driver_connection.cursor() as cursor,
        cursor.copy(f"COPY {staging.name} ({columns}) FROM STDIN") as copy,
    ):
        categories = _categories_writer(connection)
        for line, row in enumerate(rows):
            copy.write_row(
                (
                    line,
                    row.email,
                    row.key,
                    row.name,
                    row.timezone,
                    categories(row.categories),
                    row.first_name,
                )
            )
    statement = (
        postgresql.insert(table)
        .from_select(
            [*_VARYING_COLUMNS, *constants],
            sa.select(
                *(staging.c[name] for name in _VARYING_COLUMNS),
                *(sa.literal(value, table.c[name].type) for name, value in constants.items()),
            ).order_by(staging.c.line),
        )
        .on_conflict_do_nothing()
        .returning(table.c.email_key, table.c.id)
    )
    inserted: dict[str, int] = dict(connection.execute(statement).all())
    staging.drop(connection)
    return inserted


def _insert_audit_entries(session: Session, ids: Sequence[int], constants: dict[str, Any]) -> None:
    """One audit entry per subscriber in ``ids`` (with its email_key), in id order, the other
    columns from ``constants``; built by the database from the subscriber rows."""
    if not ids:
        return
    connection = session.connection()
    table = _SUBSCRIBERS
    ordered = sorted(ids)
    selections: list[sa.ColumnElement[bool]]
    if ordered[-1] - ordered[0] + 1 == len(ordered):
        # The usual case: the ids are a range, every id in it is one of ``ids``.
        selections = [table.c.id.between(ordered[0], ordered[-1])]
    elif _is_postgresql(connection):
        selections = [table.c.id == sa.any_(sa.literal(ordered, postgresql.ARRAY(sa.Integer)))]
    else:
        selections = [table.c.id.in_(chunk) for chunk in _chunks(ordered, _SQLITE_LOOKUP_CHUNK)]
    for selection in selections:
        connection.execute(
            _AUDIT_LOG.insert().from_select(
                ["subscriber_id", "email_key", *constants],
                sa.select(
                    table.c.id,
                    table.c.email_key,
                    *(
                        sa.literal(value, _AUDIT_LOG.c[name].type)
                        for name, value in constants.items()
                    ),
                )
                .where(selection)
                .order_by(table.c.id),
            )
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
