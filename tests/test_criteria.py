"""A rubric's own criteria, answered in the same reply as task_success: in the request
(the system message and the strict schema), in the journal, as their own score columns
in scores.jsonl and exports, and in the report; no extra request."""

from __future__ import annotations

from pathlib import Path

import anyio
import orjson
import pytest

from judge_engine.cli import main
from judge_engine.testing import synth
from judge_engine.testing.sim import SimConfig, Simulator

from .conftest import read_jsonl, write_jsonl

KEY = "sk-criteria-" + "c" * 24
RUBRICS = Path(__file__).resolve().parent.parent / "rubrics"


def test_criteria_become_score_columns_at_no_extra_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    own = tmp_path / "rubrics"
    own.mkdir()
    text = (RUBRICS / "swebench.toml").read_text()
    (own / "swebench.toml").write_text(
        text + '\n[[criteria]]\nname = "efficiency"\nkind = "scale_1_5"\n'
        'definition = "how few wasted steps the agent took"\n\n'
        '[[criteria]]\nname = "tests_run"\nkind = "pass_fail"\n'
        'definition = "the agent ran the tests before finishing"\n'
    )
    rows = [synth.otel_row(f"c{i}", "swebench", seed=i, success=i % 2 == 0) for i in range(6)]
    source = write_jsonl(tmp_path / "rows.jsonl", rows)
    out = tmp_path / "out"
    requests: list[int] = []

    async def run() -> int:
        async with Simulator(SimConfig(disagreement=0.0)) as sim:
            argv = ["grade", str(source), "--judge", "gpt-4.1", "--base-url", sim.url,
                    "--out", str(out), "--quiet", "--rubrics", str(own)]  # fmt: skip
            code = await anyio.to_thread.run_sync(main, argv)
            requests.append(int(sim.stats()["requests"]))
            return code

    assert anyio.run(run) == 0
    assert requests == [6]  # one request a session, criteria and all
    records = read_jsonl(out / "journal.jsonl")
    for record in records:
        expected = {"efficiency": 4 if record["success"] else 2, "tests_run": record["success"]}
        assert record["criteria"] == expected
    scores = read_jsonl(out / "scores.jsonl")
    assert all(set(s["scores"]) == {"task_success", "criterion:efficiency",
                                    "criterion:tests_run"} for s in scores)  # fmt: skip
    capsys.readouterr()
    assert main(["export", str(out), "--to", "jsonl", "--file", "-"]) == 0
    exported = [orjson.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    assert all(row["criterion:efficiency"] in (2, 4) for row in exported)
    assert all(row["gpt_4_1__criterion:tests_run"] in (0, 1) for row in exported)
    target = tmp_path / "r.json"
    assert main(["report", str(out), "--json", str(target)]) == 0
    criteria = {c["criterion"]: c for c in orjson.loads(target.read_bytes())["criteria"]}
    assert criteria["tests_run"]["n"] == 6 and criteria["tests_run"]["mean"] == pytest.approx(0.5)
    assert criteria["efficiency"]["mean"] == pytest.approx(3.0)
