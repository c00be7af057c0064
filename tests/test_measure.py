"""The measurement's statistics, against independent implementations and worked examples.

- PPI++ against `ppi_py.ppi_mean_ci` (the authors' own package);
- Rogan-Gladen against a correction worked by hand;
- the regression against statsmodels' `ols(...).fit(cov_type="HC1")` to 1e-8;
- coverage by simulation: over 1,000 seeded replications of a population with known
  truth and judges with known error rates, the corrected 95% intervals cover the truth
  in 93-97% of them, while the judge's raw Wilson interval's coverage is reported;
- judge quality, labels, sampling and the findings on small worked cases.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import pytest

from judge_engine.measure import analysis
from judge_engine.measure.correct import (
    MIN_YOUDEN,
    Accuracy,
    Stratum,
    label_budget,
    ppi_mean,
    rogan_gladen,
    rogan_gladen_mix,
)
from judge_engine.measure.findings import best, frontier, spending
from judge_engine.measure.labels import (
    Candidate,
    LabelsError,
    merge,
    read_labels,
    sample,
    sheet,
)
from judge_engine.measure.quality import judge_quality
from judge_engine.measure.regress import chi2_sf, regression
from judge_engine.stats import wilson

ppi_py = pytest.importorskip("ppi_py")
smf = pytest.importorskip("statsmodels.formula.api")
pd = pytest.importorskip("pandas")


# -- PPI++ ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_ppi_matches_ppi_py(seed: int) -> None:
    rng = np.random.default_rng(seed)
    big_n, n = int(rng.integers(300, 3000)), int(rng.integers(30, 300))
    truth_rate, sensitivity, specificity = rng.uniform(0.2, 0.8), rng.uniform(0.6, 0.98), 0.8
    y = (rng.random(n) < truth_rate).astype(int)
    yhat = np.where(y == 1, rng.random(n) < sensitivity, rng.random(n) >= specificity).astype(int)
    truth_unl = rng.random(big_n) < truth_rate
    unl = np.where(truth_unl, rng.random(big_n) < sensitivity, rng.random(big_n) >= specificity)
    ours = ppi_mean(list(y), list(yhat), list(unl.astype(int)))
    lo, hi = ppi_py.ppi_mean_ci(y.astype(float), yhat.astype(float), unl.astype(float), alpha=0.05)
    point = ppi_py.ppi_mean_pointestimate(y.astype(float), yhat.astype(float), unl.astype(float))
    assert ours.value == pytest.approx(float(np.ravel(point)[0]), abs=1e-10)
    assert ours.ci is not None
    assert ours.ci[0] == pytest.approx(max(0.0, float(np.ravel(lo)[0])), abs=1e-10)
    assert ours.ci[1] == pytest.approx(min(1.0, float(np.ravel(hi)[0])), abs=1e-10)
    assert ours.method == "ppi++"


def test_ppi_needs_labels() -> None:
    assert ppi_mean([1], [1], [0, 1]).value is None
    assert "fewer than 2" in ppi_mean([], [], [0, 1]).reason


# -- Rogan-Gladen ----------------------------------------------------------------------


def test_rogan_gladen_worked_by_hand() -> None:
    """120 of 200 verdicts pass; among 50 truly passed labelled sessions the judge passed
    45 (sensitivity 0.9), among 50 truly failed it failed 40 (specificity 0.8).

    theta = (0.6 + 0.8 - 1) / (0.9 + 0.8 - 1) = 0.4 / 0.7 = 4/7 = 0.5714286
      V(p)  = 0.6 * 0.4 / 200 = 0.0012
      V(q0) = 0.8 * 0.2 / 50  = 0.0032
      V(q1) = 0.9 * 0.1 / 50  = 0.0018
    the delta method's variance:
      [V(p) + (3/7)^2 V(q0) + (4/7)^2 V(q1)] / 0.49
        = [0.0012 + 0.00058776 + 0.00058776] / 0.49 = 0.00484798
    the interval (MOVER): Wilson's interval of p is (0.530837, 0.665394); mapped, the
    verdicts' parts below and above are (0.6 - 0.530837) / 0.7 = 0.098805 and
    (0.665394 - 0.6) / 0.7 = 0.093420; the labels' variance is
    (0.00058776 + 0.00058776) / 0.49 = 0.00239900, so
      lower = 0.571429 - sqrt(0.098805^2 + 1.959964^2 * 0.002399) = 0.433668
      upper = 0.571429 + sqrt(0.093420^2 + 1.959964^2 * 0.002399) = 0.705380
    """
    corrected = rogan_gladen(120, 200, Accuracy(m1=50, passed_of_passed=45, m0=50,
                                                 failed_of_failed=40))  # fmt: skip
    assert corrected.value == pytest.approx(4 / 7, abs=1e-12)
    assert corrected.variance == pytest.approx(0.00484798, abs=5e-8)
    assert corrected.ci == pytest.approx((0.433668, 0.705380), abs=5e-6)
    assert corrected.method == "rogan-gladen" and corrected.n_labels == 100


def test_rogan_gladen_refuses_a_coin() -> None:
    # sensitivity 0.6, specificity 0.55: Youden 0.15 < 0.2
    corrected = rogan_gladen(50, 100, Accuracy(20, 12, 20, 11))
    assert corrected.value is None and corrected.ci is None
    assert "little better than a coin" in corrected.reason and str(MIN_YOUDEN) in corrected.reason
    assert rogan_gladen(5, 10, Accuracy(0, 0, 10, 9)).value is None  # no truly passed label


def test_rogan_gladen_clips_to_the_unit_interval() -> None:
    corrected = rogan_gladen(2, 100, Accuracy(50, 45, 50, 40))  # (0.02 + 0.8 - 1) / 0.7 < 0
    assert corrected.value == 0.0 and corrected.ci is not None and corrected.ci[0] == 0.0


def test_a_mix_of_one_stratum_is_the_single_correction() -> None:
    accuracy = Accuracy(40, 33, 60, 51)
    single = rogan_gladen(70, 150, accuracy)
    mixed = rogan_gladen_mix([Stratum(1.0, 70, 150, "b")], {"b": accuracy})
    assert mixed.value == pytest.approx(single.value) and mixed.ci == pytest.approx(single.ci)


def test_strata_sharing_a_judge_error_add_their_derivatives() -> None:
    """Two halves of one benchmark, each corrected with the same sensitivity and
    specificity, combine to exactly the correction of the whole: the label terms are
    shared, not counted as independent."""
    accuracy = Accuracy(40, 36, 40, 32)
    whole = rogan_gladen(120, 200, accuracy)
    halves = rogan_gladen_mix(
        [Stratum(0.5, 60, 100, "b"), Stratum(0.5, 60, 100, "b")], {"b": accuracy}
    )
    assert halves.value == pytest.approx(whole.value)
    # the sampling terms: two halves of 100 against one of 200 (adjusted counts differ
    # by a hair); the label terms identical
    assert halves.variance == pytest.approx(whole.variance, rel=0.02)


def test_label_budget_shrinks_the_interval_to_the_target() -> None:
    successes, n = 3000, 10000
    accuracy = Accuracy(30, 26, 30, 24)
    need = label_budget(successes, n, accuracy)
    assert need is not None and need["truly_passed"] > 0 and need["truly_failed"] > 0
    grown = Accuracy(
        30 + need["truly_passed"], round((30 + need["truly_passed"]) * 26 / 30),
        30 + need["truly_failed"], round((30 + need["truly_failed"]) * 24 / 30),
    )  # fmt: skip
    corrected = rogan_gladen(successes, n, grown)
    assert corrected.ci is not None
    assert (corrected.ci[1] - corrected.ci[0]) / 2 < 0.052
    # and not by much less: the budget is not padded
    fewer = Accuracy(
        30 + need["truly_passed"] // 2, round((30 + need["truly_passed"] // 2) * 26 / 30),
        30 + need["truly_failed"] // 2, round((30 + need["truly_failed"] // 2) * 24 / 30),
    )  # fmt: skip
    half = rogan_gladen(successes, n, fewer)
    assert half.ci is not None and (half.ci[1] - half.ci[0]) / 2 > 0.05
    assert label_budget(5, 10, Accuracy(20, 11, 20, 11)) is None  # a coin: nothing helps


# -- coverage by simulation ----------------------------------------------------------

REPLICATIONS = 1000


def _population(rng: np.random.Generator, rates: dict[str, float], size: int,
                errors: dict[str, tuple[float, float]]) -> list[tuple[str, int, int]]:  # fmt: skip
    """(benchmark, truth, the judge's verdict) for `size` sessions per benchmark."""
    out = []
    for name, rate in rates.items():
        sensitivity, specificity = errors[name]
        truth = rng.random(size) < rate
        verdict = np.where(truth, rng.random(size) < sensitivity, rng.random(size) >= specificity)
        out += [(name, int(t), int(v)) for t, v in zip(truth, verdict, strict=True)]
    return out


def test_corrected_intervals_cover_the_truth(record_property: pytest.RecordProperty) -> None:
    """A population of two benchmarks whose judge errs differently on each (one lenient,
    one strict); 150 labelled sessions drawn at random from each. The truth is the rate
    of the process the sessions come from (each benchmark's success probability,
    balanced); the corrected rates by both methods cover it in 93-97% of 1,000
    replications, the raw Wilson interval in fewer than half."""
    rates = {"lenient": 0.35, "strict": 0.6}
    errors = {"lenient": (0.92, 0.7), "strict": (0.75, 0.95)}
    covered = {"rogan-gladen": 0, "ppi++": 0, "raw": 0}
    rng = np.random.default_rng(20261207)
    for _ in range(REPLICATIONS):
        population = _population(rng, rates, 1500, errors)
        truth = sum(rates.values()) / len(rates)
        labelled: set[int] = set()
        for index in range(len(rates)):
            start = index * 1500
            labelled.update(int(i) for i in rng.choice(range(start, start + 1500), 150, False))
        rows = [
            analysis.Row(f"s{i}", name, "h", "m", verdict)
            for i, (name, _, verdict) in enumerate(population)
        ]
        labels = {f"s{i}": population[i][1] for i in labelled}
        for method in ("rogan-gladen", "ppi++"):
            corrector = analysis._Corrector(rows, labels, method)
            by_name: dict[str, list[analysis.Row]] = {n: [] for n in rates}
            for row in rows:
                by_name[row.benchmark].append(row)
            result = corrector.correct([(0.5, n, by_name[n]) for n in rates])
            assert result.ci is not None
            covered[method] += result.ci[0] <= truth <= result.ci[1]
        raw = wilson(sum(r.success for r in rows), len(rows))
        assert raw is not None
        covered["raw"] += raw[0] <= truth <= raw[1]
    coverage = {k: v / REPLICATIONS for k, v in covered.items()}
    record_property("coverage", coverage)
    print(f"coverage over {REPLICATIONS} replications: {coverage}")
    assert 0.93 <= coverage["rogan-gladen"] <= 0.97
    assert 0.93 <= coverage["ppi++"] <= 0.97
    assert coverage["raw"] < 0.5  # the judge's own rate is off by more than its interval


def test_a_cell_of_one_session_is_not_claimed_exact() -> None:
    """One session, passed: the corrected interval is no narrower than Wilson's."""
    corrected = rogan_gladen(1, 1, Accuracy(40, 36, 40, 34))
    raw = wilson(1, 1)
    assert corrected.ci is not None and raw is not None
    assert corrected.ci[1] - corrected.ci[0] >= (raw[1] - raw[0]) * 0.9


# -- the regression ------------------------------------------------------------------


def _frame(rng: np.random.Generator, n: int) -> list[dict[str, object]]:
    benchmarks, models, harnesses = ["swe", "tau", "web"], ["m1", "m2", "m3", "m4"], ["a", "b"]
    effect = {"swe": 0.0, "tau": 0.2, "web": -0.1, "m1": 0.0, "m2": 0.1, "m3": 0.25,
              "m4": -0.05, "a": 0.0, "b": 0.1}  # fmt: skip
    rows = []
    for _ in range(n):
        b, m, h = rng.choice(benchmarks), rng.choice(models), rng.choice(harnesses)
        p = 0.35 + effect[b] + effect[m] + effect[h]
        rows.append({"benchmark": str(b), "agent_model": str(m), "harness": str(h),
                     "success": int(rng.random() < p)})  # fmt: skip
    return rows


def _statsmodels(rows: list[dict[str, object]], reference: dict[str, str]) -> object:
    frame = pd.DataFrame(rows)
    formula = "success ~ " + " + ".join(
        f"C({factor}, Treatment(reference={reference[factor]!r}))"
        for factor in ("benchmark", "agent_model", "harness")
    )
    return smf.ols(formula, data=frame).fit(cov_type="HC1")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_regression_equals_statsmodels(seed: int) -> None:
    rows = _frame(np.random.default_rng(seed), 400)
    ours = regression(rows)
    assert ours is not None and not any("confounded" in w for w in ours["warnings"])
    theirs = _statsmodels(rows, ours["reference"])
    assert ours["r2"] == pytest.approx(theirs.rsquared, abs=1e-8)  # type: ignore[attr-defined]
    params, bse = theirs.params, theirs.bse  # type: ignore[attr-defined]
    for coefficient in ours["coefficients"]:
        if coefficient["factor"] == "intercept":
            name = "Intercept"
        else:
            factor = coefficient["factor"]
            reference = ours["reference"][factor]
            name = f"C({factor}, Treatment(reference={reference!r}))[T.{coefficient['level']}]"
        assert coefficient["estimate"] == pytest.approx(params[name], abs=1e-8)
        assert coefficient["se_hc1"] == pytest.approx(bse[name], abs=1e-8)
        lo, _ = coefficient["ci"]
        assert lo == pytest.approx(params[name] - 1.959963984540054 * bse[name], abs=1e-8)
    # the robust Wald test of each factor, as statsmodels computes it (chi-squared)
    for factor in ours["factors"]:
        names = [n for n in params.index if n.startswith(f"C({factor['factor']},")]
        test = theirs.wald_test(  # type: ignore[attr-defined]
            " = 0, ".join(names) + " = 0", use_f=False, scalar=True
        )
        assert factor["wald_p"] == pytest.approx(float(test.pvalue), abs=1e-8)
    # drop-one: R^2 of the fit without the factor, by statsmodels
    for factor in ours["factors"]:
        others = [f for f in ("benchmark", "agent_model", "harness") if f != factor["factor"]]
        reduced = smf.ols(
            "success ~ " + " + ".join(f"C({f})" for f in others), data=pd.DataFrame(rows)
        ).fit()
        assert factor["delta_r2"] == pytest.approx(ours["r2"] - reduced.rsquared, abs=1e-8)
    assert sum(f["shapley_r2"] for f in ours["factors"]) == pytest.approx(ours["r2"], abs=1e-10)


def test_shapley_of_one_factor_alone_is_its_r2() -> None:
    rows = _frame(np.random.default_rng(9), 200)
    ours = regression(rows, ("benchmark",))
    assert ours is not None
    assert ours["factors"][0]["shapley_r2"] == pytest.approx(ours["r2"])
    assert ours["factors"][0]["delta_r2"] == pytest.approx(ours["r2"])


def test_chi2_sf_matches_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    for dof in (1, 2, 3, 7, 20):
        for x in (0.01, 0.5, 1.0, 3.0, 8.0, 25.0, 80.0):
            assert chi2_sf(x, dof) == pytest.approx(float(stats.chi2.sf(x, dof)), abs=1e-12)


@pytest.mark.filterwarnings("ignore:The design matrix is rank-deficient")
def test_aliasing_is_named_in_words() -> None:
    """A harness seen on one benchmark only, in every session of it: its column is the
    benchmark's. The fit keeps the benchmark, names the harness as confounded, and
    equals statsmodels' fit without it; singleton cells are counted."""
    rng = np.random.default_rng(4)
    rows = _frame(rng, 300)
    for row in rows:
        if row["benchmark"] == "web":
            row["harness"] = "only-web"
        elif row["harness"] == "only-web":
            row["harness"] = "a"
    rows.append({"benchmark": "swe", "agent_model": "m9", "harness": "a", "success": 1})
    ours = regression(rows)
    assert ours is not None
    text = " ".join(ours["warnings"])
    # the harnesses together are the benchmarks together: one harness column is left
    # out and named, and the harness seen on web only is named too
    assert "is confounded with" in text and "cannot be told apart" in text
    assert "harnesses ran one benchmark only (only-web)" in text
    assert "hold one session" in text
    frame = pd.DataFrame(rows)
    theirs = smf.ols("success ~ C(benchmark) + C(agent_model) + C(harness)", data=frame).fit()
    # the design without the confounded column spans the same space as statsmodels'
    # rank-deficient one (which it fits by pseudo-inverse): the same R^2
    assert ours["r2"] == pytest.approx(theirs.rsquared, abs=1e-8)
    assert all(c["level"] != "only-web" for c in ours["coefficients"])


# -- judge quality, labels, sampling, findings ---------------------------------------


def test_judge_quality_on_a_worked_confusion() -> None:
    # labels: 6 passed (judge passed 5), 4 failed (judge failed 3)
    pairs = [(f"p{i}", "b1", 1 if i < 5 else 0, 1) for i in range(6)]
    pairs += [(f"f{i}", "b2", 0 if i < 3 else 1, 0) for i in range(4)]
    quality = judge_quality("j", pairs)
    assert quality["sensitivity"]["value"] == pytest.approx(5 / 6, abs=1e-6)
    assert quality["specificity"]["value"] == pytest.approx(3 / 4, abs=1e-6)
    assert quality["accuracy"]["value"] == pytest.approx(0.8)
    low, high = wilson(5, 6)  # type: ignore[misc]
    assert quality["sensitivity"]["ci"] == pytest.approx([low, high], abs=1e-6)
    assert quality["confusion"] == [[3, 1], [1, 5]]
    # kappa: po 0.8, pe = 0.6*0.6 + 0.4*0.4 = 0.52 -> (0.8-0.52)/0.48
    assert quality["kappa"]["value"] == pytest.approx(0.28 / 0.48, abs=1e-6)
    assert quality["disagree"] == ["f3", "p5"]
    assert set(quality["by_benchmark"]) == {"b1", "b2"}
    assert quality["by_benchmark"]["b1"]["specificity"] is None  # no truly failed there


def test_labels_in_every_format_and_name(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("session_id,resolved,labeler\ns1,true,ann\ns2,0,\ns3,,\n")
    (tmp_path / "b.jsonl").write_text('{"session_id": "s1", "passed": 1}\n\n'
                                      '{"session_id": "s4", "success": false}\n')  # fmt: skip
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"session_id": ["s5"], "label": [1]}), tmp_path / "c.parquet")
    a = read_labels(tmp_path / "a.csv")
    assert a.by_session == {"s1": 1, "s2": 0} and a.left_empty == 1 and a.labeler == {"s1": "ann"}
    assert read_labels(tmp_path / "b.jsonl").by_session == {"s1": 1, "s4": 0}
    assert read_labels(tmp_path / "c.parquet").by_session == {"s5": 1}
    (tmp_path / "bad.csv").write_text("session_id,label\ns1,maybe\n")
    with pytest.raises(LabelsError, match="row 1: the label 'maybe' is not 0/1"):
        read_labels(tmp_path / "bad.csv")
    (tmp_path / "none.csv").write_text("session_id,verdict\ns1,1\n")
    with pytest.raises(LabelsError, match="needs session_id and a label"):
        read_labels(tmp_path / "none.csv")


