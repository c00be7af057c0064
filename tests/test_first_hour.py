"""The first hour on real traces: what a new user sees is true and helpful. Misspelt
options and ids get suggestions, sessions can be listed, exports keep their column
types, and the numbers a run prints add up."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from judge_engine.cli import main
from judge_engine.testing import synth

from .conftest import write_jsonl

KEY = "sk-first-hour-" + "f" * 24


def _source(tmp_path: Path, count: int = 4, **kwargs: object) -> str:
    rows = [synth.otel_row(f"s{i}", "swebench", seed=i, **kwargs) for i in range(count)]  # type: ignore[arg-type]
    return str(write_jsonl(tmp_path / "sessions.jsonl", rows))


@pytest.mark.parametrize(
    ("argv", "suggested"),
    [
        (["grade", "x.jsonl", "--judg", "gpt-4.1"], "--judge"),
        (["report", "out", "--majorty"], "--majority"),
        (["preview", "x.jsonl", "--max-prompt-token", "9000"], "--max-prompt-tokens"),
    ],
)
def test_a_misspelt_option_gets_did_you_mean(
    argv: list[str], suggested: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"did you mean {suggested}" in err and f"judge-engine {argv[0]} --help" in err
    assert err.count("\n") == 1


def test_an_unknown_session_id_suggests_the_closest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _source(tmp_path)
    assert main(["show", source, "--session", "s_1"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 's1'" in err
    assert main(["show", source, "--session", "nothing-alike-at-all"]) == 2
    assert "--list" in capsys.readouterr().err


def test_sessions_lists_one_line_per_session(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _source(tmp_path, 3, models=("openai/azure/gpt-5.4", "gpt-4.1-mini"))
    assert main(["sessions", source, "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[:5] for line in lines] == [
        [f"s{i}", "otel", "swebench", "tool_calling", "gpt-5.4"] for i in range(3)
    ]
    assert main(["sessions", source, "--list", "--json"]) == 0
    rows = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0]["agent_model"] == "gpt-5.4" and rows[0]["bytes"] > 0
    assert rows[0]["other_models"] == ["gpt-4.1-mini"]


def test_parquet_exports_keep_text_columns_as_text_when_empty(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from judge_engine.sinks import export

    from .conftest import make_record

    out = tmp_path / "out"
    out.mkdir()
    records = [make_record(f"s{i}", "gpt-4.1") for i in range(3)]
    (out / "journal.jsonl").write_bytes(b"".join(r.to_json() for r in records))
    path, rows = export(out, "parquet")
    schema = pq.read_schema(path)
    assert rows == 3
    assert str(schema.field("gpt_4_1__error").type) == "string"  # every value empty
    assert str(schema.field("task_success").type) == "int8"
    assert str(schema.field("agent_model").type) == "string"


def test_graded_sessions_group_by_their_main_model_in_reports_and_exports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import anyio

    from judge_engine.testing.sim import SimConfig, Simulator

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    rows = [
        synth.otel_row("a", "swebench", models=("openai/azure/gpt-5.4",)),
        synth.otel_row("b", "swebench", models=("azure/gpt-5.4",)),
        synth.otel_row("c", "swebench", models=("gpt-5.4", "default")),
    ]
    source = str(write_jsonl(tmp_path / "s.jsonl", rows))
    out = tmp_path / "out"

    async def run() -> int:
        async with Simulator(SimConfig()) as sim:
            argv = ["grade", source, "--judge", "gpt-4.1", "--base-url", sim.url, "--out",
                    str(out), "--quiet"]  # fmt: skip
            return await anyio.to_thread.run_sync(main, argv)

    assert anyio.run(run) == 0
    capsys.readouterr()
    assert main(["report", str(out), "--format", "csv"]) == 0
    text = capsys.readouterr().out
    configs = [line for line in text.splitlines() if line.startswith("configuration,")]
    assert len(configs) == 1 and ",gpt-5.4," in configs[0]
    assert main(["export", str(out), "--to", "jsonl", "--file", "-"]) == 0
    exported = [orjson.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    assert {row["agent_model"] for row in exported} == {"gpt-5.4"}
    assert os.path.exists(out / "scores.jsonl")
