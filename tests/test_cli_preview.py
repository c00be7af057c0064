"""`judge-engine preview`, `sessions` and `rubrics` from the command line."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from judge_engine.cli import main
from judge_engine.prompt import estimate_tokens
from judge_engine.testing import synth

from .conftest import read_jsonl, write_jsonl, write_parquet


@pytest.fixture
def sources(tmp_path: Path) -> list[str]:
    otel = write_parquet(
        tmp_path / "otel.parquet",
        [
            synth.otel_row(f"o{i}", b)
            for i, b in enumerate(["swebench", "tau2_airline", "appworld"])
        ],
    )
    mixed = write_jsonl(
        tmp_path / "mixed.jsonl",
        [
            synth.agenttrace_row("a1", "mbpp"),
            synth.hermes_row("h1"),
            synth.openai_row("c1"),
            b"not json",
            {"id": "o0", "messages": [{"role": "user", "content": "dup"}]},
        ],
    )
    return [str(otel), str(mixed)]


def test_preview_writes_one_exact_request_per_session_and_judge(
    sources: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main(
        [
            "preview",
            *sources,
            "--judge",
            "gpt-4.1-mini",
            "--judge",
            "claude-sonnet-4-5",
            "--max-prompt-tokens",
            "6000",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    lines = read_jsonl(out / "requests.jsonl")
    assert len(lines) == 6 * 2
    assert {tuple(sorted(line)) for line in lines} == {
        ("body", "judge_model", "rubric", "rubric_version", "sample", "session_id", "slot")
    }
    by_session = {(x["session_id"], x["judge_model"]): x for x in lines}
    assert by_session[("o1", "claude-sonnet-4-5")]["rubric"] == "tau2_airline"
    assert by_session[("a1", "gpt-4.1-mini")]["rubric"] == "mbpp"
    assert by_session[("h1", "gpt-4.1-mini")]["rubric"] == "default"
    for line in lines:
        assert line["body"]["model"] == line["judge_model"]
        assert estimate_tokens(orjson.dumps(line["body"]["messages"]).decode()) <= 6000 * 1.02
    rejected = read_jsonl(out / "rejected.jsonl")
    assert [(r["row"], r["reason"]) for r in rejected] == [
        (3, "invalid_json"),
        (4, "duplicate_session_id"),
    ]
    assert "6 sessions -> 12 requests" in capsys.readouterr().out


def test_preview_limit_and_usage_errors(
    sources: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["preview", *sources, "--judge", "j", "--limit", "2", "--out", str(out)]) == 0
    assert len(read_jsonl(out / "requests.jsonl")) == 2
    assert main(["preview", *sources, "--judge", "j", "--max-prompt-tokens", "500"]) == 2
    assert "--max-prompt-tokens must be a whole number from 2,000" in capsys.readouterr().err
    assert main(["preview", "missing.jsonl", "--judge", "j"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_sessions_counts_by_format_benchmark_harness_and_model(
    sources: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sessions", *sources, "--json"]) == 0
    counts = orjson.loads(capsys.readouterr().out)
    assert counts["sessions"] == 6
    assert counts["format"] == {"otel": 3, "agenttrace": 1, "hermes": 1, "openai": 1}
    assert counts["benchmark"]["swebench"] == 1 and counts["benchmark"]["unknown"] == 2
    assert counts["agent_model"]["claude-opus-4-5"] == 3
    assert counts["rejected"] == {"invalid_json": 1, "duplicate_session_id": 1}


def test_rubrics_command_lists_versions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rubrics"]) == 0
    out = capsys.readouterr().out
    assert "tau2_retail" in out and "aliases:" in out


def test_show_prints_what_the_judge_reads_and_how_the_trace_was_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    row = synth.otel_row("s-show", "swebench", calls=3, side_call=True)
    source = str(write_jsonl(tmp_path / "t.jsonl", [row]))
    assert main(["show", source, "--session", "s-show", "--system"]) == 0
    out = capsys.readouterr().out
    assert "session s-show" in out
    assert "task: call 1 of 4" in out and "input message 2 of 2" in out
    assert (
        "side calls left out (1):" in out and "another conversation (it opens 'Pick tools.')" in out
    )
    assert "===== system message =====" in out.replace("=" * 30, "=====")
    reads = out.split("what the judge reads (user message)")[1]
    assert "<<<BEGIN UNTRUSTED RECORD" in reads and "## Task" in reads
    assert "Which tools fit?" not in reads


def test_show_names_a_missing_session_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = str(write_jsonl(tmp_path / "t.jsonl", [synth.otel_row("a", "swebench")]))
    assert main(["show", source, "--session", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"judge-engine: error: no session 'nope' in {source} (`judge-engine sessions SOURCE "
        "--list` lists the ids)"
    ]


def test_sessions_counts_how_well_each_format_was_read(
    sources: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sessions", *sources, "--json"]) == 0
    payload = orjson.loads(capsys.readouterr().out)
    fidelity = payload["fidelity"]
    assert set(fidelity) == {"otel", "agenttrace", "hermes", "openai"}
    for counts in fidelity.values():
        assert counts["unknown_parts"] == {"total": 0, "sessions": 0}
        assert counts["orphan_results"]["total"] == 0
    assert main(["sessions", *sources]) == 0
    text = capsys.readouterr().out
    assert "how the traces were read" in text and "tool results whose call is not shown" in text
