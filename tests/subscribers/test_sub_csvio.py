"""CSV import and export: validation with line numbers, encodings, bulk behaviour, round trips."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from digest.db import utcnow
from digest.errors import InputError
from subscribers import audit, csvio, lifecycle, suppression
from subscribers.csvio import export_csv, import_csv, neutralize, parse_csv
from subscribers.models import AuditEntry, Cause, Status, Subscriber

HEADER = "email,name,timezone,categories\n"


def _write(tmp_path: Path, text: str, name: str = "list.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_sample_file_imports_every_row(session: Session, fixtures_dir: Path) -> None:
    report = import_csv(session, fixtures_dir / "subscribers.csv", actor="cli")
    session.commit()
    assert report.summary() == "imported 40, existing 0, skipped 0, rejected 0"
    assert report.ok and len(report.imported_ids) == 40
    rows = {s.email: s for s in session.exec(select(Subscriber)).all()}
    assert len(rows) == 40
    assert rows["astrid.lindqvist@example.com"].name == "Lindqvist, Astrid"  # quoted comma
    assert rows["tanaka.haruto@example.net"].name == "田中 陽翔"
    assert rows["zoe.fontaine@example.org"].name == "Zoë Fontaine"
    assert rows["sam+digest@example.net"].timezone == "America/Los_Angeles"
    assert rows["ada.berger@example.com"].categories == ["Developer Tools", "Data & Analytics"]
    assert rows["liam.oconnor@example.net"].categories == []  # empty: all categories
    assert {s.status for s in rows.values()} == {Status.PENDING}
    assert {s.source for s in rows.values()} == {"import:subscribers.csv"}
    entries = session.exec(select(AuditEntry)).all()
    assert len(entries) == 40
    assert {(e.action, e.cause, e.actor, e.new_status) for e in entries} == {
        ("import", "import", "cli", "pending")
    }
    assert {e.subscriber_id for e in entries} == set(report.imported_ids)


def test_confirmed_import_is_active_with_its_consent_source(
    session: Session, fixtures_dir: Path
) -> None:
    report = import_csv(
        session, fixtures_dir / "subscribers.csv", confirmed=True, consent_source="crm-2026-03"
    )
    session.commit()
    assert report.imported == 40
    statuses = session.exec(select(Subscriber.status, Subscriber.source)).all()
    assert set(statuses) == {(Status.ACTIVE, "crm-2026-03")}
    assert all(s.confirmed_at is not None for s in session.exec(select(Subscriber)).all())
    [entry] = audit.trail(session, "ops@example.com")
    assert entry.detail == {"source": "crm-2026-03", "consent": "recorded"}


def test_every_bad_row_is_reported_with_its_line(session: Session, tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        HEADER
        + "ada@example.com,Ada,UTC,\n"  # line 2: fine
        + "not-an-address,Bob,UTC,\n"  # line 3
        + '"carol@example.com","Carol\nSecond line",UTC,\n'  # lines 4-5: fine, two lines
        + "ADA@example.com,Ada again,UTC,\n"  # line 6: duplicate of line 2
        + "dan@example.com,Dan,Mars/Olympus,\n"  # line 7
        + "erin@example.com,Erin,UTC,"
        + "x" * 61
        + "\n"  # line 8
        + "frank@example.com,Frank,UTC\n"  # line 9: three fields
        + "\n"  # line 10: blank, ignored
        + "grace@example.com,Grace,Europe/Paris,A;;B\n"  # line 11: empty category
        + "bad@@x,Hank,Nowhere/Town,\n",  # line 12: two problems
    )
    report = import_csv(session, path)
    session.commit()
    assert [r.line for r in report.rejected] == [3, 6, 7, 8, 9, 11, 12]
    reasons = {r.line: r.reason for r in report.rejected}
    assert reasons[3].startswith("invalid address")
    assert "duplicate" in reasons[6] and "line 2" in reasons[6]
    assert "unknown timezone 'Mars/Olympus'" in reasons[7]
    assert reasons[8].startswith("bad category") and "60" in reasons[8]
    assert reasons[9] == "expected 4 fields, found 3"
    assert reasons[11].startswith("bad category: empty")
    assert "invalid address" in reasons[12] and "unknown timezone" in reasons[12]
    assert str(report.rejected[0]) == f"line 3: {reasons[3]}"
    assert report.summary() == "imported 2, existing 0, skipped 0, rejected 7"
    names = dict(session.exec(select(Subscriber.email, Subscriber.name)).all())
    assert names == {"ada@example.com": "Ada", "carol@example.com": "Carol Second line"}


def test_zone_directories_and_huge_zones_are_bad_rows(session: Session, tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        HEADER
        + "ada@example.com,Ada,Europe,\n"  # a directory of the zone database
        + "bob@example.com,Bob,Europe/Berlin,\n"
        + "cy@example.com,Cy,"
        + "z" * 10_000
        + ",\n"
        + "di@example.com,Di,America,\n",
    )
    report = import_csv(session, path)
    session.commit()
    assert [r.line for r in report.rejected] == [2, 4, 5]
    assert all("unknown timezone" in r.reason and len(r.reason) < 200 for r in report.rejected)
    assert report.imported == 1
    assert session.exec(select(Subscriber.email)).all() == ["bob@example.com"]


def test_byte_order_mark_is_accepted(session: Session, tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (HEADER + "ada@example.com,Zoë,UTC,\r\n").encode())
    report = import_csv(session, path)
    assert report.imported == 1 and report.ok


def test_other_encodings_are_refused_naming_the_file(session: Session, tmp_path: Path) -> None:
    latin = _write(tmp_path, HEADER + "zoe@example.com,Zoë,UTC,\n", "latin.csv", "latin-1")
    with pytest.raises(InputError, match=r"latin\.csv: not UTF-8 text .* line 2"):
        import_csv(session, latin)
    utf16 = _write(tmp_path, HEADER, "wide.csv", "utf-16")
    with pytest.raises(InputError, match=r"wide\.csv: the file is UTF-16"):
        import_csv(session, utf16)
    assert session.exec(select(Subscriber)).all() == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("\n\n", "is empty"),
        ("ada@example.com,Ada,UTC,\n", "unknown column"),
        ("email,name,phone\n", "unknown column(s) 'phone'"),
        ("name,timezone\nAda,UTC\n", "no 'email' column"),
        ("email,email\n", "appear twice"),
    ],
)
def test_header_problems_are_refused(
    session: Session, tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(InputError, match=r"list\.csv: .*" + re.escape(message)):
        import_csv(session, _write(tmp_path, text))


def test_header_may_name_fewer_columns_in_any_order(session: Session, tmp_path: Path) -> None:
    path = _write(tmp_path, " Timezone , EMAIL\nAsia/Tokyo,yuki@example.org\n")
    report = import_csv(session, path)
    session.commit()
    assert report.imported == 1
    subscriber = lifecycle.get_by_email(session, "yuki@example.org")
    assert subscriber is not None and subscriber.timezone == "Asia/Tokyo"


def test_missing_file_is_an_input_error(session: Session, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        import_csv(session, tmp_path / "absent.csv")


def test_reimport_never_reactivates(session: Session, tmp_path: Path) -> None:
    for email in ("active", "pending", "gone", "bounced", "complained"):
        lifecycle.signup(session, f"{email}@example.com", confirmed=email != "pending")
    gone = lifecycle.get_by_email(session, "gone@example.com")
    assert gone is not None and gone.id is not None
    lifecycle.unsubscribe(session, gone.id, cause=Cause.LINK, actor="web")
    lifecycle.record_bounce(session, "bounced@example.com", hard=True, actor="webhook:x")
    lifecycle.record_complaint(session, "complained@example.com", actor="webhook:x")
    lifecycle.record_bounce(session, "no-row@example.com", hard=True, actor="webhook:x")
    suppression.suppress(session, "blocked@example.com", actor="cli")
    session.commit()
    before = len(session.exec(select(AuditEntry)).all())

    rows = ["active", "pending", "gone", "bounced", "complained", "no-row", "blocked", "new"]
    path = _write(tmp_path, "email\n" + "".join(f"{r.upper()}@example.com\n" for r in rows))
    for confirmed in (False, True):
        report = import_csv(session, path, confirmed=confirmed)
        session.commit()
        expected_new = 0 if confirmed else 1
        assert (report.imported, report.existing, report.skipped_suppressed) == (
            expected_new,
            2 + (1 - expected_new),
            5,
        )
    statuses = dict(session.exec(select(Subscriber.email_key, Subscriber.status)).all())
    assert statuses == {
        "active@example.com": "active",
        "pending@example.com": "pending",
        "gone@example.com": "unsubscribed",
        "bounced@example.com": "bounced",
        "complained@example.com": "complained",
        "new@example.com": "pending",
    }
    assert len(session.exec(select(AuditEntry)).all()) == before + 1  # only the new row


def test_import_uses_bulk_statements(session: Session, engine: Engine, tmp_path: Path) -> None:
    lines = [f"reader{i}@example.com,Reader {i},UTC,A;B" for i in range(2_500)]
    path = _write(tmp_path, HEADER + "\n".join(lines) + "\n")
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        report = import_csv(session, path)
        session.commit()
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert report.imported == 2_500
    # Lookups in chunks, bulk inserts: a handful of statements, not one per row.
    assert len(statements) < 40, len(statements)
    assert session.exec(select(sa.func.count()).select_from(AuditEntry)).one() == 2_500


def test_neutralize() -> None:
    for cell in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert neutralize(cell) == "'" + cell
    for cell in ("Ada", "", "'quoted", "1-2", "a=b"):
        assert neutralize(cell) == cell


def test_export_neutralizes_formulas_and_round_trips(session: Session, tmp_path: Path) -> None:
    dangerous = {
        "a@example.com": '=HYPERLINK("http://evil.example","click")',
        "b@example.com": "+49 30 1234",
        "c@example.com": "-Ada-",
        "d@example.com": "@admin",
        "-e@example.com": "Eve",
    }
    for email, name in dangerous.items():
        lifecycle.signup(session, email, name=name, categories=["=cmd|' /C calc'!A0"])
    session.commit()
    target = tmp_path / "out.csv"
    assert export_csv(session, target) == 5
    with target.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["email", "name", "timezone", "categories", "status"]
    for row in rows[1:]:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), row
    by_email = {row[0]: row for row in rows[1:]}
    assert by_email["a@example.com"][1] == "'" + dangerous["a@example.com"]
    assert by_email["'-e@example.com"][1] == "Eve"
    assert by_email["a@example.com"][3] == "'=cmd|' /C calc'!A0"

    # Importing the export restores the original values.
    parsed, rejected, _label = parse_csv(io.BytesIO(_export_as_import(target)))
    assert rejected == []
    assert {row.email: row.name for row in parsed} == dangerous
    assert {tuple(row.categories) for row in parsed} == {("=cmd|' /C calc'!A0",)}


def _export_as_import(path: Path) -> bytes:
    """The export without its status column, as an import file."""
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    out = io.StringIO()
    csv.writer(out).writerows([row[:4] for row in rows])
    return out.getvalue().encode()


def test_hundred_rows_round_trip(engine: Engine, session: Session, tmp_path: Path) -> None:
    zones = ["UTC", "Europe/Berlin", "Asia/Kolkata", "America/Sao_Paulo"]
    source = [
        (
            f"reader.{i}+tag@Example{i % 3}.com",
            f"Reader, Nº {i} “quoted”",
            zones[i % 4],
            ["Developer Tools", "Image & Video"][: i % 3],
        )
        for i in range(100)
    ]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["email", "name", "timezone", "categories"])
    writer.writerows([(e, n, z, ";".join(c)) for e, n, z, c in source])
    path = _write(tmp_path, out.getvalue(), "hundred.csv")
    assert import_csv(session, path, confirmed=True).imported == 100
    session.commit()

    exported = io.StringIO()
    assert export_csv(session, exported) == 100
    rows = list(csv.DictReader(io.StringIO(exported.getvalue())))
    assert [
        (
            r["email"],
            r["name"],
            r["timezone"],
            r["categories"].split(";") if r["categories"] else [],
        )
        for r in rows
    ] == [(e.replace("@Example", "@example"), n, z, c) for e, n, z, c in source]
    assert {r["status"] for r in rows} == {"active"}

    # Only one status, and a second import of the same list changes nothing.
    assert export_csv(session, io.StringIO(), status=Status.PENDING) == 0
    again = import_csv(session, path)
    assert (again.imported, again.existing) == (0, 100)
    count = session.exec(select(sa.func.count()).select_from(Subscriber)).one()
    assert count == 100
    ordered = session.exec(select(Subscriber.email).order_by(col(Subscriber.id))).all()
    assert ordered[0] == "reader.0+tag@example0.com"


def test_concurrently_inserted_rows_count_as_existing(session: Session) -> None:
    # A row that appears between the lookup and the INSERT is skipped, not an error.
    rows = [
        csvio.ParsedRow(2, "ada@example.com", "ada@example.com", "Ada", "UTC", []),
        csvio.ParsedRow(3, "bob@example.com", "bob@example.com", "Bob", "UTC", []),
    ]
    lifecycle.signup(session, "ada@example.com")
    inserted = csvio._insert_subscribers(
        session,
        rows,
        {
            "status": "pending",
            "paused": False,
            "source": "test",
            "created_at": utcnow(),
            "updated_at": utcnow(),
            "confirmed_at": None,
        },
    )
    assert list(inserted) == ["bob@example.com"]


def _raw(session: Session, subscriber_id: int) -> tuple[object, ...]:
    """The stored form of a subscriber's typed columns, as text, straight from the database."""
    table = Subscriber.__table__  # type: ignore[attr-defined]
    columns = ("categories", "status", "paused", "created_at", "updated_at", "confirmed_at")
    row = (
        session.connection()
        .execute(
            sa.select(*(sa.cast(table.c[name], sa.Text) for name in columns)).where(
                table.c.id == subscriber_id
            )
        )
        .one()
    )
    return tuple(row)


