"""Measurement end to end: a population with known truth, graded through the CLI by
simulated judges with known error rates per benchmark, a sample drawn and labelled,
and `report --labels --json` correcting the rates: the corrected intervals cover the
truth where the judge's own do not, and the regression is statsmodels'."""

from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from judge_engine.cli import main
from judge_engine.testing import synth
from judge_engine.testing.sim import SimConfig, Simulator

from .conftest import write_jsonl

KEY = "sk-measure-" + "m" * 24
#: The population: per benchmark its true success rate; the judge errs differently on
#: each (lenient on swebench: passes 45% of real failures; strict on tau2_retail).
RATES = {"swebench": 0.4, "tau2_retail": 0.55}
ERRORS = {"swebench": (0.95, 0.55), "tau2_retail": (0.7, 0.97)}
CONFIGS = [("tool_calling", "gpt-4.1"), ("smolagents_code", "kimi-k2.5"),
           ("tool_calling", "kimi-k2.5"), ("smolagents_code", "gpt-4.1")]  # fmt: skip
PER_BENCHMARK = 240


def _population(tmp_path: Path) -> tuple[str, dict[str, int]]:
    rng = random.Random(7)
    rows, truth = [], {}
    for benchmark, rate in RATES.items():
        for i in range(PER_BENCHMARK):
            harness, model = CONFIGS[i % len(CONFIGS)]
            success = rng.random() < rate
            session = f"{benchmark}-{i:03d}"
            row = synth.otel_row(session, benchmark, harness=harness, models=(model,),
                                 success=success, seed=i, calls=2, turn_bytes=80)  # fmt: skip
            row.pop("success", None)  # traces with no verdict of their own, as most are
            rows.append(row)
            truth[session] = int(success)
    return str(write_jsonl(tmp_path / "population.jsonl", rows)), truth


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    tmp_path = tmp_path_factory.mktemp("measure")
    source, truth = _population(tmp_path)
    out = tmp_path / "out"

    async def run() -> int:
        config = SimConfig(judge_error=ERRORS, api_key=KEY)
        async with Simulator(config) as sim:
            argv = ["grade", source, "--judge", "gpt-4.1-mini", "--base-url", sim.url,
                    "--out", str(out), "--quiet", "--api-key-env", "MEASURE_KEY"]  # fmt: skip
            return await anyio.to_thread.run_sync(main, argv)

    import os

    os.environ["MEASURE_KEY"] = KEY
    try:
        assert anyio.run(run) == 0
    finally:
        del os.environ["MEASURE_KEY"]
    return out, truth


