"""`digest votes export`: per-tool newsletter counts (JSON and CSV), and anonymised per-vote rows
that never carry an address."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy.engine import Engine
from typer.testing import CliRunner
from votes_support import COMPARISON, Voting

from digest.cli import app
from digest.config import Settings, get_settings
from digest.editions.votes import ballot_for
from digest.votes import store

runner = CliRunner()


@pytest.fixture
def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., object]]:
    monkeypatch.setenv("DIGEST_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("DIGEST_ENVIRONMENT", "test")
    monkeypatch.setenv("DIGEST_SECRET_KEY", settings.secret_key.get_secret_value())
    get_settings.cache_clear()
    yield lambda *args: runner.invoke(app, ["votes", "export", *args])
    get_settings.cache_clear()


def cast(engine: Engine, voting: Voting, subscriber_id: int, tool: str, choice: str) -> None:
    ref = voting.ref(tool, choice, subscriber_id=subscriber_id)
    with engine.begin() as connection:
        ballot = ballot_for(connection, ref)
        assert ballot is not None
        store.record(
            connection,
            ballot,
            network="203.0.113.0/24",
            user_agent="test",
            now=dt.datetime.now(dt.UTC),
        )


def test_export_counts_the_newsletters_votes_per_tool(
    cli: Callable[..., object],
    engine: Engine,
    voting: Voting,
    new_subscriber: Callable[[str], int],
) -> None:
    others = [new_subscriber(f"reader{n}@example.com") for n in range(3)]
    cast(engine, voting, voting.subscriber_id, "deskpilot", "ship")
    cast(engine, voting, voting.subscriber_id, "deskpilot", "skip")  # changed: last one counts
    for other in others:
        cast(engine, voting, other, "deskpilot", "ship")
    cast(engine, voting, others[0], "ticketsmith", "skip")

    result = cli("--json")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    rows = {row["tool"]: row for row in json.loads(result.stdout)}  # type: ignore[attr-defined]
    assert (rows["deskpilot"]["ship"], rows["deskpilot"]["skip"]) == (3, 1)
    assert (rows["ticketsmith"]["ship"], rows["ticketsmith"]["skip"]) == (0, 1)
    # Imported 3 up / 14 down plus the newsletter's 3 / 1.
    assert (rows["deskpilot"]["community_ship"], rows["deskpilot"]["community_skip"]) == (6, 15)
    assert rows["deskpilot"]["comparison"] == COMPARISON

    table = list(csv.DictReader(io.StringIO(cli("--csv").stdout)))  # type: ignore[attr-defined]
    assert {(row["tool"], row["ship"], row["skip"]) for row in table} == {
        ("deskpilot", "3", "1"),
        ("ticketsmith", "0", "1"),
    }

    per_vote = json.loads(cli("--per-vote").stdout)  # type: ignore[attr-defined]
    assert len(per_vote) == 5
    assert all("@" not in json.dumps(row) for row in per_vote)
    mine = [row for row in per_vote if row["presses"] == 2]
    assert len(mine) == 1 and mine[0]["choice"] == "skip" and mine[0]["networks"] == 1
    hashes = {row["subscriber"] for row in per_vote}
    assert len(hashes) == 4  # stable per subscriber: others[0] voted twice, one hash

    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).date().isoformat()
    assert json.loads(cli("--since", tomorrow).stdout) == []  # type: ignore[attr-defined]


def test_a_bad_since_is_an_input_error_naming_the_option(
    cli: Callable[..., object], voting: Voting
) -> None:
    from digest.errors import InputError

    result = cli("--since", "last tuesday")
    error = result.exception  # type: ignore[attr-defined]
    assert isinstance(error, InputError) and error.exit_code == 65
    assert str(error).startswith("--since: not a date")
