"""Fixtures for the rendering tests: settings without a database, the W47 comparisons read
straight from the fixture files, and renderers with their own MJML cache."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from render_support import ARCHIVE, W47, RendererFactory, load_docs, make_settings

from digest.config import Settings
from digest.content.document import ComparisonDoc
from digest.content.weeks import IsoWeek
from digest.render.edition import EditionRenderer
from digest.render.mjml import MjmlCompiler


@pytest.fixture
def render_settings() -> Settings:
    return make_settings()


@pytest.fixture(scope="session")
def all_docs(comparisons_dir: Path) -> list[ComparisonDoc]:
    return load_docs(comparisons_dir)


@pytest.fixture(scope="session")
def w47_docs(all_docs: list[ComparisonDoc]) -> list[ComparisonDoc]:
    """The six comparisons of 2026-W47 in UTC, in publication order."""
    docs = [doc for doc in all_docs if IsoWeek.containing(doc.published_at, dt.UTC) == W47]
    assert len(docs) == 6
    return docs


@pytest.fixture
def compiler() -> MjmlCompiler:
    """A compiler with its own cache, so compile counts are this test's alone."""
    return MjmlCompiler()


@pytest.fixture(scope="session")
def shared_compiler() -> MjmlCompiler:
    """One MJML cache for the session: identical sources compile once across tests."""
    return MjmlCompiler(cache_size=64)


@pytest.fixture
def make_renderer(render_settings: Settings, shared_compiler: MjmlCompiler) -> RendererFactory:
    """Renderers on the session's MJML cache; pass ``compiler=`` to count compiles."""

    def factory(docs: list[ComparisonDoc], **kwargs: Any) -> EditionRenderer:
        settings = kwargs.pop("settings", render_settings)
        kwargs.setdefault("compiler", shared_compiler)
        week = kwargs.pop("week", W47)
        return EditionRenderer(settings, docs, week=week, archive_url=ARCHIVE, **kwargs)

    return factory
