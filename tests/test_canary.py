"""Canaries: a labelled set graded in every run, journaled apart, never counted; a judge
whose sensitivity or specificity moved beyond chance since the last run, or whose
model or rubric changed, is named in one line."""

from __future__ import annotations

from pathlib import Path

import anyio
import orjson
import pytest

from judge_engine import canary
from judge_engine.cli import main
from judge_engine.testing import synth
from judge_engine.testing.sim import SimConfig, Simulator

from .conftest import read_jsonl, write_jsonl

KEY = "sk-canary-" + "c" * 24


def test_the_two_proportion_test_is_statsmodels() -> None:
    proportion = pytest.importorskip("statsmodels.stats.proportion")
    for x1, n1, x2, n2 in ((18, 20, 11, 20), (40, 50, 38, 50), (5, 9, 9, 9), (3, 30, 0, 12)):
        _, expected = proportion.proportions_ztest([x1, x2], [n1, n2])
        assert canary.two_proportion_p(x1, n1, x2, n2) == pytest.approx(expected, abs=1e-12)
    assert canary.two_proportion_p(5, 5, 7, 7) == 1.0
    assert canary.two_proportion_p(1, 0, 1, 3) is None


def test_compare_names_what_moved() -> None:
    judge = {"tp": 18, "m1": 20, "tn": 18, "m0": 20, "served": ["gpt-4.1-2025-04-14"],
             "rubrics": {"swebench": "aaa"}}  # fmt: skip
    before = {"run": "run-1", "judges": {"j": judge}}
    same = {"run": "run-2", "judges": {"j": {**judge, "tp": 17}}}
    assert canary.compare(before, same) == []
    moved = {"run": "run-2", "judges": {"j": {**judge, "tp": 9, "served": ["gpt-4.1-2025-09-30"],
                                              "rubrics": {"swebench": "bbb"}}}}  # fmt: skip
    lines = canary.compare(before, moved)
    assert len(lines) == 3
    assert "sensitivity moved from 90% (n=20) in run-1 to 45% (n=20) now" in lines[0]
    assert "answered by gpt-4.1-2025-04-14 in run-1, by gpt-4.1-2025-09-30 now" in lines[1]
    assert "rubric swebench changed (aaa in run-1, bbb now)" in lines[2]


def _rows(prefix: str, count: int) -> list[dict[str, object]]:
    return [
        synth.otel_row(
            f"{prefix}{i}", "swebench", success=i % 2 == 0, seed=i, calls=2, turn_bytes=60
        )
        for i in range(count)
    ]


def test_canaries_are_graded_every_run_apart_and_a_drifting_judge_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    source = str(write_jsonl(tmp_path / "sessions.jsonl", _rows("s", 6)))
    canaries = str(write_jsonl(tmp_path / "canaries.jsonl", _rows("canary-", 60)))
    out = tmp_path / "out"

    def grade(error: tuple[float, float]) -> tuple[int, str]:
        async def run() -> int:
            async with Simulator(SimConfig(judge_error={"*": error})) as sim:
                argv = ["grade", source, "--judge", "gpt-4.1", "--base-url", sim.url,
                        "--out", str(out), "--quiet", "--canary", canaries]  # fmt: skip
                return await anyio.to_thread.run_sync(main, argv)

        code = anyio.run(run)
        return code, capsys.readouterr().out

    code, said = grade((0.95, 0.95))
    assert code == 0
    assert "canaries: run-1 graded 60 canary sessions (60 labelled verdicts" in said
    assert "the first canary run" in said
    # never counted: the run's journal and score columns hold its own sessions only
    assert {r["session_id"] for r in read_jsonl(out / "journal.jsonl")} == {
        f"s{i}" for i in range(6)
    }
    assert len(read_jsonl(out / "scores.jsonl")) == 6
    code, said = grade((0.95, 0.95))  # nothing new to grade, the canaries again
    assert code == 0 and "nothing to do" in said
    assert "canaries: no judge moved beyond chance since run-1" in said
    code, said = grade((0.55, 0.95))  # the judge now fails many real successes
    assert code == 0
    assert "canaries: judge slot gpt-4.1's sensitivity moved from" in said
    assert "beyond chance" in said and "specificity moved" not in said
    assert sorted(p.name for p in (out / "canaries").iterdir()) == [
        "history.jsonl", "run-1", "run-2", "run-3",
    ]  # fmt: skip
    target = tmp_path / "report.json"
    assert main(["report", str(out), "--json", str(target)]) == 0
    report = orjson.loads(target.read_bytes())
    assert len(report["canaries"]["runs"]) == 3
    assert report["canaries"]["warnings"][0].startswith("canaries: judge slot gpt-4.1's")
    assert report["sessions"] == 6


def test_a_missing_canary_file_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = str(write_jsonl(tmp_path / "sessions.jsonl", _rows("s", 1)))
    argv = ["grade", source, "--judge", "gpt-4.1", "--base-url", "http://127.0.0.1:9/v1",
            "--out", str(tmp_path / "out"), "--canary", str(tmp_path / "nope.jsonl")]  # fmt: skip
    assert main(argv) == 2
    assert (
        "--canary" in capsys.readouterr().err and not (tmp_path / "out" / "journal.jsonl").exists()
    )
