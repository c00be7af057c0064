"""Sources: files, folders, globs, stdin and the hub; every bad row written down."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from judge_engine.sessions import Rejection, Session, SourceError, count_rows, read_sessions
from judge_engine.sessions.sources import parse_hub_spec
from judge_engine.testing import synth

from .conftest import read_jsonl, write_jsonl, write_parquet


def _split(items: list[Session | Rejection]) -> tuple[list[Session], list[Rejection]]:
    return (
        [i for i in items if isinstance(i, Session)],
        [i for i in items if isinstance(i, Rejection)],
    )


def test_every_kind_of_bad_row_is_rejected_with_its_reason(tmp_path: Path) -> None:
    good = synth.openai_row("ok-1")
    path = write_jsonl(
        tmp_path / "mixed.jsonl",
        [
            good,
            b'{"id": "broken", "messages": [',  # not JSON
            b'{"id": "latin", "messages": "caf\xe9"}',  # not UTF-8
            {"unexpected": "columns"},  # unknown schema
            b"[1, 2, 3]",  # not an object
            {"id": "empty", "messages": []},  # no conversation
            synth.openai_row("ok-1"),  # duplicate id
            synth.hermes_row("ok-2"),
        ],
    )
    sessions, rejected = _split(list(read_sessions([str(path)])))
    assert [s.session_id for s in sessions] == ["ok-1", "ok-2"]
    reasons = {(r.row, r.reason) for r in rejected}
    assert reasons == {
        (1, "invalid_json"),
        (2, "invalid_utf8"),
        (3, "unknown_schema"),
        (4, "unknown_schema"),
        (5, "no_conversation"),
        (6, "duplicate_session_id"),
    }
    duplicate = next(r for r in rejected if r.reason == "duplicate_session_id")
    assert duplicate.session_id == "ok-1"
    assert all(r.source == str(path) for r in rejected)


def test_blank_lines_keep_row_numbers_and_nul_bytes_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "gaps.jsonl"
    path.write_bytes(b"\n" + orjson.dumps(synth.openai_row("a")) + b"\n\n" + b'{"id": "\x00"}\n')
    sessions, rejected = _split(list(read_sessions([str(path)])))
    assert sessions[0].source.row == 1
    assert rejected[0].row == 3 and rejected[0].reason == "invalid_json"


def test_parquet_folder_glob_json_and_several_sources(tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    shards.mkdir()
    write_parquet(shards / "a.parquet", [synth.otel_row(f"p{i}", "swebench") for i in range(3)])
    write_parquet(
        shards / "b.parquet",
        [synth.agenttrace_row(f"a{i}", "mbpp", hub_form=True) for i in range(2)],
    )
    (shards / "notes.txt").write_text("ignored")
    array = tmp_path / "rows.json"
    array.write_bytes(orjson.dumps([synth.openai_row("j1"), synth.openai_row("j2")]))
    single = tmp_path / "one.json"
    single.write_bytes(orjson.dumps(synth.hermes_row("h1"), option=orjson.OPT_INDENT_2))
    lines = write_jsonl(tmp_path / "lines.json", [synth.openai_row("l1")])

    folder = [s.session_id for s in read_sessions([str(shards)]) if isinstance(s, Session)]
    assert folder == ["p0", "p1", "p2", "a0", "a1"]
    globbed = list(read_sessions([str(tmp_path / "shards" / "*.parquet")]))
    assert len(globbed) == 5
    others = [s.session_id for s in read_sessions([str(array), str(single), str(lines)])]
    assert others == ["j1", "j2", "h1", "l1"]
    assert count_rows(str(shards / "a.parquet")) == 3


def test_parquet_otel_rows_with_nested_structs(tmp_path: Path) -> None:
    rows = [synth.otel_row(f"s{i}", "tau2_retail", parsed_messages=False) for i in range(2)]
    path = write_parquet(tmp_path / "otel.parquet", rows)
    sessions = [s for s in read_sessions([str(path)]) if isinstance(s, Session)]
    assert [s.session_id for s in sessions] == ["s0", "s1"]
    source = sessions[0].source
    assert (source.source, source.row, source.format) == (str(path), 0, "otel")
    assert len(source.fingerprint) >= 9  # a checksum of the row
    assert sessions[1].messages[-1].role == "assistant"


def test_missing_sources_are_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        list(read_sessions([str(tmp_path / "nope.jsonl")]))
    with pytest.raises(SourceError, match="no file matches"):
        list(read_sessions([str(tmp_path / "*.parquet")]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="holds no"):
        list(read_sessions([str(tmp_path / "empty")]))


def test_stdin_source(tmp_path: Path) -> None:
    data = orjson.dumps(synth.openai_row("stdin-1")) + b"\n"
    result = subprocess.run(
        [sys.executable, "-m", "judge_engine", "sessions", "-", "--json"],
        input=data,
        capture_output=True,
        check=True,
    )
    counts = orjson.loads(result.stdout)
    assert counts["sessions"] == 1 and counts["format"] == {"openai": 1}


def test_hub_spec_parsing() -> None:
    assert parse_hub_spec("hf://lambda/hermes-agent-reasoning-traces?config=kimi&split=train") == (
        "lambda/hermes-agent-reasoning-traces",
        "kimi",
        "train",
        None,
    )
    assert parse_hub_spec("hf://Exgentic/agent-llm-traces")[2] == "train"
    with pytest.raises(SourceError):
        parse_hub_spec("hf://just-a-name")
    with pytest.raises(SourceError, match="unknown option"):
        parse_hub_spec("hf://a/b?shard=3")


def test_unreachable_hub_fails_fast_with_one_line(tmp_path: Path) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "judge_engine", "sessions", "hf://nobody/no-such-dataset?config=x"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")},
        check=False,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("judge-engine: error: cannot stream nobody/no-such-dataset")
    assert "Traceback" not in result.stderr
    assert elapsed < 20  # far below the ~23 s the hub client spends retrying when online


def test_rejected_rows_are_written_by_the_sessions_command(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", [synth.openai_row("a"), {"x": 1}])
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "judge_engine", "sessions", str(path), "--out", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "1 sessions, 1 rejected rows" in result.stdout
    rejected = read_jsonl(out / "rejected.jsonl")
    assert rejected == [
        {"source": str(path), "row": 1, "reason": "unknown_schema", "detail": rejected[0]["detail"]}
    ]


def test_a_glob_or_folder_that_is_out_reads_the_users_files_and_skips_outs_own(
    tmp_path: Path,
) -> None:
    from judge_engine.sessions import SourceError, expand

    out = tmp_path / "out"
    out.mkdir()
    for name in ("journal.jsonl", "scores.jsonl", "rejected.jsonl", "transcripts.jsonl",
                 "journal-20260101-000000.jsonl", "requests.jsonl"):  # fmt: skip
        (out / name).write_text("{}\n")
    (out / "traces.jsonl").write_text("{}\n")
    assert expand([str(out / "*.jsonl")], exclude=(out,)) == [str(out / "traces.jsonl")]
    assert expand([str(out)], exclude=(out,)) == [str(out / "traces.jsonl")]
    (out / "traces.jsonl").unlink()
    with pytest.raises(SourceError, match="only judge-engine's own results files"):
        expand([str(out / "*.jsonl")], exclude=(out,))
    with pytest.raises(SourceError, match="only judge-engine's own results files"):
        expand([str(out)], exclude=(out,))
    # A results folder below a source folder is still never read.
    (tmp_path / "mine.jsonl").write_text("{}\n")
    assert expand([str(tmp_path)], exclude=(out,)) == [str(tmp_path / "mine.jsonl")]