def test_the_file_wins_and_conflicts_are_counted(tmp_path: Path) -> None:
    (tmp_path / "l.csv").write_text("session_id,label\ns1,1\ns2,1\n")
    merged = merge({"s1": 0, "s2": 1, "s3": 0}, read_labels(tmp_path / "l.csv"))
    assert merged.by_session == {"s1": 1, "s2": 1, "s3": 0}
    assert merged.conflicts == 1
    assert merged.sources[0].startswith("the file") and "source rows" in merged.sources[1]


def _pool() -> list[Candidate]:
    return [
        Candidate(f"{b}-{i}", b, "h", "m", task='=HYPERLINK("x")', answer="ok")
        for b, size in (("big", 80), ("mid", 15), ("tiny", 5))
        for i in range(size)
    ]


def test_the_sample_is_seeded_stratified_and_says_how(tmp_path: Path) -> None:
    chosen, drawn = sample(_pool(), 20, per="benchmark", seed=3)
    counts = {b: sum(1 for c in chosen if c.benchmark == b) for b in ("big", "mid", "tiny")}
    assert counts == {"big": 16, "mid": 3, "tiny": 1}
    assert "stratified by benchmark (big 16 of 80, mid 3 of 15, tiny 1 of 5)" in drawn
    again, _ = sample(_pool(), 20, per="benchmark", seed=3)
    other, _ = sample(_pool(), 20, per="benchmark", seed=4)
    assert again == chosen and other != chosen
    text = sheet(chosen, drawn)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 20 and all(r["label"] == "" and r["drawn"] == drawn for r in rows)
    assert rows[0]["task"].startswith("'=")  # a formula never runs in a spreadsheet
    assert not any(k.startswith("judge:") for k in rows[0])  # verdicts hidden by default
    # filled in and read back: a random sample, as PPI++ needs
    for row in rows:
        row["label"] = "1"
    path = tmp_path / "filled.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    labels = read_labels(path)
    assert len(labels) == 20 and labels.drawn == drawn


