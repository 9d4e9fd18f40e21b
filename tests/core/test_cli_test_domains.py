"""``DIGEST_ALLOW_TEST_DOMAINS``: a staging list may hold addresses at the reserved ``.test``
domains; by default they are refused, and the other special-use domains always are."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from digest.db import upgrade
from digest.errors import InputError
from subscribers.normalize import allow_test_domains, normalize_email

RunCli = Callable[..., tuple[int, str, str]]  # the ``run_cli`` fixture (tests/core/conftest.py)


@pytest.fixture(autouse=True)
def refused_again() -> Iterator[None]:
    yield
    allow_test_domains(False)


def test_the_switch_and_back() -> None:
    with pytest.raises(InputError, match="special-use or reserved"):
        normalize_email("ada@example.test")
    allow_test_domains(True)
    assert normalize_email("Ada@Example.TEST").key == "ada@example.test"
    with pytest.raises(InputError):
        normalize_email("bob@foo.invalid")  # not a test domain
    allow_test_domains(False)
    with pytest.raises(InputError):
        normalize_email("ada@example.test")  # not remembered from before


def test_the_setting_reaches_the_cli(
    run_cli: RunCli, empty_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    upgrade(empty_db_url)
    args = ("subscribers", "add", "ada@example.test", "--confirmed")
    code, _out, err = run_cli(*args, url=empty_db_url)
    assert code == 65 and "special-use or reserved" in err
    monkeypatch.setenv("DIGEST_ALLOW_TEST_DOMAINS", "true")
    code, out, err = run_cli(*args, url=empty_db_url)
    assert (code, out.strip()) == (0, "ada@example.test: active"), err
