"""`report` over a hand-built journal: rates, intervals, balancing, tokens, cost, plots."""

from __future__ import annotations

from pathlib import Path

import pytest

from judge_engine.cli import main
from judge_engine.journal import Record
from judge_engine.report import build, to_csv, to_markdown
from judge_engine.stats import balanced_rate, wilson

from .conftest import make_record


def _record(
    session: str,
    slot: str,
    success: int,
    benchmark: str,
    harness: str,
    model: str,
    *,
    usage: dict[str, int] | None = None,
    cost: float | None = None,
) -> Record:
    return make_record(
        session,
        slot,
        success,
        rubric=benchmark,
        benchmark=benchmark,
        harness=harness,
        agent_models=(model,),
        agent_usage=usage or {},
        agent_cost_usd=cost,
    )


@pytest.fixture
def out(tmp_path: Path) -> Path:
    records = []
    # Configuration X ran 12 easy sessions (10 successes) and 4 hard ones (1 success);
    # configuration Y ran 2 easy (1) and 8 hard (4). Pooled favours X: 11/16 vs 5/10.
    plan = [("X", "easy", 12, 10), ("X", "hard", 4, 1), ("Y", "easy", 2, 1), ("Y", "hard", 8, 4)]
    for config, benchmark, n, successes in plan:
        for i in range(n):
            session = f"{config}-{benchmark}-{i}"
            win = 1 if i < successes else 0
            usage = {"input_tokens": 900, "output_tokens": 100, "total_tokens": 1000}
            cost = 0.5 if config == "Y" else None  # Y's source carries its own cost
            records.append(
                _record(
                    session,
                    "judge-1",
                    win,
                    benchmark,
                    f"h{config}",
                    "gpt-4.1" if config == "X" else "my-agent",
                    usage=usage,
                    cost=cost,
                )
            )
            # A second judge that always says 1, for --majority and --judge.
            records.append(
                _record(
                    session,
                    "judge-2",
                    1,
                    benchmark,
                    f"h{config}",
                    "gpt-4.1" if config == "X" else "my-agent",
                )
            )
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "journal.jsonl").write_bytes(b"".join(r.to_json() for r in records))
    return folder


def test_cells_with_wilson_intervals_and_small_marks(out: Path) -> None:
    report = build(out, min_n=10)
    assert report["verdict"] == "judge slot judge-1"
    cells = {(c["benchmark"], c["harness"]): c for c in report["cells"]}
    easy_x = cells[("easy", "hX")]
    assert (easy_x["n"], easy_x["successes"], easy_x["small"]) == (12, 10, False)
    assert easy_x["ci95"] == wilson(10, 12)
    assert cells[("hard", "hX")]["small"] is True  # 4 < 10


def test_pooled_versus_balanced(out: Path) -> None:
    configs = {c["harness"]: c for c in build(out)["configurations"]}
    x, y = configs["hX"], configs["hY"]
    assert x["pooled_rate"] == pytest.approx(11 / 16) and y["pooled_rate"] == pytest.approx(0.5)
    # Balanced: X = (10/12 + 1/4)/2 = 0.5417; Y = (1/2 + 4/8)/2 = 0.5: much closer.
    assert x["balanced_rate"] == pytest.approx((10 / 12 + 0.25) / 2)
    assert y["balanced_rate"] == pytest.approx(0.5)
    assert x["balanced_ci95"] == balanced_rate([(10, 12), (1, 4)])[1]  # type: ignore[index]
    assert x["pooled_ci95"] == wilson(11, 16)
    assert x["benchmarks"] == 2 and x["small"] is True


def test_tokens_and_cost_per_task_and_per_success(out: Path) -> None:
    configs = {c["harness"]: c for c in build(out)["configurations"]}
    x, y = configs["hX"], configs["hY"]
    assert x["tokens_per_task"] == 1000 and x["tokens_per_success"] == pytest.approx(16000 / 11)
    # X: the agent is gpt-4.1 at the built-in $2/$8 per million: 900*2e-6 + 100*8e-6.
    assert x["cost_per_task"] == pytest.approx(0.0026)
    assert x["cost_per_success"] == pytest.approx(0.0026 * 16 / 11)
    # Y: the source's own cost column, $0.50 a session.
    assert y["cost_per_task"] == pytest.approx(0.5) and y["cost_per_success"] == pytest.approx(1.0)
    priced = build(out, prices={"my-agent": (1.0, 1.0)})
    assert {c["harness"]: c for c in priced["configurations"]}["hY"]["cost_per_task"] == 0.5