def test_a_session_id_that_looks_like_a_formula_round_trips(tmp_path: Path) -> None:
    chosen = [Candidate("=cmd|'/c calc'!A1", "b", "h", "m")]
    text = sheet(chosen, "drawn").replace(",,,,,drawn", ",1,,,,drawn")
    path = tmp_path / "s.csv"
    path.write_text(text)
    assert read_labels(path).by_session == {"=cmd|'/c calc'!A1": 1}


def test_frontier_spending_and_best() -> None:
    configs = [
        {"config": "cheap", "balanced": 0.4, "cost_per_task": 0.01},
        {"config": "good", "balanced": 0.7, "cost_per_task": 0.05},
        {"config": "worse and dearer", "balanced": 0.5, "cost_per_task": 0.08},
        {"config": "unknown cost", "balanced": 0.9, "cost_per_task": None},
    ]
    placed = {c["config"]: c["on_frontier"] for c in frontier(configs)}
    assert placed == {"cheap": True, "good": True, "worse and dearer": False,
                      "unknown cost": False}  # fmt: skip
    rng = np.random.default_rng(0)
    rows = [{"benchmark": "thrash", "success": 0, "tokens": int(rng.integers(9000, 11000)),
             "calls": 20} for _ in range(30)]  # fmt: skip
    rows += [{"benchmark": "thrash", "success": 1, "tokens": int(rng.integers(4000, 6000)),
              "calls": 8} for _ in range(30)]  # fmt: skip
    rows += [{"benchmark": "few", "success": s, "tokens": 100 * (1 + s), "calls": 1}
             for s in (0, 1)]  # fmt: skip
    spent = {s["benchmark"]: s for s in spending(rows, 10)}
    assert spent["thrash"]["pattern"] == "failed runs spend more: thrashing"
    assert spent["thrash"]["ci"][0] > 1 and spent["thrash"]["calls_ratio"] == 2.5
    assert spent["few"]["ci"] is None and spent["few"]["pattern"] is None  # one run a side
    rows = [{"benchmark": "b", "harness": "h", "agent_model": m, "success": int(i < k)}
            for m, k in (("strong", 45), ("weak", 10)) for i in range(50)]  # fmt: skip
    rows += [{"benchmark": "c", "harness": "h", "agent_model": m, "success": int(i < k)}
             for m, k in (("strong", 6), ("weak", 5)) for i in range(10)]  # fmt: skip
    top = {b["benchmark"]: b for b in best(rows, 10)}
    assert top["b"]["config"] == "h / strong" and top["b"]["separated"] is True
    assert top["c"]["config"] == "h / strong" and top["c"]["separated"] is False


