"""Comparisons in the database: upsert by slug, read back as ``ComparisonDoc``, list by date."""

from __future__ import annotations

import datetime as dt
import enum
import hashlib

import orjson
import sqlalchemy as sa
from sqlmodel import Session, col, select

from digest.content.document import Community, ComparisonDoc, ReviewDoc, ToolDoc
from digest.content.models import Comparison, Review, Tool
from digest.db import utcnow


class UpsertOutcome(enum.StrEnum):
    IMPORTED = "imported"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


def content_hash(doc: ComparisonDoc) -> str:
    """SHA-256 of the document's canonical JSON (sorted keys, instant normalized to UTC)."""
    data = doc.model_dump(mode="json")
    data["published_at"] = doc.published_at.astimezone(dt.UTC).isoformat()
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()


def upsert_comparison(session: Session, doc: ComparisonDoc, source: str) -> UpsertOutcome:
    """Insert or update the comparison with ``doc.slug``; no change when the content is equal."""
    digest_ = content_hash(doc)
    existing = session.exec(select(Comparison).where(Comparison.slug == doc.slug)).first()
    if existing is not None and existing.content_hash == digest_:
        return UpsertOutcome.UNCHANGED
    if existing is None:
        row = Comparison(
            slug=doc.slug,
            title=doc.title,
            summary=doc.summary,
            published_at=doc.published_at,
            url=doc.url,
            content_hash=digest_,
            source=source,
        )
        outcome = UpsertOutcome.IMPORTED
    else:
        row = existing
        row.title, row.summary, row.url = doc.title, doc.summary, doc.url
        row.published_at = doc.published_at
        row.content_hash, row.source, row.updated_at = digest_, source, utcnow()
        row.tools.clear()
        session.flush()  # delete the old tools before their slugs are reused
        outcome = UpsertOutcome.UPDATED
    row.tools.extend(_tool_rows(doc))
    session.add(row)
    session.flush()
    return outcome


def _tool_rows(doc: ComparisonDoc) -> list[Tool]:
    tools: dict[str, Tool] = {}
    for position, tool in enumerate(doc.tools):
        tools[tool.slug] = Tool(
            position=position,
            slug=tool.slug,
            name=tool.name,
            category=tool.category,
            tagline=tool.tagline,
            description=tool.description,
            pricing=tool.pricing,
            entry_price=tool.entry_price,
            url=tool.url,
            community_up=tool.community.up if tool.community else None,
            community_down=tool.community.down if tool.community else None,
        )
    for position, review in enumerate(doc.reviews):
        tools[review.tool].reviews.append(
            Review(
                position=position,
                persona=review.persona,
                score=review.score,
                verdict=review.verdict,
                text=review.text,
            )
        )
    return list(tools.values())


def to_document(row: Comparison) -> ComparisonDoc:
    """A stored comparison back in its document form (reviews in their original order)."""
    reviews = sorted(
        ((review, tool.slug) for tool in row.tools for review in tool.reviews),
        key=lambda pair: pair[0].position,
    )
    return ComparisonDoc(
        slug=row.slug,
        title=row.title,
        summary=row.summary,
        published_at=row.published_at,
        url=row.url,
        tools=tuple(
            ToolDoc(
                slug=tool.slug,
                name=tool.name,
                category=tool.category,
                tagline=tool.tagline,
                description=tool.description,
                pricing=tool.pricing,
                entry_price=tool.entry_price,
                url=tool.url,
                community=(
                    Community(up=tool.community_up, down=tool.community_down or 0)
                    if tool.community_up is not None
                    else None
                ),
            )
            for tool in row.tools
        ),
        reviews=tuple(
            ReviewDoc(
                persona=review.persona,
                tool=slug,
                score=review.score,
                verdict="ship" if review.verdict == "ship" else "skip",
                text=review.text,
            )
            for review, slug in reviews
        ),
    )


def get_comparison(session: Session, slug: str) -> ComparisonDoc | None:
    row = session.exec(select(Comparison).where(Comparison.slug == slug)).first()
    return to_document(row) if row else None


def published_in(session: Session, start: dt.datetime, end: dt.datetime) -> list[Comparison]:
    """Comparisons published in ``[start, end)``, oldest first (slug breaks ties)."""
    statement = (
        select(Comparison)
        .where(Comparison.published_at >= start, Comparison.published_at < end)
        .order_by(col(Comparison.published_at), col(Comparison.slug))
    )
    return list(session.exec(statement).all())


def count_comparisons(session: Session) -> int:
    return session.exec(select(sa.func.count()).select_from(Comparison)).one()
