"""``make demo``: the weekly job end to end on the embedded default (SQLite + file outbox).

Everything happens under one directory (``demo-output/`` by default), so the demo never touches
a real database or sends a real email. Run as ``python -m digest.demo [--dir PATH]``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEMO_WEEK = "2026-W47"


def _configure(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    os.environ["DIGEST_DATABASE_URL"] = f"sqlite:///{directory / 'digest.db'}"
    os.environ["DIGEST_OUTBOX_DIR"] = str(directory / "outbox")
    os.environ["DIGEST_EMAIL_BACKEND"] = "outbox"
    os.environ.setdefault("DIGEST_ENVIRONMENT", "development")
    os.environ.setdefault("DIGEST_BASE_URL", "https://verdicts.example.com")


def _run(*args: str) -> None:
    """Run one ``digest`` command in-process, echoing it first as a user would type it."""
    from digest.cli import app

    print(f"\n$ digest {' '.join(args)}", flush=True)
    result = app(list(args), standalone_mode=False)
    if isinstance(result, int) and result != 0:
        raise SystemExit(f"demo step failed: digest {' '.join(args)} (exit {result})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", default="demo-output", help="where the demo keeps its files")
    parser.add_argument(
        "--week", default=DEMO_WEEK, help="the week to build (default: %(default)s)"
    )
    options = parser.parse_args(argv)
    directory = Path(options.dir).resolve()
    _configure(directory)

    from digest.resources import examples_dir

    examples = examples_dir()
    outbox = directory / "outbox"
    preview = directory / f"preview-{options.week}.html"
    _run("db", "upgrade")
    _run("comparisons", "import", str(examples / "comparisons"))
    _run("subscribers", "import", str(examples / "subscribers.csv"), "--confirmed")
    _run("comparisons", "list", "--week", options.week)
    _run("preview", "--week", options.week, "--out", str(preview))
    _run("send", "--week", options.week)
    _run("status")
    messages = sorted(outbox.glob("*.eml"))
    print(f"\ndemo finished: {len(messages)} message(s) in the outbox {outbox}")
    print(f"previewed digest: {preview}")
    print(f"database: {directory / 'digest.db'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