def _fill(sheet: Path, truth: dict[str, int], target: Path) -> int:
    with open(sheet, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["label"] = str(truth[row["session_id"]])
        row["labeler"] = "test"
    with open(target, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def _report(out: Path, labels: Path, tmp_path: Path, *extra: str) -> dict[str, Any]:
    target = tmp_path / "report.json"
    assert main(["report", str(out), "--labels", str(labels), "--json", str(target),
                 *extra]) == 0  # fmt: skip
    return orjson.loads(target.read_bytes())  # type: ignore[no-any-return]


def _covers(entry: dict[str, Any] | None, value: float) -> bool:
    assert entry is not None
    lo, hi = entry["ci"]
    return bool(lo <= value <= hi)


def test_corrected_rates_cover_the_truth_where_the_judges_do_not(
    graded: tuple[Path, dict[str, int]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, truth = graded
    sheet = tmp_path / "sheet.csv"
    assert main(["labels", "sample", str(out), "--n", "160", "--per", "benchmark",
                 "--seed", "1", "--to", str(sheet)]) == 0  # fmt: skip
    said = capsys.readouterr().out
    assert "stratified by benchmark (swebench 80 of 240, tau2_retail 80 of 240)" in said
    with open(sheet, newline="") as handle:
        first = next(csv.DictReader(handle))
    assert first["label"] == "" and "judge:" not in ",".join(first)  # verdicts hidden
    assert first["final_answer"] and first["task"]
    labels = tmp_path / "labels.csv"
    assert _fill(sheet, truth, labels) == 160

    report = _report(out, labels, tmp_path)
    assert report["method"] == "ppi++"  # auto: the labels were drawn at random
    assert report["labels"]["n"] == 160 and report["labels"]["conflicts"] == 0
    truth_rate = {b: sum(v for k, v in truth.items() if k.startswith(b)) / PER_BENCHMARK
                  for b in RATES}  # fmt: skip
    overall = sum(truth.values()) / len(truth)

    # the judge as configured: its measured error rates' intervals hold the true ones
    judge = next(j for j in report["judges"] if j["judge"] == "gpt-4.1-mini")
    for benchmark, (sensitivity, specificity) in ERRORS.items():
        measured = judge["by_benchmark"][benchmark]
        assert _covers(measured["sensitivity"], sensitivity)
        assert _covers(measured["specificity"], specificity)
    assert judge["disagree"] and all(truth[s] != -1 for s in judge["disagree"])

    for method_report in (report, _report(out, labels, tmp_path, "--method", "rogan-gladen")):
        benchmarks = {b["benchmark"]: b for b in method_report["benchmarks"]}
        for benchmark, rate in truth_rate.items():
            entry = benchmarks[benchmark]
            assert _covers(entry["corrected"], rate), (method_report["method"], entry)
            assert not _covers(entry["judge_rate"], rate), entry  # the judge's own is off
            assert entry["corrected"]["method"] == method_report["method"]
        assert _covers(method_report["overall"]["corrected"], overall)
        # every configuration's balanced and pooled corrected rates are figures
        assert all(c["corrected"] and c["balanced_corrected"] for c in method_report["configs"])
    # the budget names both classes for each benchmark
    assert {b["benchmark"] for b in report["budget"]} == set(RATES)


def test_the_regression_is_statsmodels(graded: tuple[Path, dict[str, int]], tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    smf = pytest.importorskip("statsmodels.formula.api")
    out, _ = graded
    target = tmp_path / "r.json"
    assert main(["report", str(out), "--json", str(target)]) == 0
    fit = orjson.loads(target.read_bytes())["regression"]
    exported = tmp_path / "scores.jsonl"
    assert main(["export", str(out), "--to", "jsonl", "--file", str(exported)]) == 0
    rows = [orjson.loads(line) for line in exported.read_bytes().splitlines() if line]
    frame = pd.DataFrame(
        [
            {
                "success": r["task_success"],
                "benchmark": r["benchmark"],
                "agent_model": r["agent_model"],
                "harness": r["harness"],
            }
            for r in rows
        ]
    ).dropna()
    reference = fit["reference"]
    formula = "success ~ " + " + ".join(
        f"C({f}, Treatment(reference={reference[f]!r}))"
        for f in ("benchmark", "agent_model", "harness")
    )
    theirs = smf.ols(formula, data=frame).fit(cov_type="HC1")
    assert fit["n"] == len(frame)
    assert fit["r2"] == pytest.approx(theirs.rsquared, abs=1e-8)
    for coefficient in fit["coefficients"]:
        if coefficient["factor"] == "intercept":
            name = "Intercept"
        else:
            factor = coefficient["factor"]
            name = (f"C({factor}, Treatment(reference={reference[factor]!r}))"
                    f"[T.{coefficient['level']}]")  # fmt: skip
        assert coefficient["estimate"] == pytest.approx(theirs.params[name], abs=1e-8)
        assert coefficient["se_hc1"] == pytest.approx(theirs.bse[name], abs=1e-8)


def test_text_and_html_carry_the_measured_sections(
    graded: tuple[Path, dict[str, int]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, truth = graded
    labels = tmp_path / "labels.jsonl"
    chosen = sorted(truth)[::6]
    labels.write_bytes(b"".join(orjson.dumps({"session_id": s, "resolved": truth[s]}) + b"\n"
                                for s in chosen))  # fmt: skip
    capsys.readouterr()
    assert main(["report", str(out), "--labels", str(labels)]) == 0
    text = capsys.readouterr().out
    # not drawn by `labels sample`: Rogan-Gladen, and it says so
    for heading in ("## The judges against the labels", "## Corrected success (rogan-gladen)",
                    "### Label budget", "## Which factor explains success",
                    "## Dependability and cost against quality", "## How failed runs spend",
                    "## Best per benchmark"):  # fmt: skip
        assert heading in text
    html = tmp_path / "r.html"
    assert main(["report", str(out), "--labels", str(labels), "--html", str(html)]) == 0
    page = html.read_text()
    assert 'id="measured"' in page and "Corrected success (rogan-gladen)" in page
    assert page.count('<svg class="chart"') >= 5
    assert main(["report", str(out), "--method", "ppi++", "--labels", str(labels)]) == 2
    assert "needs labels drawn at random" in capsys.readouterr().err
