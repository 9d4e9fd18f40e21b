"""Where the email templates live, and the Jinja environment that renders them.

Lookup order for the templates root (the directory that holds ``email/``):

1. an explicit ``root`` argument;
2. the ``DIGEST_TEMPLATES_DIR`` environment variable;
3. ``<repository>/templates`` when the package runs from a checkout;
4. ``digest/_templates``, where the wheel carries them (see ``pyproject.toml``).

Autoescaping is on for every template except plain-text ones (``*.txt.j2``): comparison text
is content, always escaped on output and never interpreted. ``StrictUndefined`` makes a typo
in a template fail loudly instead of rendering an empty string.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import jinja2

from digest.errors import ConfigError

TEMPLATES_ENV_VAR = "DIGEST_TEMPLATES_DIR"
_PACKAGE_DIR = Path(__file__).resolve().parent.parent
_CHECKOUT_TEMPLATES = _PACKAGE_DIR.parent / "templates"
_WHEEL_TEMPLATES = _PACKAGE_DIR / "_templates"


def templates_root(root: str | Path | None = None) -> Path:
    """The directory holding ``email/``; raises ``ConfigError`` if an override does not exist."""
    override = root if root is not None else os.environ.get(TEMPLATES_ENV_VAR)
    if override:
        path = Path(override).expanduser().resolve()
        if not path.is_dir():
            raise ConfigError(f"templates directory {path} does not exist ({TEMPLATES_ENV_VAR})")
        return path
    if _CHECKOUT_TEMPLATES.is_dir():
        return _CHECKOUT_TEMPLATES
    if _WHEEL_TEMPLATES.is_dir():
        return _WHEEL_TEMPLATES
    raise ConfigError(
        f"no email templates found (looked in {_CHECKOUT_TEMPLATES} and {_WHEEL_TEMPLATES}); "
        f"set {TEMPLATES_ENV_VAR}"
    )


def make_environment(
    root: str | Path | None = None, *, auto_reload: bool = False
) -> jinja2.Environment:
    """A new Jinja environment over ``templates_root(root)``.

    ``auto_reload`` re-reads a template whose file changed (the live preview wants that; a
    send does not).
    """
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_root(root))),
        autoescape=jinja2.select_autoescape(
            disabled_extensions=("txt.j2", "txt"), default_for_string=True, default=True
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=auto_reload,
    )


@lru_cache(maxsize=8)
def environment(root: str | None = None) -> jinja2.Environment:
    """The shared, cached environment for ``root`` (templates compiled once per process)."""
    return make_environment(root)


def template_files(root: str | Path | None = None) -> list[Path]:
    """Every file under ``<root>/email``, for change detection by the live preview."""
    base = templates_root(root) / "email"
    return sorted(path for path in base.rglob("*") if path.is_file())


def templates_mtime(root: str | Path | None = None) -> float:
    """The newest modification time of any email template (0.0 when there is none)."""
    return max((path.stat().st_mtime for path in template_files(root)), default=0.0)
