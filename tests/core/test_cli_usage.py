"""Usage errors: one line in the form of every other error, exit 64 (EX_USAGE), with or
without ``--debug``; help without type noise after plain flags."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import typer.main

from digest.cli import app
from digest.db import upgrade

RunCli = Callable[..., tuple[int, str, str]]  # the ``run_cli`` fixture (tests/core/conftest.py)

# A class name such as BadParameter, UsageError, NoSuchOption, OverflowError, Traceback.
CLASS_NAME = re.compile(r"\b[A-Z][a-z]+(?:[A-Z][a-z]+)+\b|Traceback")

USAGE_ERRORS = {
    "bad choice": (["preview", "--format", "pdf"], "'pdf' is not one of 'html', 'text', 'eml'"),
    "unknown command": (["frobnicate"], "no such command 'frobnicate'"),
    "misspelt command": (["sned"], "did you mean 'send'"),
    "unknown option": (["send", "--wek", "2026-W47"], "no such option: --wek"),
    "port too high": (["serve", "--port", "70000"], "'--port': input should be less than"),
    "port zero": (["preview", "--serve", "--port", "0"], "'--port': input should be greater"),
    "not a number": (["status", "--edition", "abc"], "'--edition': input should be a valid"),
    "missing argument": (["subscribers", "add"], "missing argument 'email'"),
    "refused by the command": (["resend", "--edition", "1"], "pass --failed-only"),
    "unknown subcommand": (["db", "downgrade"], "no such command 'downgrade'"),
}


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
@pytest.mark.parametrize("case", list(USAGE_ERRORS), ids=str)
def test_a_usage_error_is_one_line_and_exit_64(run_cli: RunCli, case: str, debug: bool) -> None:
    args, expected = USAGE_ERRORS[case]
    code, out, err = run_cli(*(["--debug"] if debug else []), *args)
    assert code == 64, err
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith("error: ") and expected in line.lower(), line
    assert line.endswith("--help`)") and "(see `digest" in line
    assert CLASS_NAME.findall(line) == [], line


def test_a_command_group_alone_prints_its_help(run_cli: RunCli) -> None:
    code, out, err = run_cli("subscribers")
    assert code == 64 and err == ""
    assert out.startswith("Usage: digest subscribers") and "import" in out


def _commands(group: typer.main.TyperGroup, path: list[str]) -> Iterator[list[str]]:
    yield path
    for name, command in group.commands.items():
        if isinstance(command, typer.main.TyperGroup):
            yield from _commands(command, [*path, name])
        else:
            yield [*path, name]


def test_help_shows_no_type_after_plain_flags(run_cli: RunCli) -> None:
    root = typer.main.get_command(app)
    assert isinstance(root, typer.main.TyperGroup)
    seen = 0
    for path in _commands(root, []):
        code, out, _err = run_cli(*path, "--help")
        assert code == 0, path
        assert "<bool>" not in out, (path, out)
        seen += 1
    assert seen > 20
    code, out, _err = run_cli("preview", "--help")
    assert re.search(r"--open\s+Open the result", out)  # a flag: no type
    assert "--format <html|text|eml>" in out  # an option with a value keeps its type


@pytest.mark.parametrize("command", [["serve"], ["preview", "--serve"]], ids=" ".join)
def test_a_port_in_use_is_one_line(run_cli: RunCli, tmp_path: Path, command: list[str]) -> None:
    url = f"sqlite:///{tmp_path / 'digest.db'}"
    upgrade(url)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        code, out, err = run_cli(*command, "--port", port, url=url)
    assert code == 78 and out == ""
    assert err == (
        f"error: cannot listen on 127.0.0.1:{port}: address already in use "
        "(choose another --port or --host)\n"
    )


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
def test_a_file_that_cannot_be_written_is_one_line(
    run_cli: RunCli, tmp_path: Path, debug: bool
) -> None:
    url = f"sqlite:///{tmp_path / 'digest.db'}"
    upgrade(url)
    target = tmp_path / "missing" / "people.csv"
    code, out, err = run_cli(
        *(["--debug"] if debug else []), "subscribers", "export", str(target), url=url
    )
    assert code == 74 and out == ""  # EX_IOERR, with or without --debug
    if not debug:
        assert err == f"error: {target}: no such file or directory\n"