def test_bulk_import_reads_back_through_the_orm(session: Session, tmp_path: Path) -> None:
    categories = [
        [],
        ["Developer Tools"],
        ["Data & Analytics", "Café ☕"],
        ['Say "hi"', "back\\slash", "comma, inside"],
    ]
    lines = [
        ",".join(
            [
                f"reader.{i}@Example{i % 7}.COM",
                f'"Reader, Nº {i}"',
                ["UTC", "Europe/Berlin", "Asia/Kolkata"][i % 3],
                '"' + ";".join(categories[i % 4]).replace('"', '""') + '"',
            ]
        )
        for i in range(3_000)
    ]
    lifecycle.signup(session, "reader.5@example5.com", confirmed=True)  # already active
    suppression.suppress(session, "reader.6@example6.com", actor="cli")
    session.add(Subscriber(email="reader.7@example0.com", email_key="reader.7@example0.com"))
    path = _write(tmp_path, HEADER + "\n".join(lines) + "\n", "bulk.csv")
    before = utcnow()
    report = import_csv(session, path, confirmed=True, actor="crm", consent_source="crm-sync")
    session.commit()
    after = utcnow()
    assert report.summary() == "imported 2997, existing 2, skipped 1, rejected 0"

    imported = {
        s.id: s
        for s in session.exec(
            select(Subscriber)
            .where(col(Subscriber.source) == "crm-sync")
            .order_by(col(Subscriber.id))
        )
    }
    assert list(imported) == list(report.imported_ids) == sorted(report.imported_ids)
    expected = [i for i in range(3_000) if i not in (5, 6, 7)]
    for i, subscriber_id in zip(expected, report.imported_ids, strict=True):
        subscriber = imported[subscriber_id]
        assert subscriber.email == f"reader.{i}@example{i % 7}.com"
        assert subscriber.email_key == subscriber.email
        assert subscriber.name == f"Reader, Nº {i}"
        assert subscriber.timezone == ["UTC", "Europe/Berlin", "Asia/Kolkata"][i % 3]
        assert subscriber.categories == categories[i % 4]
        assert subscriber.status == Status.ACTIVE and subscriber.paused is False
        assert subscriber.created_at.tzinfo is not None
        assert before <= subscriber.created_at <= after
        assert subscriber.updated_at == subscriber.confirmed_at == subscriber.created_at
        assert subscriber.unsubscribed_at is None and subscriber.confirmation_sent_at is None

    # Stored exactly as the ORM stores the same values.
    sample = imported[report.imported_ids[3]]
    twin = Subscriber(
        email="twin@example.com",
        email_key="twin@example.com",
        categories=list(sample.categories),
        status=sample.status,
        paused=sample.paused,
        created_at=sample.created_at,
        updated_at=sample.updated_at,
        confirmed_at=sample.confirmed_at,
    )
    session.add(twin)
    session.flush()
    assert twin.id is not None and sample.id is not None
    assert _raw(session, twin.id) == _raw(session, sample.id)

    entries = session.exec(
        select(AuditEntry).where(AuditEntry.action == "import").order_by(col(AuditEntry.id))
    ).all()
    assert [e.subscriber_id for e in entries] == list(report.imported_ids)
    for entry in entries:
        assert entry.subscriber_id is not None
        subscriber = imported[entry.subscriber_id]
        assert entry.email_key == subscriber.email_key
        assert (entry.cause, entry.actor, entry.old_status, entry.new_status) == (
            "import",
            "crm",
            None,
            "active",
        )
        assert entry.at == subscriber.created_at and entry.at.tzinfo is not None
        assert entry.detail == {"source": "crm-sync", "consent": "recorded"}


