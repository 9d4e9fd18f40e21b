"""npm tools the rendering tests run (axe-core, doiuse-email, the official MJML CLI),
installed into the repository's ``.cache/`` on first use; a test skips with the reason when
npm is absent."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

CACHE = Path(__file__).resolve().parents[1] / ".cache"


def npm_package(directory: str, spec: str, wanted: str) -> Path:
    """``CACHE/directory/node_modules/<wanted>`` after ``npm install spec`` there if missing."""
    root = CACHE / directory
    target = root / "node_modules" / wanted
    if target.exists():
        return target
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip(f"npm is not installed: cannot install {spec}")
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [npm, "install", "--prefix", str(root), spec, "--no-audit", "--no-fund",
         "--loglevel=error"],
        check=True,
        timeout=600,
    )  # fmt: skip
    assert target.exists(), target
    return target


def axe_source() -> str:
    """The axe-core 4.x script, to inject into a page."""
    return (npm_package("npm-axe", "axe-core@4", "axe-core") / "axe.min.js").read_text("utf-8")


def doiuse_cli() -> Path:
    """The doiuse-email CLI (caniemail data)."""
    return npm_package("npm-doiuse", "doiuse-email@0.4", "doiuse-email") / "bin" / "cli.js"
