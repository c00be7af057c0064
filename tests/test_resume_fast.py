"""Resuming without re-reading: rows graded before, byte for byte, are not parsed again;
every other row (changed, new, a new judge, a failure, another reading) is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from judge_engine import sessions
from judge_engine.config import Config
from judge_engine.engine import grade
from judge_engine.testing import synth

from .conftest import read_jsonl, write_jsonl
from .servers import ScriptedServer, error

KEY = "sk-fast-resume-" + "f" * 20


def _rows(count: int) -> list[dict[str, Any]]:
    return [synth.otel_row(f"s{i}", "swebench", seed=i) for i in range(count)]


def _config(source: str, url: str, out: Path, **changes: Any) -> Config:
    return Config.of(
        sources=(source,), judge=("gpt-4.1",), base_url=url, out=out, quiet=True,
        backoff_base=0.01,
    ).replace(**changes)  # fmt: skip


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The session rows the adapters parse, in order."""
    calls: list[str] = []
    real = sessions.parse_row

    def counting(raw: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(str(raw.data.get("session_id") or raw.row))
        return real(raw, *args, **kwargs)

    monkeypatch.setattr(sessions, "parse_row", counting)
    return calls


async def test_a_finished_run_resumes_without_parsing_a_row(
    tmp_path: Path, parsed: list[str]
) -> None:
    source = str(write_jsonl(tmp_path / "s.jsonl", _rows(5)))
    out = tmp_path / "out"
    async with ScriptedServer() as server:
        first, _ = await grade(_config(source, server.url, out), KEY)
        assert first.status == "done" and len(parsed) == 5
        parsed.clear()
        again, _ = await grade(_config(source, server.url, out), KEY)
    assert parsed == [] and again.already_done == 5 and again.requests_sent == 0
    assert again.status == "done" and again.score_rows == 5


async def test_only_what_changed_is_read_again(tmp_path: Path, parsed: list[str]) -> None:
    rows = _rows(4)
    path = tmp_path / "s.jsonl"
    source = str(write_jsonl(path, rows))
    out = tmp_path / "out"
    async with ScriptedServer() as server:
        await grade(_config(source, server.url, out), KEY)
        rows[1] = dict(rows[1], extra="edited")  # the same session, another row
        write_jsonl(path, [*rows, synth.otel_row("new", "swebench", seed=9)])
        parsed.clear()
        again, _ = await grade(_config(source, server.url, out), KEY)
        assert sorted(parsed) == ["new", "s1"]
        assert again.changed == 1 and again.requests_sent == 1  # only the new session
        parsed.clear()
        panel, _ = await grade(_config(source, server.url, out, judge=("gpt-4.1", "o3")), KEY)
    assert len(parsed) == 5 and panel.requests_sent == 5  # a new judge: every row read


async def test_a_failed_request_is_read_and_asked_again(tmp_path: Path, parsed: list[str]) -> None:
    source = str(write_jsonl(tmp_path / "s.jsonl", _rows(2)))
    out = tmp_path / "out"
    async with ScriptedServer([error(400, "bad")]) as server:
        first, _ = await grade(_config(source, server.url, out, concurrency=1), KEY)
        assert first.failed == 1
        parsed.clear()
        retried, _ = await grade(_config(source, server.url, out, retry_failed=True), KEY)
    assert len(parsed) == 1 and retried.requests_sent == 1 and retried.status == "done"


async def test_a_duplicate_row_is_still_rejected_on_resume(tmp_path: Path) -> None:
    rows = _rows(2)
    source = str(write_jsonl(tmp_path / "s.jsonl", [*rows, rows[0]]))
    out = tmp_path / "out"
    async with ScriptedServer() as server:
        first, _ = await grade(_config(source, server.url, out), KEY)
        again, _ = await grade(_config(source, server.url, out), KEY)
    assert first.rejected == again.rejected == 1
    assert again.already_done == 2 and again.requests_sent == 0


async def test_another_reading_of_the_rows_reads_them_again(
    tmp_path: Path, parsed: list[str]
) -> None:
    source = str(write_jsonl(tmp_path / "s.jsonl", _rows(2)))
    out = tmp_path / "out"
    async with ScriptedServer() as server:
        await grade(_config(source, server.url, out), KEY)
        parsed.clear()
        await grade(_config(source, server.url, out, agent_model="some-model"), KEY)
    assert len(parsed) == 2
    assert len(read_jsonl(out / "scores.jsonl")) == 2


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times a journal is read line by line."""
    from judge_engine import journal

    calls: list[int] = []
    real = journal._load_keys

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(journal, "_load_keys", counting)
    return calls


async def test_a_resume_starts_from_the_snapshot_only_when_it_holds(
    tmp_path: Path, loads: list[int], parsed: list[str]
) -> None:
    source = str(write_jsonl(tmp_path / "s.jsonl", _rows(4)))
    out = tmp_path / "out"
    async with ScriptedServer() as server:
        await grade(_config(source, server.url, out), KEY)
        loads.clear()
        parsed.clear()
        again, _ = await grade(_config(source, server.url, out), KEY)
        assert loads == [] and parsed == [] and again.already_done == 4  # the snapshot
        # Another panel: the snapshot's rows are another plan's; the journal is read.
        other, _ = await grade(_config(source, server.url, out, judge=("o3",)), KEY)
        assert loads and other.requests_sent == 4
        loads.clear()
        # The journal changed behind the snapshot's back: it is read again, correctly.
        journal = out / "journal.jsonl"
        lines = journal.read_bytes().splitlines(keepends=True)
        journal.write_bytes(b"".join(lines[:-1]))  # the latest verdict is gone
        fixed, _ = await grade(_config(source, server.url, out, judge=("o3",)), KEY)
        assert loads and fixed.requests_sent == 1
        loads.clear()
        (out / ".journal-index").write_bytes(b"garbage")
        parsed.clear()
        broken, _ = await grade(_config(source, server.url, out, judge=("o3",)), KEY)
    assert loads and broken.requests_sent == 0 and len(parsed) == 0 and broken.status == "done"
