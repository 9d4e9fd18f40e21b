"""The ``serve`` command hands the app built from the environment's settings to uvicorn."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette

from digest.config import get_settings
from digest.db import upgrade

# By module path: the package may re-export the command function under the same name.
serve_module = importlib.import_module("digest.cli.serve")


@pytest.fixture
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)  # no stray .env
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    upgrade(url)
    monkeypatch.setenv("DIGEST_DATABASE_URL", url)
    monkeypatch.setenv("DIGEST_EMAIL_BACKEND", "memory")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_serve_runs_uvicorn_on_the_app(environment: None, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append((app, kwargs)))
    serve_module.serve(host="0.0.0.0", port=8123)
    [(app, options)] = calls
    assert isinstance(app, Starlette)
    assert options["host"] == "0.0.0.0" and options["port"] == 8123
    assert options["server_header"] is False
    # uvicorn's own X-Forwarded-For handling (which trusts 127.0.0.1 by default) is off: the
    # app applies DIGEST_TRUSTED_PROXIES itself.
    assert options["proxy_headers"] is False


def test_serve_has_help_text() -> None:
    assert serve_module.serve.__doc__
