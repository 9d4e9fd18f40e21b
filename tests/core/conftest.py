"""``run_cli``: the ``digest`` console entry point run in this process, as a user runs it."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from digest.cli import main
from digest.config import get_settings

CLI_SECRET = "q7Vx2LmP9sKd4RtY8wNb3HcJ6fGz1AeU5oWi0Tq"

RunCli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> Iterator[RunCli]:
    """``run_cli(*args, url=None)`` runs ``digest ARGS`` through ``main`` (exit codes and
    stderr exactly as the console script gives them) in ``tmp_path``, with
    ``DIGEST_DATABASE_URL=url`` when given; returns (exit code, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIGEST_ENVIRONMENT", "test")
    monkeypatch.setenv("DIGEST_SECRET_KEY", CLI_SECRET)
    monkeypatch.setenv("DIGEST_EMAIL_BACKEND", "memory")
    monkeypatch.setenv("COLUMNS", "100")

    def invoke(*args: str, url: str | None = None) -> tuple[int, str, str]:
        if url is not None:
            monkeypatch.setenv("DIGEST_DATABASE_URL", url)
        monkeypatch.setattr(sys, "argv", ["digest", *args])
        get_settings.cache_clear()
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            main()
        out, err = capsys.readouterr()
        code = exited.value.code
        return (code if isinstance(code, int) else 1), out, err

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield invoke
    get_settings.cache_clear()
    for handler in list(root.handlers):  # `main` pointed one at the captured stderr
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
