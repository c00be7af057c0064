"""The journal on its own: durability, the torn tail, resume lookups, the lock."""

from __future__ import annotations

from pathlib import Path

import pytest

from judge_engine.journal import (
    Journal,
    JournalError,
    Record,
    iter_latest,
    read_records,
    request_key,
)

from .conftest import make_record


def _record(session: str, status: str = "ok", slot: str = "j", success: int | None = 1) -> Record:
    return make_record(session, slot, success, status=status)


def test_appended_records_survive_and_are_found_on_reopening(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.append([_record("a"), _record("b", "failed"), _record("c", "skipped")])
    journal.close()
    again = Journal(tmp_path)
    assert again.known == 3
    key = request_key("a", "j", "j", "r", "p", 0)
    assert again.is_done(key)
    failed = request_key("b", "j", "j", "r", "p", 0)
    assert again.is_done(failed) and not again.is_done(failed, retry_failed=True)
    assert again.is_done(request_key("c", "j", "j", "r", "p", 0))
    assert not again.is_done(request_key("d", "j", "j", "r", "p", 0))
    again.close()


def test_the_last_record_of_a_key_decides(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.append([_record("a", "failed")])
    journal.append([_record("a", "ok")])  # a --retry-failed run succeeded
    journal.close()
    again = Journal(tmp_path)
    assert again.is_done(request_key("a", "j", "j", "r", "p", 0), retry_failed=True)
    again.close()
    latest = list(iter_latest(tmp_path / "journal.jsonl"))
    assert [(r.session_id, r.status) for r in latest] == [("a", "ok")]


def test_a_torn_last_line_is_ignored_and_cut_before_the_next_append(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.append([_record("a")])
    journal.close()
    path = tmp_path / "journal.jsonl"
    with open(path, "ab") as handle:
        handle.write(_record("b").to_json()[:40])  # killed mid-write
    assert [r.session_id for r in read_records(path)] == ["a"]
    again = Journal(tmp_path)
    assert again.known == 1
    again.append([_record("c")])
    again.close()
    assert [r.session_id for r in read_records(path)] == ["a", "c"]
    assert path.read_bytes().count(b"\n") == 2


def test_fresh_forgets_and_two_runs_cannot_share_a_folder(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.append([_record("a")])
    with pytest.raises(JournalError, match="another judge-engine command"):
        Journal(tmp_path)
    journal.close()
    fresh = Journal(tmp_path, fresh=True)
    assert fresh.known == 0
    fresh.close()


def test_an_unwritable_folder_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(JournalError, match="cannot use"):
        Journal(blocker / "out")


def test_small_and_large_journals_are_reduced_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Journals under `_SMALL` records are reduced in Python, larger ones with numpy:
    both give the same keys done, failures and latest records."""
    import random

    from judge_engine import journal

    draw = random.Random(5)
    records = []
    for n in range(600):
        session = f"s{draw.randrange(150)}"
        status = draw.choice(["ok", "ok", "failed", "skipped"])
        records.append(
            make_record(
                session, draw.choice(["a", "b"]), 1, status=status,
                transient=status == "failed" and draw.random() < 0.5,
                fingerprint=f"{draw.randrange(1 << 60):016x}{n:x}",
            )
        )  # fmt: skip
    path = tmp_path / "journal.jsonl"
    path.write_bytes(b"".join(r.to_json() for r in records))
    small = journal._load_keys(path)
    small_latest = [r.key for r in iter_latest(path)]
    monkeypatch.setattr(journal, "_SMALL", 0)
    large = journal._load_keys(path)
    assert small == large and [r.key for r in iter_latest(path)] == small_latest
    assert len(small.finished) + len(small.failed) < 300  # the draw exercised both kinds