def test_audit_entries_for_ids_that_are_not_a_range(session: Session, tmp_path: Path) -> None:
    lines = [f"reader{i}@example.com" for i in range(1_200)]
    report = import_csv(session, _write(tmp_path, "email\n" + "\n".join(lines) + "\n"))
    session.commit()
    every_other = report.imported_ids[::2]
    csvio._insert_audit_entries(
        session,
        every_other,
        {
            "at": utcnow(),
            "action": "suppress",
            "cause": "admin",
            "actor": "test",
            "new_status": None,
            "detail": {"reason": "test"},
        },
    )
    session.commit()
    entries = session.exec(
        select(AuditEntry.subscriber_id, AuditEntry.email_key).where(
            AuditEntry.action == "suppress"
        )
    ).all()
    keys = dict(session.exec(select(Subscriber.id, Subscriber.email_key)).all())
    assert sorted(entries) == [(id_, keys[id_]) for id_ in every_other]


def _rows(start: int, stop: int) -> str:
    return "".join(f"r{n}@example.com,R {n},UTC,\n" for n in range(start, stop))


def test_import_streams_in_chunks(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows are inserted chunk by chunk while the file is still being read."""
    monkeypatch.setattr(csvio, "CHUNK_ROWS", 10)
    chunks: list[int] = []
    original = csvio._import_chunk

    def counted(session: Session, rows: list[csvio.ParsedRow], *args: object) -> None:
        chunks.append(len(rows))
        original(session, rows, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(csvio, "_import_chunk", counted)
    path = _write(tmp_path, HEADER + _rows(0, 35))
    report = import_csv(session, path)
    session.commit()
    assert chunks == [10, 10, 10, 5]
    assert report.imported == 35 and len(report.imported_ids) == 35


def test_duplicates_are_found_across_chunks(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csvio, "CHUNK_ROWS", 10)
    path = _write(tmp_path, HEADER + _rows(0, 30) + "R3@Example.com,again,UTC,\n" + _rows(30, 40))
    report = import_csv(session, path)
    session.commit()
    assert [str(r) for r in report.rejected] == [
        "line 32: duplicate address R3@example.com, first on line 5"
    ]
    assert report.imported == 40


def test_a_fatal_error_late_in_the_file_leaves_nothing_imported(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks before the error went into the transaction; the caller rolls it back, so the
    good rows before it are not half-imported."""
    monkeypatch.setattr(csvio, "CHUNK_ROWS", 10)
    path = tmp_path / "late.csv"
    path.write_bytes((HEADER + _rows(0, 43)).encode() + b"bad@example.com,\xff\xfe,UTC,\n")
    with pytest.raises(InputError) as caught, Session(engine) as session, session.begin():
        import_csv(session, path)
    assert str(caught.value) == (
        f"{path}: not UTF-8 text (byte 0xff on line 45); save the file as UTF-8 and import it again"
    )
    with Session(engine) as session:
        assert session.exec(select(Subscriber)).all() == []
        assert session.exec(select(AuditEntry)).all() == []


def test_an_optional_first_name_column_is_stored_for_the_greeting(
    session: Session, tmp_path: Path
) -> None:
    path = _write(
        tmp_path,
        "email,name,first_name\n"
        "ops@example.com,Ops Team,Sam\n"
        '"lindqvist@example.com","Lindqvist, Astrid",\n',
    )
    report = import_csv(session, path)
    session.commit()
    assert report.ok and report.imported == 2
    rows = {s.email: s for s in session.exec(select(Subscriber)).all()}
    assert (rows["ops@example.com"].name, rows["ops@example.com"].first_name) == ("Ops Team", "Sam")
    assert rows["lindqvist@example.com"].first_name == ""  # the greeting derives "Astrid"
    # Without the column nothing changes.
    plain = _write(tmp_path, HEADER + "a@example.com,Ada,,\n", name="plain.csv")
    assert parse_csv(plain)[0][0].first_name == ""
