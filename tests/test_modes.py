"""Why sessions failed, end to end: the simulator's judges name failure modes by its
documented rules (`testing.sim.CUE_MODES`); the report counts them with Wilson
intervals over the failed sessions, per factor; `agree` measures the judges' agreement
on the mode; `export --where ... --to rows` writes the picked sessions' source rows
byte for byte (JSON lines) or with the source's schema (Parquet)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from judge_engine.cli import main
from judge_engine.stats import wilson
from judge_engine.testing import synth
from judge_engine.testing.sim import CUE_MODES, SimConfig, Simulator

from .conftest import read_jsonl, write_jsonl, write_parquet

KEY = "sk-modes-" + "m" * 24


def _rows() -> list[dict[str, Any]]:
    rows = []
    for i in range(60):
        benchmark = ("swebench", "tau2_retail", "appworld")[i % 3]
        harness = ("tool_calling", "smolagents_code")[i % 2]
        rows.append(synth.otel_row(f"m{i:03d}", benchmark, harness=harness, seed=i,
                                   success=i % 4 == 0, calls=2, turn_bytes=60))  # fmt: skip
    return rows


def _grade(source: Path, out: Path, *judges: str) -> None:
    async def run() -> int:
        async with Simulator(SimConfig(disagreement=0.0, mode_disagreement=0.2)) as sim:
            argv = ["grade", str(source), "--base-url", sim.url, "--out", str(out), "--quiet"]
            for judge in judges:
                argv += ["--judge", judge]
            return await anyio.to_thread.run_sync(main, argv)

    assert anyio.run(run) == 0


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("modes")
    source = write_jsonl(folder / "rows.jsonl", _rows())
    out = folder / "out"
    import os

    os.environ["OPENAI_API_KEY"] = KEY
    try:
        _grade(source, out, "gpt-4.1", "o3")
    finally:
        del os.environ["OPENAI_API_KEY"]
    return source, out


def test_modes_are_counted_with_intervals(graded: tuple[Path, Path], tmp_path: Path) -> None:
    _, out = graded
    records = [r for r in read_jsonl(out / "journal.jsonl") if r["slot"] == "gpt-4.1"]
    failed = [r for r in records if r["success"] == 0]
    assert failed and all(r["failure_mode"] in (*CUE_MODES.values(), "other") for r in failed)
    assert all(r["failure_mode"] == "none" for r in records if r["success"] == 1)
    assert all(isinstance(r["failure_step"], int) and r["failure_note"] for r in failed)
    target = tmp_path / "r.json"
    assert main(["report", str(out), "--json", str(target)]) == 0
    modes = orjson.loads(target.read_bytes())["failure_modes"]
    assert modes["n_failed"] == len(failed)
    counts: dict[str, int] = {}
    for r in failed:
        counts[r["failure_mode"]] = counts.get(r["failure_mode"], 0) + 1
    for code, count in counts.items():
        entry = modes["overall"][code]
        low, high = wilson(count, len(failed))  # type: ignore[misc]
        assert entry["count"] == count
        assert entry["share"] == pytest.approx(count / len(failed), abs=1e-6)
        assert entry["ci"] == pytest.approx([low, high], abs=1e-6)
    assert sum(e["count"] for e in modes["overall"].values()) == len(failed)
    by_benchmark = [b for b in modes["by"] if b["factor"] == "benchmark"]
    assert sum(b["n_failed"] for b in by_benchmark) == len(failed)
    assert {b["factor"] for b in modes["by"]} == {"benchmark", "harness", "agent_model"}


def test_the_judges_agreement_on_the_mode(graded: tuple[Path, Path], tmp_path: Path) -> None:
    _, out = graded
    target = tmp_path / "agree.json"
    assert main(["agree", str(out), "--json", str(target)]) == 0
    result = orjson.loads(target.read_bytes())["failure_modes"]
    (pair,) = result["pairs"]
    records = read_jsonl(out / "journal.jsonl")
    by: dict[str, dict[str, str]] = {}
    for r in records:
        if r["success"] == 0:
            by.setdefault(r["session_id"], {})[r["slot"]] = r["failure_mode"]
    both = [(m["gpt-4.1"], m["o3"]) for m in by.values() if len(m) == 2]
    assert pair["n"] == len(both)
    assert pair["agree"] == pytest.approx(sum(a == b for a, b in both) / len(both), abs=1e-4)
    assert 0 < pair["agree"] < 1  # each judge names `other` for its own fifth


def test_rows_of_a_mode_are_the_source_lines_byte_for_byte(
    graded: tuple[Path, Path], tmp_path: Path
) -> None:
    source, out = graded
    records = {r["session_id"]: r for r in read_jsonl(out / "journal.jsonl")
               if r["slot"] == "gpt-4.1"}  # fmt: skip
    mode = "premature_termination"
    wanted = {s for s, r in records.items() if r["failure_mode"] == mode}
    assert wanted
    target = tmp_path / "picked.jsonl"
    assert main(["export", str(out), "--where", f"failure_mode={mode}", "--to", "rows",
                 str(target)]) == 0  # fmt: skip
    lines = source.read_bytes().splitlines(keepends=True)
    expected = [line for line in lines if orjson.loads(line)["session_id"] in wanted]
    assert target.read_bytes() == b"".join(expected)
    # AND, and !=
    both = tmp_path / "both.jsonl"
    assert main(["export", str(out), "--where", f"failure_mode={mode}", "--where",
                 "benchmark!=swebench", "--to", "rows", str(both)]) == 0  # fmt: skip
    kept = [orjson.loads(line)["session_id"] for line in both.read_bytes().splitlines()]
    assert set(kept) == {s for s in wanted if records[s]["benchmark"] != "swebench"}


def test_rows_from_parquet_keep_the_schema_and_judge_vs_label(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    rows = _rows()[:24]
    source = write_parquet(tmp_path / "rows.parquet", rows)
    out = tmp_path / "out"
    import os

    os.environ["OPENAI_API_KEY"] = KEY
    try:

        async def run() -> int:
            async with Simulator(SimConfig(disagreement=0.25)) as sim:
                argv = ["grade", str(source), "--judge", "gpt-4.1", "--base-url", sim.url,
                        "--out", str(out), "--quiet"]  # fmt: skip
                return await anyio.to_thread.run_sync(main, argv)

        assert anyio.run(run) == 0
    finally:
        del os.environ["OPENAI_API_KEY"]
    records = {r["session_id"]: r for r in read_jsonl(out / "journal.jsonl")}
    truth = {row["session_id"]: int(row["success"]) for row in rows}
    wrong = {s for s, r in records.items() if r["success"] != truth[s]}
    assert wrong
    target = tmp_path / "wrong.parquet"
    assert main(["export", str(out), "--where", "judge_vs_label=disagree", "--to", "rows",
                 str(target)]) == 0  # fmt: skip
    picked = pq.read_table(target)
    assert picked.schema == pq.read_table(source).schema
    assert set(picked.column("session_id").to_pylist()) == wrong
    assert main(["export", str(out), "--where", "nonsense=1", "--to", "rows",
                 str(tmp_path / "x.jsonl")]) == 2  # fmt: skip
