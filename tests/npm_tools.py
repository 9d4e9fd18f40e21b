"""npm tools the rendering tests run (axe-core, doiuse-email, the official MJML CLI),
installed into the repository's ``.cache/`` (or ``$DIGEST_NPM_CACHE_DIR``) on first use; a
test skips with the reason when npm is absent.

Parallel test workers share that cache: an install holds an exclusive lock on its prefix, so a
second worker waits for it and then finds the package instead of installing over it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest

CACHE = Path(
    os.environ.get("DIGEST_NPM_CACHE_DIR") or Path(__file__).resolve().parents[1] / ".cache"
)


def npm_package(directory: str, spec: str, wanted: str) -> Path:
    """``CACHE/directory/node_modules/<wanted>`` after ``npm install spec`` there if missing."""
    root = CACHE / directory
    target = root / "node_modules" / wanted
    npm = shutil.which("npm")
    if npm is None and not target.exists():
        pytest.skip(f"npm is not installed: cannot install {spec}")
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".install.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if target.exists():
            return target
        assert npm is not None
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