def test_analyse_marks_small_cells_and_names_the_method() -> None:
    rows = [analysis.Row(f"s{i}", "b", "h", "m", i % 2, {"j": i % 2}) for i in range(8)]
    labels = merge({f"s{i}": i % 2 for i in range(8)}, None)
    out = analysis.analyse(rows, labels, min_n=10, slots=["j"])
    assert out["method"] == "rogan-gladen" and out["cells"][0]["small"] is True
    assert out["judges"][0]["judge"] == "j"
    # 4 of each class: fewer than MIN_CLASS, so the pooled judge error is used, and said
    assert out["benchmarks"][0]["judge_error"]["from"] == "every benchmark's labels"
    assert out["budget"][0]["truly_passed"] == 1
    with pytest.raises(ValueError, match="ppi"):
        analysis.analyse(rows, labels, method="ppi++")
    assert math.isfinite(out["overall"]["corrected"]["value"])


@pytest.mark.parametrize("n", [7, 50, 51])
def test_bootstrap_medians_are_drawn_as_resampling_would(n: int) -> None:
    """The order-statistic shortcut has the distribution of the median of a resample
    drawn with replacement (odd and even sizes), checked against brute force."""
    from judge_engine.measure.findings import bootstrap_medians

    values = np.random.default_rng(n).lognormal(8, 1, size=n)
    fast = bootstrap_medians(values, 20_000, np.random.default_rng(1))
    draws = np.random.default_rng(2).integers(0, n, size=(20_000, n))
    slow = np.median(values[draws], axis=1)
    for q in (0.025, 0.25, 0.5, 0.75, 0.975):
        a, b = np.quantile(fast, q), np.quantile(slow, q)
        assert a == pytest.approx(b, rel=0.03), q
    assert fast.mean() == pytest.approx(slow.mean(), rel=0.01)


