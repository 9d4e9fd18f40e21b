"""Where the files shipped beside the code live: email templates and the bundled examples.

From a source checkout (``pip install -e .``) they are the repository's ``templates/`` and
``examples/``; an installed wheel carries them as ``digest/_templates`` and ``digest/_examples``.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
SOURCE_ROOT = PACKAGE_DIR.parent


def _resolve(source_name: str, packaged_name: str, env_var: str) -> Path:
    override = os.environ.get(env_var)
    if override:
        return Path(override)
    in_checkout = SOURCE_ROOT / source_name
    if in_checkout.is_dir():
        return in_checkout
    return PACKAGE_DIR / packaged_name


def templates_dir() -> Path:
    """The directory holding ``email/`` templates (``DIGEST_TEMPLATES_DIR`` overrides)."""
    return _resolve("templates", "_templates", "DIGEST_TEMPLATES_DIR")


def examples_dir() -> Path:
    """The bundled example comparisons and subscribers."""
    return _resolve("examples", "_examples", "DIGEST_EXAMPLES_DIR")
