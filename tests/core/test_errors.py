"""The error tree: every deliberate error is a ``DigestError`` drawn in ``digest.errors``'s
docstring with its exit code, and the CLI ends with that code with or without ``--debug``."""

from __future__ import annotations

import importlib
import pkgutil
import re
import subprocess
import sys

import pytest

import digest
import digest.errors
from digest.backends.errors import AmbiguousError, BackendError, RateLimitedError
from digest.errors import DigestError
from digest.webhooks.events import MissingSignatureError, WebhookError

_TREE_LINE = re.compile(r"^[\s│├└─]*([A-Z]\w+)\s.*?(\d+)$")


def _all_subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _all_subclasses(sub)
    return found


def _drawn_tree() -> dict[str, int]:
    doc = digest.errors.__doc__ or ""
    return {
        match[1]: int(match[2])
        for line in doc.splitlines()
        if (match := _TREE_LINE.match(line.rstrip()))
    }


def test_backend_and_webhook_errors_are_digest_errors() -> None:
    assert issubclass(BackendError, DigestError) and issubclass(WebhookError, DigestError)
    assert RateLimitedError("slow down", retry_after=2).exit_code == 75
    assert AmbiguousError("lost").exit_code == 76
    assert MissingSignatureError("no signature").status_code == 401  # the HTTP answer stays


def test_the_docstring_draws_every_error_with_its_exit_code() -> None:
    for module in pkgutil.walk_packages(digest.__path__, "digest."):
        if ".migrations" not in module.name and not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    drawn = _drawn_tree()
    classes = {
        cls.__name__: cls
        for cls in _all_subclasses(DigestError)
        if cls.__module__.startswith("digest")
    }
    assert set(classes) <= set(drawn), set(classes) - set(drawn)
    for name, cls in classes.items():
        assert cls.exit_code == drawn[name], name
    assert drawn["DigestError"] == DigestError.exit_code


@pytest.mark.parametrize("debug", [False, True])
def test_an_error_keeps_its_exit_code_with_debug(
    debug: bool, empty_db_url: str, tmp_path: object
) -> None:
    env = {
        "DIGEST_DATABASE_URL": empty_db_url,
        "DIGEST_ENVIRONMENT": "test",
        "DIGEST_SECRET_KEY": "errors-test-secret-0123456789abcdef",
        "DIGEST_TIMEZONE": "UTC",
        "PATH": "/usr/bin:/bin",
    }
    argv = [sys.executable, "-m", "digest", *(["--debug"] if debug else [])]
    argv += ["comparisons", "list", "--week", "2026-W99"]
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert result.returncode == 65, result.stderr  # InputError: EX_DATAERR
    if debug:
        assert "Traceback" in result.stderr
    else:
        assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