@pytest.mark.parametrize("benchmarks", [1, 9])
def test_labelling_nearly_every_session_is_no_surer_than_knowing_the_truth(
    benchmarks: int,
) -> None:
    """25 sessions, 23 of them labelled: the labelled sessions' verdicts count in both
    the rate and the judge's error, and the covariances may not take the interval below
    the one knowing every truth would give (per benchmark, Agresti-Coull adjusted)."""
    rng = np.random.default_rng(5)
    rows, labels = [], {}
    for i in range(25):
        truth = int(rng.random() < 0.5)
        verdict = truth if rng.random() < 0.8 else 1 - truth
        rows.append(analysis.Row(f"s{i}", f"b{i % benchmarks}", "h", "m", verdict))
        if i < 23:
            labels[f"s{i}"] = truth
    corrector = analysis._Corrector(rows, labels, "rogan-gladen")
    strata: dict[str, list[analysis.Row]] = {}
    for row in rows:
        strata.setdefault(row.benchmark, []).append(row)
    parts = [(len(v) / 25, k, v) for k, v in sorted(strata.items())]
    result = corrector.correct(parts)
    assert result.ci is not None and result.value is not None
    oracle = 0.0
    for weight, name, items in parts:
        alone = corrector.correct([(1.0, name, items)])
        assert alone.value is not None
        known = (alone.value * len(items) + 2) / (len(items) + 4)
        oracle += weight**2 * known * (1 - known) / len(items)
    half = 1.959963984540054 * math.sqrt(oracle)
    assert result.ci[1] - result.ci[0] >= 2 * half * 0.999
    assert result.ci[1] - result.ci[0] > 0.3
