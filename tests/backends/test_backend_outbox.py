"""The file outbox: complete .eml files, atomic writes, idempotent file names."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest
from backend_fakes import build_message

from digest.backends.base import ResultStatus
from digest.backends.outbox import OutboxBackend, eml_file_name


def test_writes_one_parseable_eml_per_message(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    messages = [build_message(n) for n in range(1, 4)]
    with OutboxBackend(outbox) as backend:
        results = backend.send_batch(messages)

    assert [r.status for r in results] == [ResultStatus.ACCEPTED] * 3
    assert [r.message_id for r in results] == [m.message_id for m in messages]
    files = sorted(p.name for p in outbox.iterdir())
    assert files == sorted(r.provider_message_id for r in results if r.provider_message_id)
    for message, result in zip(messages, results, strict=True):
        assert result.provider_message_id is not None
        raw = (outbox / result.provider_message_id).read_bytes()
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert parsed["Message-ID"] == message.message_id
        assert parsed.get_all("List-Unsubscribe") == [message.headers["List-Unsubscribe"]]
        assert parsed.is_multipart()


def test_resending_overwrites_instead_of_duplicating(tmp_path: Path) -> None:
    backend = OutboxBackend(tmp_path, fsync=False)
    backend.send(build_message(1, subject="first"))
    result = backend.send(build_message(1, subject="second"))
    files = list(tmp_path.iterdir())
    assert [f.name for f in files] == [result.provider_message_id]
    assert b"Subject: second" in files[0].read_bytes()


def test_no_temporary_file_is_left_when_writing_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: Path, target: Path) -> Path:
        raise OSError("disk full")

    monkeypatch.setattr(Path, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        OutboxBackend(tmp_path).send(build_message())
    assert list(tmp_path.iterdir()) == []


def test_existing_file_is_intact_until_the_new_one_is_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = OutboxBackend(tmp_path)
    name = backend.send(build_message(1, subject="old")).provider_message_id
    assert name is not None
    before = (tmp_path / name).read_bytes()

    def refuse(self: Path, target: Path) -> Path:
        # The new content is complete in a temporary file of the same directory.
        assert self.parent == tmp_path
        assert self.name.startswith(".")
        assert b"Subject: new" in self.read_bytes()
        raise OSError("crash before rename")

    monkeypatch.setattr(Path, "replace", refuse)
    with pytest.raises(OSError):
        backend.send(build_message(1, subject="new"))
    assert (tmp_path / name).read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [name]


@pytest.mark.parametrize(
    ("message_id", "expected"),
    [
        ("<2025-w07.1@verdicts.example.com>", "2025-w07.1@verdicts.example.com.eml"),
        ("<a+b=c@example.com>", "a+b=c@example.com.eml"),
    ],
)
def test_file_name_is_the_message_id_when_safe(message_id: str, expected: str) -> None:
    assert eml_file_name(message_id) == expected


@pytest.mark.parametrize(
    "message_id",
    ["<../../etc/passwd@x>", "<a/b@x>", "<.hidden@x>", "<a b@x>", "<>", "<" + "x" * 300 + ">"],
)
def test_unsafe_message_ids_give_safe_distinct_names(message_id: str) -> None:
    name = eml_file_name(message_id)
    assert "/" not in name
    assert not name.startswith(".")
    assert name.endswith(".eml")
    assert len(name) <= 160
    assert name == eml_file_name(message_id)


def test_ids_differing_only_in_unsafe_characters_do_not_collide() -> None:
    assert eml_file_name("<a/b@x>") != eml_file_name("<a_b@x>")
    assert eml_file_name("<a/b@x>") != eml_file_name("<a:b@x>")
