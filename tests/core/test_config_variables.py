"""A ``DIGEST_*`` variable that no setting reads (a misspelt one) is a warning naming the
closest setting, instead of being silently ignored."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from digest.config import OTHER_VARIABLES, setting_variables, unknown_variables

RunCli = Callable[..., tuple[int, str, str]]  # the ``run_cli`` fixture (tests/core/conftest.py)


def test_a_misspelt_setting_names_the_closest_one() -> None:
    assert unknown_variables(
        ["DIGEST_TIMEZON", "digest_sendrate", "DIGEST_SECRET_KYE", "DIGEST_ZZZ", "PATH"]
    ) == [
        "DIGEST_SECRET_KYE is not a setting and is ignored; did you mean DIGEST_SECRET_KEY?",
        "DIGEST_SENDRATE is not a setting and is ignored; did you mean DIGEST_SEND_RATE?",
        "DIGEST_TIMEZON is not a setting and is ignored; did you mean DIGEST_TIMEZONE?",
        "DIGEST_ZZZ is not a setting and is ignored; see `digest config show`",
    ]


def test_settings_and_the_other_known_variables_are_quiet() -> None:
    assert unknown_variables([*setting_variables(), *OTHER_VARIABLES, "digest_timezone"]) == []


@pytest.mark.parametrize("where", ["environment", ".env"])
def test_every_command_warns(
    run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    if where == ".env":
        (tmp_path / ".env").write_text("DIGEST_SITE_NAM=Verdicts\n", encoding="utf-8")
    else:
        monkeypatch.setenv("DIGEST_SITE_NAM", "Verdicts")
    code, out, err = run_cli("config", "show")
    assert code == 0 and "DIGEST_SITE_NAME" in out
    [line] = [line for line in err.splitlines() if "DIGEST_SITE_NAM " in line]
    assert line.startswith("ts=") and "level=warning" in line
    assert "did you mean DIGEST_SITE_NAME?" in line
