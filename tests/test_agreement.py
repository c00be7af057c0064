"""`agree` over hand-built journals whose figures are worked by hand."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from judge_engine.agreement import agree, render
from judge_engine.cli import main
from judge_engine.journal import Record

from .conftest import make_record, write_jsonl


def _record(
    session: str,
    slot: str,
    success: int | None,
    *,
    judge: str | None = None,
    confidence: str = "high",
    sample: int = 0,
    benchmark: str = "swebench",
    label: int | None = None,
    status: str = "ok",
) -> Record:
    return make_record(
        session,
        slot,
        success,
        judge=judge,
        confidence=confidence,
        sample=sample,
        status=status,
        rubric="swebench",
        benchmark=benchmark,
        harness="h",
        agent_models=("m",),
        label=label,
    )


def _journal(folder: Path, records: list[Record]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "journal.jsonl").write_bytes(b"".join(r.to_json() for r in records))
    return folder


# A: 1 1 1 0 0 1 ; B: 1 1 0 0 1 1 ; C: 1 0 1 0 0 1 (six sessions, every judge)
A = [1, 1, 1, 0, 0, 1]
B = [1, 1, 0, 0, 1, 1]
C = [1, 0, 1, 0, 0, 1]


def _panel(folder: Path, **extra: object) -> Path:
    records = []
    for i in range(6):
        for slot, votes in (("A", A), ("B", B), ("C", C)):
            records.append(_record(f"s{i}", slot, votes[i], **extra))  # type: ignore[arg-type]
    return _journal(folder, records)


def test_pairs_fleiss_alpha_and_majority_by_hand(tmp_path: Path) -> None:
    result = agree(_panel(tmp_path / "out"))
    assert result["judges"] == ["A", "B", "C"]
    ab = next(p for p in result["pairs"] if (p["a"], p["b"]) == ("A", "B"))
    # A vs B: agree on s0 s1 s3 s5 -> 4/6. Both say 1 four times of six:
    # p_e = (4/6)^2 + (2/6)^2 = 5/9; kappa = (2/3 - 5/9)/(4/9) = 0.25
    assert ab["n"] == 6 and ab["agreement"] == pytest.approx(0.6667, abs=1e-4)
    assert ab["cohen_kappa"] == pytest.approx(0.25)
    assert ab["confusion"] == [[1, 1], [1, 3]]
    assert ab["small"] is True and len(ab["kappa_ci95"]) == 2
    # Fleiss over 6 items of 3 raters: counts of 1 per item 3,2,2,0,1,3
    # P_i = 1, 1/3, 1/3, 1, 1/3, 1 -> P = 2/3; p1 = 11/18 -> Pe = (121+49)/324
    pe = (121 + 49) / 324
    assert result["fleiss_kappa"] == pytest.approx(round((2 / 3 - pe) / (1 - pe), 4))
    assert result["fleiss_sessions"] == 6 and result["alpha_sessions"] == 6
    majority = result["majority"]
    assert majority["decided"] == 6 and majority["ties"] == 0
    assert majority["success_rate"] == pytest.approx(round(4 / 6, 4))
    # The majority is 1 1 1 0 0 1: A always sides with it, B on 4 of 6, C on 5 of 6.
    sides = {j: s["sides_with_majority"] for j, s in majority["judges"].items()}
    assert sides == {
        "A": 1.0,
        "B": pytest.approx(0.6667, abs=1e-4),
        "C": pytest.approx(0.8333, abs=1e-4),
    }
    assert "Fleiss' kappa" in render(result)


def test_a_fallback_counts_as_itself_and_pairs_without_common_sessions(tmp_path: Path) -> None:
    records = [
        _record("s0", "A", 1),
        _record("s0", "B", 1),
        _record("s1", "A", 0, judge="F"),
        _record("s1", "B", 0),  # F judged A's slot
        _record("s2", "D", 1),  # D shares no session with anyone
    ]
    result = agree(_journal(tmp_path / "out", records))
    assert result["judges"] == ["A", "B", "F", "D"]
    pairs = {(p["a"], p["b"]): p for p in result["pairs"]}
    assert pairs[("B", "F")]["n"] == 1 and pairs[("A", "B")]["n"] == 1
    nothing = pairs[("A", "D")]
    assert nothing["n"] == 0 and nothing["agreement"] is None
    assert nothing["cohen_kappa"] is None and nothing["kappa_ci95"] is None
    assert result["fleiss_sessions"] == 0 and result["fleiss_kappa"] is None


def test_a_judge_that_always_says_1(tmp_path: Path) -> None:
    records = []
    for i, vote in enumerate([1, 0, 1, 0, 1, 1]):
        records += [_record(f"s{i}", "yes-man", 1), _record(f"s{i}", "B", vote)]
    result = agree(_journal(tmp_path / "out", records))
    pair = result["pairs"][0]
    assert pair["agreement"] == pytest.approx(0.6667, abs=1e-4)
    assert pair["cohen_kappa"] == 0.0  # agreement no better than chance
    # With two judges every disagreement is a tie: no majority there.
    assert result["majority"]["ties"] == 2


def test_labels_from_the_source_and_from_a_file(tmp_path: Path) -> None:
    labels = [1, 1, 0, 0, 1, 0]
    records = [
        _record(f"s{i}", slot, votes[i], label=labels[i])
        for i in range(6)
        for slot, votes in (("A", A), ("B", B))
    ]
    out = _journal(tmp_path / "out", records)
    result = agree(out)
    assert result["labels"]["source"].startswith("the source rows")
    a = result["labels"]["judges"]["A"]
    # A vs labels: (1,1)(1,1)(1,0)(0,0)(0,1)(1,0): tp 2, fp 2, fn 1, tn 1
    assert (a["n"], a["accuracy"], a["precision"], a["recall"]) == (
        6,
        0.5,
        0.5,
        pytest.approx(0.6667, abs=1e-4),
    )
    assert a["f1"] == pytest.approx(round(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3), 4))
    assert len(a["accuracy_ci95"]) == 2
    # The file overrides the source: now every label is 1.
    csv_labels = tmp_path / "labels.csv"
    csv_labels.write_text("session_id,label\n" + "".join(f"s{i},1\n" for i in range(6)))
    overridden = agree(out, labels_file=csv_labels)
    assert overridden["labels"]["judges"]["A"]["accuracy"] == pytest.approx(0.6667, abs=1e-4)
    jsonl = write_jsonl(
        tmp_path / "labels.jsonl", [{"session_id": f"s{i}", "label": "fail"} for i in range(6)]
    )
    assert agree(out, labels_file=jsonl)["labels"]["judges"]["B"]["accuracy"] == pytest.approx(
        round(2 / 6, 4)
    )
    bad = tmp_path / "bad.csv"
    bad.write_text("session_id,label\ns0,maybe\n")
    with pytest.raises(ValueError, match="is not 0/1"):
        agree(out, labels_file=bad)


def test_calibration_against_the_other_judges_or_labels(tmp_path: Path) -> None:
    confidences = ["high", "high", "low", "high", "low", "high"]
    records = []
    for i in range(6):
        records.append(_record(f"s{i}", "A", A[i], confidence=confidences[i]))
        records.append(_record(f"s{i}", "B", B[i]))
        records.append(_record(f"s{i}", "C", C[i]))
    result = agree(_journal(tmp_path / "out", records))
    calibration = result["calibration"]
    assert calibration["reference"] == "majority of the other judges"
    # A's reference is the majority of B and C (ties dropped): s0 1, s3 0, s5 1 decided;
    # s1 (1 vs 0), s2 (0 vs 1), s4 (1 vs 0) are ties. High: s0, s3, s5 all agree.
    cells = calibration["judges"]["A"]
    assert cells["high"]["n"] == 3 and cells["high"]["agreement"] == 1.0
    assert cells["low"]["n"] == 0 and cells["medium"]["n"] == 0


def test_repeat_stability(tmp_path: Path) -> None:
    records = []
    # three samples per session: s0 1 1 1, s1 0 1 0, s2 1 1 1, s3 0 0 0
    for i, samples in enumerate([(1, 1, 1), (0, 1, 0), (1, 1, 1), (0, 0, 0)]):
        for sample, vote in enumerate(samples):
            records.append(_record(f"s{i}", "A", vote, sample=sample))
    result = agree(_journal(tmp_path / "out", records))
    stability = result["repeats"]["A"]
    assert (stability["sessions"], stability["samples"]) == (4, 3)
    assert stability["flip_rate"] == 0.25
    # pairwise agreement within sessions: 1, 1/3, 1, 1 -> 10/12
    assert stability["self_agreement"] == pytest.approx(round(10 / 12, 4))
    assert stability["self_fleiss_kappa"] is not None


def test_by_benchmark_with_one_benchmark_only_equals_the_whole(tmp_path: Path) -> None:
    result = agree(_panel(tmp_path / "out"), by="benchmark")
    groups = result["by"]["benchmark"]
    assert list(groups) == ["swebench"]
    assert groups["swebench"]["pairs"] == result["pairs"]
    assert groups["swebench"]["fleiss_kappa"] == result["fleiss_kappa"]


def test_failures_and_skips_carry_no_verdict(tmp_path: Path) -> None:
    records = [
        _record("s0", "A", 1),
        _record("s0", "B", None, status="failed"),
        _record("s1", "A", 1),
        _record("s1", "B", 1),
    ]
    result = agree(_journal(tmp_path / "out", records))
    assert result["pairs"][0]["n"] == 1


def test_agree_command_writes_the_json_shape(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _panel(tmp_path / "out")
    target = tmp_path / "agree.json"
    assert main(["agree", str(out), "--by", "harness", "--json", str(target)]) == 0
    data = orjson.loads(target.read_bytes())
    assert set(data) >= {
        "judges",
        "pairs",
        "fleiss_kappa",
        "krippendorff_alpha",
        "by",
        "labels",
        "repeats",
    }
    assert set(data["pairs"][0]) >= {
        "a",
        "b",
        "n",
        "agreement",
        "cohen_kappa",
        "kappa_ci95",
        "confusion",
    }
    assert "harness = h" in capsys.readouterr().out
    assert main(["agree", str(tmp_path / "missing")]) == 2


def _run_json(folder: Path, judges: list[str]) -> None:
    (folder / "run.json").write_bytes(orjson.dumps({"panel": {"judge": judges}}))


def test_two_judges_show_no_majority_that_is_true_by_construction(tmp_path: Path) -> None:
    records = [
        _record(f"s{i}", slot, votes[i], label=A[i])
        for i in range(6)
        for slot, votes in (("B", B), ("C", C))
    ]
    out = _journal(tmp_path / "out", records)
    result = agree(out)
    assert result["majority"]["only_where_judges_agree"] is True
    assert result["majority"]["judges"] == {}
    text = render(result)
    assert "sides with the majority" not in text
    assert "only where its two agree" in text and "(majority: where both agree)" in text
    assert "labels from the source rows" in text


def test_three_judges_show_who_sides_with_the_majority(tmp_path: Path) -> None:
    text = render(agree(_panel(tmp_path / "out")))
    assert text.count("sides with the majority") == 3
    assert "rows: the first judge's verdict" in text


def test_judges_come_in_the_panel_order_of_the_run(tmp_path: Path) -> None:
    out = _panel(tmp_path / "out")
    _run_json(out, ["C", "A", "B"])
    result = agree(out)
    assert result["judges"] == ["C", "A", "B"]
    assert [(p["a"], p["b"]) for p in result["pairs"]] == [("C", "A"), ("C", "B"), ("A", "B")]
    _run_json(out, ["C", "A"])  # B dropped from the panel
    assert agree(out)["judges"] == ["C", "A"]
    assert agree(out, all_judges=True)["judges"] == ["C", "A", "B"]


def test_three_judges_with_two_verdicts_a_session_show_no_majority_figure(tmp_path: Path) -> None:
    # A fallback takes a slot now and then: three judge models, two verdicts a session.
    records = [
        _record(f"s{i}", "A", A[i]) for i in range(6)
    ] + [
        _record(f"s{i}", "B", B[i], judge="B" if i < 3 else "C") for i in range(6)
    ]  # fmt: skip
    result = agree(_journal(tmp_path / "out", records))
    assert result["judges"] == ["A", "B", "C"]
    assert result["majority"]["only_where_judges_agree"] is True
    assert "sides with the majority" not in render(result)


def test_failure_mode_kappa_on_a_worked_example() -> None:
    """Two judges name modes on 10 sessions both failed: 4 x~x, 3 y~y, 2 x~y, 1 y~x.
    Observed agreement 0.7; A says x 6 times, B 5: chance (6*5 + 4*5)/100 = 0.5; kappa
    (0.7 - 0.5) / 0.5 = 0.4. Against labels, the labelled failures the judge failed."""
    from judge_engine.agreement import Verdicts, mode_agreement

    data = Verdicts(judges=["A", "B"])
    plan = [("x", "x")] * 4 + [("y", "y")] * 3 + [("x", "y")] * 2 + [("y", "x")]
    for i, (a, b) in enumerate(plan):
        data.modes[f"s{i}"] = {"A": a, "B": b}
    data.modes["only-a"] = {"A": "x"}  # B did not fail it: not a pair
    labels = {f"s{i}": "x" for i in range(10)}
    result = mode_agreement(data, labels)
    (pair,) = result["pairs"]
    assert (pair["a"], pair["b"], pair["n"], pair["agree"]) == ("A", "B", 10, 0.7)
    assert pair["kappa"] == pytest.approx(0.4)
    assert pair["confusion"] == {"x": {"x": 4, "y": 2}, "y": {"y": 3, "x": 1}}
    assert pair["ci"] is not None and pair["ci"][0] <= 0.4 <= pair["ci"][1]
    vs = {v["judge"]: v for v in result["vs_labels"]}
    assert vs["A"]["n"] == 10 and vs["A"]["agree"] == 0.6
    assert vs["A"]["kappa"] == 0.0  # the labels say x every time: no agreement beyond chance
