"""The web archive: sent editions listed and shown without personal parts."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from starlette.testclient import TestClient

from digest.config import Settings
from digest.content.importer import import_paths
from digest.content.weeks import IsoWeek
from digest.db import session_scope, utcnow
from digest.delivery.models import Delivery, DeliveryState
from digest.editions.models import Edition, EditionStatus
from digest.editions.service import get_or_create_edition
from digest.render.edition import subject_for


def _edition(
    engine: Engine, settings: Settings, comparisons_dir: Path, *, out: bool = True
) -> Edition:
    """The edition of 2026-W47; with ``out``, one message of it has gone out."""
    import_paths(engine, [str(comparisons_dir)])
    week = IsoWeek.parse("2026-W47")
    edition = get_or_create_edition(engine, settings, week, subject_for=subject_for(settings, week))
    assert edition is not None and edition.id is not None
    if out:
        _ledger_row(engine, edition.id, DeliveryState.SENT)
    return edition


def _ledger_row(engine: Engine, edition_id: int, state: DeliveryState, n: int = 1) -> None:
    with session_scope(engine) as session:
        session.add(
            Delivery(
                edition_id=edition_id,
                email=f"r{n}@example.com",
                variant="all",
                state=state,
                message_id=f"<m{edition_id}.{n}@verdicts.example.com>",
                sent_at=utcnow() if state == DeliveryState.SENT else None,
            )
        )


def test_an_edition_is_shown_by_id_and_by_week(
    client: TestClient, engine: Engine, settings: Settings, comparisons_dir: Path
) -> None:
    edition = _edition(engine, settings, comparisons_dir)
    by_id = client.get(f"/editions/{edition.id}")
    assert by_id.status_code == 200
    assert by_id.headers["content-type"].startswith("text/html")
    assert "Claude Haiku Open Weights" in by_id.text
    assert "Hugging Face Inference Providers Hub" in by_id.text
    # No personal link: nothing in the page can unsubscribe or identify a reader.
    assert "/unsubscribe/" not in by_id.text and "/preferences/" not in by_id.text
    assert f"{settings.base_url}/preferences" in by_id.text
    assert client.get("/editions/2026-W47").text == by_id.text


def test_index_lists_published_editions_only(
    client: TestClient, engine: Engine, settings: Settings, comparisons_dir: Path
) -> None:
    edition = _edition(engine, settings, comparisons_dir)
    page = client.get("/editions")
    assert page.status_code == 200 and "2026-W47" in page.text
    with session_scope(engine) as session:
        session.execute(
            sa.update(Edition)
            .where(Edition.id == edition.id)
            .values(status=EditionStatus.CANCELLED)  # type: ignore[arg-type]
        )
    assert "2026-W47" not in client.get("/editions").text


def test_an_edition_is_private_until_a_message_is_out(
    client: TestClient, engine: Engine, settings: Settings, comparisons_dir: Path
) -> None:
    edition = _edition(engine, settings, comparisons_dir, out=False)
    assert edition.id is not None
    for state in (DeliveryState.PENDING, DeliveryState.CLAIMED, DeliveryState.FAILED):
        _ledger_row(engine, edition.id, state, n=list(DeliveryState).index(state))
        assert client.get(f"/editions/{edition.id}").status_code == 404
        assert client.get("/editions/2026-W47").status_code == 404
        assert "2026-W47" not in client.get("/editions").text
    _ledger_row(engine, edition.id, DeliveryState.SENT, n=99)
    assert client.get(f"/editions/{edition.id}").status_code == 200
    assert "2026-W47" in client.get("/editions").text


def test_an_id_of_another_newsletter_is_404(
    client: TestClient, engine: Engine, settings: Settings, comparisons_dir: Path
) -> None:
    other = settings.model_copy(update={"newsletter": "monthly"})
    import_paths(engine, [str(comparisons_dir)])
    week = IsoWeek.parse("2026-W47")
    edition = get_or_create_edition(engine, other, week, subject_for=subject_for(other, week))
    assert edition is not None and edition.id is not None
    _ledger_row(engine, edition.id, DeliveryState.SENT)
    assert client.get(f"/editions/{edition.id}").status_code == 404
    assert client.get("/editions/2026-W47").status_code == 404
    assert "2026-W47" not in client.get("/editions").text


def test_unicode_digits_and_odd_refs_are_404_not_500(
    client: TestClient, engine: Engine, settings: Settings, comparisons_dir: Path
) -> None:
    edition = _edition(engine, settings, comparisons_dir)
    for ref in (
        "%C2%B2",
        "%D9%A1",
        "%EF%BC%91",
        "%E2%91%A0",
        "%F0%9D%9F%99",
        "1%00",
        "%D9%A2%D9%A0%D9%A2%D9%A6-W47",
        "2026-W%D9%A4%D9%A7",
        f"{edition.id}%0A",
        "-1",
        "+1",
        "1e3",
        " 1",
        "0x1",
        "%20",
        "99999999999999999999",
    ):
        response = client.get(f"/editions/{ref}")
        assert response.status_code in (400, 404), (ref, response.status_code)
        assert "<script" not in response.text


def test_unknown_or_malformed_refs_are_404(client: TestClient) -> None:
    for ref in ("999", "2026-W47", "not-a-week", "1" * 40, "..%2Fetc"):
        response = client.get(f"/editions/{ref}")
        assert response.status_code == 404, ref
        assert "<script" not in response.text


def test_generic_preferences_page(client: TestClient) -> None:
    page = client.get("/preferences")
    assert page.status_code == 200 and "unsubscribe" in page.text.lower()