def test_another_slot_or_the_majority(out: Path) -> None:
    second = build(out, slot="judge-2")
    assert all(c["rate"] == 1.0 for c in second["cells"])
    majority = build(out, majority=True)
    # With two judges, sessions where judge-1 says 0 are ties and drop out.
    assert majority["sessions"] == 16
    with pytest.raises(ValueError, match="no judge slot"):
        build(out, slot="judge-9")


def test_markdown_csv_and_plots_from_the_command_line(
    out: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    markdown = to_markdown(build(out))
    assert "| easy | hX | gpt-4.1 | 12 | 83.3% |" in markdown
    assert "| hard | hX | gpt-4.1 | 4 † |" in markdown
    lines = to_csv(build(out)).splitlines()
    assert lines[0].startswith("table,benchmark,harness")
    assert sum(1 for line in lines if line.startswith("configuration,")) == 2
    plots = tmp_path / "plots"
    assert main(["report", str(out), "--plots", str(plots), "--min-n", "5"]) == 0
    assert sorted(p.name for p in plots.glob("*.png")) == [
        "judge_kappa.png",
        "pooled_vs_balanced.png",
        "success_heatmap.png",
    ]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in plots.glob("*.png"))
    assert "# Success report" in capsys.readouterr().out
    assert main(["report", str(out), "--format", "csv", "--majority"]) == 0
    assert main(["report", str(out), "--judge", "nope"]) == 2


def _texts(figure: object) -> list[object]:
    from matplotlib.text import Text

    return [t for t in figure.findobj(Text) if t.get_text().strip()]  # type: ignore[attr-defined]


def test_plots_a_person_can_read(out: Path, tmp_path: Path) -> None:
    from judge_engine.agreement import agree
    from judge_engine.report import MIN_PT, figures

    # A third judge that graded only sessions nobody else did: no common sessions.
    lone = [
        make_record(f"Z-{i}", "judge-3", 1, rubric="easy", benchmark="easy", harness="hZ",
                    agent_models=("z",))
        for i in range(3)
    ]  # fmt: skip
    with open(out / "journal.jsonl", "ab") as handle:
        handle.write(b"".join(r.to_json() for r in lone))
    report = build(out, min_n=5)
    charts = figures(report, agree(out))
    for name, figure in charts.items():
        texts = _texts(figure)
        assert all(t.get_fontsize() >= MIN_PT for t in texts), name  # type: ignore[attr-defined]
        for axes in figure.axes[:1]:  # type: ignore[attr-defined]
            assert axes.get_title() and axes.get_xlabel() and axes.get_ylabel(), name
    heat = [t.get_text() for t in _texts(charts["success_heatmap.png"])]  # type: ignore[attr-defined]
    cells = len(report["benchmarks"]) * len(report["configurations"])
    assert sum("n=" in t or t == "–" for t in heat) == cells
    assert any(t.startswith("25%*") for t in heat)  # X on hard: 1 of 4, under --min-n 5
    kappa = [t.get_text() for t in _texts(charts["judge_kappa.png"])]  # type: ignore[attr-defined]
    assert kappa.count("no common\nsessions") == 4  # judge-3 with each other judge, twice
    image = charts["judge_kappa.png"].axes[0].images[0]  # type: ignore[attr-defined]
    assert image.get_array().mask.sum() == 4 + 3  # missing pairs and the diagonal: grey


def test_the_plots_hint_works_from_a_clone(
    out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    assert main(["report", str(out), "--plots", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert "pip install matplotlib" in err and "judge-engine[plots]" not in err


def test_a_slot_answered_by_a_fallback_says_so(tmp_path: Path) -> None:
    from judge_engine.report import build, to_markdown

    from .conftest import make_record

    out = tmp_path / "out"
    out.mkdir()
    records = [make_record(f"s{i}", "gpt-5.4", judge="gpt-5.4") for i in range(3)]
    records += [make_record(f"t{i}", "gpt-5.4", judge="gpt-4.1-mini") for i in range(2)]
    (out / "journal.jsonl").write_bytes(b"".join(r.to_json() for r in records))
    report = build(out)
    assert report["fallbacks"] == [
        "slot gpt-5.4: of its 5 verdicts, 2 by gpt-4.1-mini (the fallback)"
    ]
    assert "2 by gpt-4.1-mini" in to_markdown(report)
