"""The measured report: judge quality, corrected rates and the analysis after grading.

In: one `Row` per counted session (its counted verdict, every judge slot's verdict,
its benchmark, harness and agent model, the agent's tokens, LLM calls and cost), the
merged `Labels`, the correction method asked for and `--min-n`. Out: one JSON-able dict
with the keys `report --json` documents: `labels`, `judges`, `cells`, `benchmarks`,
`configs`, `overall`, `regression`, `spending`, `best`, `failure_modes` (`modes`), and
`budget` (the labels each benchmark still needs).

One method corrects every table of a report (never mixed silently):

- `rogan-gladen` when the labels are not known to be a random sample of the graded
  sessions. The judge's sensitivity and specificity are measured per benchmark; a
  benchmark with fewer than `MIN_CLASS` labelled sessions of either class takes the
  figures measured over every benchmark's labels ("pooled"), and says so.
- `ppi++` when they are (the sheet `labels sample` wrote says how it was drawn): per
  benchmark (and per cell), the labelled sessions against the judge's verdicts on the
  others of the same stratum; configurations and the whole run are the strata's
  weighted sum.
- `auto` picks `ppi++` for drawn labels, else `rogan-gladen`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..stats import balanced_rate, wilson
from . import METHODS
from .correct import (
    Accuracy,
    Corrected,
    Stratum,
    combine,
    label_budget,
    ppi_mean,
    rogan_gladen_mix,
)
from .findings import best, dependability, frontier, spending
from .labels import Labels
from .modes import failure_modes
from .quality import Pair, judge_quality
from .regress import regression

#: Fewer labelled sessions of either class than this in a benchmark: its judge error
#: is taken from every benchmark's labels together.
MIN_CLASS = 5


@dataclass(frozen=True)
class Row:
    """One counted session."""

    session_id: str
    benchmark: str
    harness: str
    agent_model: str
    #: The counted verdict (the first slot's, `--judge`'s or the majority's).
    success: int
    #: Every judge slot's verdict (None: it gave none).
    votes: Mapping[str, int | None] = field(default_factory=dict)
    tokens: int | None = None
    calls: int | None = None
    cost: float | None = None
    #: The failure mode the counted verdict came with (None: none named).
    mode: str | None = None
    #: Every judge slot's failure mode.
    modes: Mapping[str, str | None] = field(default_factory=dict)

    # A row reads as a mapping too, as the findings and the regression read rows.
    def __getitem__(self, name: str) -> Any:
        return getattr(self, name)

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self, name, default)


def _rate(successes: int, n: int) -> dict[str, Any]:
    ci = wilson(successes, n)
    return {
        "value": round(successes / n, 6) if n else None,
        "ci": [round(ci[0], 6), round(ci[1], 6)] if ci else None,
    }


def choose_method(method: str, labels: Labels) -> str:
    """The method `auto` stands for, or `method`; ValueError where it cannot be used."""
    if method == "auto":
        return "ppi++" if labels.drawn else "rogan-gladen"
    if method == "ppi++" and not labels.drawn:
        raise ValueError(
            "--method ppi++ needs labels drawn at random from the graded sessions (a sheet "
            "`judge-engine labels sample` wrote, with its drawn column); these are not "
            "known to be: use --method rogan-gladen"
        )
    return method


class _Corrector:
    """Corrects any set of strata by one method, from the labelled sessions."""

    def __init__(self, rows: Sequence[Row], labels: Mapping[str, int], method: str) -> None:
        self.method = method
        self.labels = labels
        self.rows = rows
        pairs = [(r.success, labels[r.session_id]) for r in rows if r.session_id in labels]
        self.pooled = Accuracy.of(pairs)
        per: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for row in rows:
            if row.session_id in labels:
                per[row.benchmark].append((row.success, labels[row.session_id]))
        self.own = {name: Accuracy.of(items) for name, items in per.items()}
        #: the accuracy group of each benchmark: itself, or "pooled"
        self.group: dict[str, str] = {}
        self.accuracies: dict[str, Accuracy] = {"pooled": self.pooled}
        for name in {r.benchmark for r in rows}:
            own = self.own.get(name, Accuracy(0, 0, 0, 0))
            if own.m1 >= MIN_CLASS and own.m0 >= MIN_CLASS:
                self.group[name] = name
                self.accuracies[name] = own
            else:
                self.group[name] = "pooled"

    def correct(self, strata: Sequence[tuple[float, str, Sequence[Row]]]) -> Corrected:
        """`strata`: (weight, benchmark, its rows), the weights summing to 1."""
        if not self.labels:
            return Corrected(None, None, self.method, 0, "no labels")
        if self.method == "rogan-gladen":
            parts = []
            for weight, name, items in strata:
                known = [self.labels[r.session_id] for r in items if r.session_id in self.labels]
                parts.append(
                    Stratum(
                        weight, sum(r.success for r in items), len(items), self.group[name],
                        labelled_passed=sum(known), labelled_failed=len(known) - sum(known),
                    )
                )  # fmt: skip
            return rogan_gladen_mix(parts, self.accuracies)
        ppi_parts = []
        for weight, _, items in strata:
            labelled_rows = [r for r in items if r.session_id in self.labels]
            others = [r.success for r in items if r.session_id not in self.labels]
            part = ppi_mean(
                [self.labels[r.session_id] for r in labelled_rows],
                [r.success for r in labelled_rows],
                others,
            )
            ppi_parts.append((weight, part))
        if len(ppi_parts) == 1:
            return ppi_parts[0][1]
        return combine(ppi_parts, self.method)

    def accuracy_of(self, benchmark: str) -> dict[str, Any]:
        """Which judge error a benchmark's correction used."""
        group = self.group.get(benchmark, "pooled")
        accuracy = self.accuracies[group]
        own = self.own.get(benchmark, Accuracy(0, 0, 0, 0))
        return {
            "from": "this benchmark's labels" if group != "pooled" else "every benchmark's labels",
            "sensitivity": accuracy.sensitivity,
            "specificity": accuracy.specificity,
            "labelled_passed": own.m1,
            "labelled_failed": own.m0,
        }


def _corrected(entry: dict[str, Any], corrected: Corrected, key: str = "corrected") -> None:
    entry[key] = corrected.to_json()
    if corrected.value is None:
        entry[f"{key}_reason"] = corrected.reason


def _budget(corrector: _Corrector, name: str, items: Sequence[Row]) -> dict[str, Any]:
    own = corrector.own.get(name, Accuracy(0, 0, 0, 0))
    if own.m1 < MIN_CLASS or own.m0 < MIN_CLASS:
        return {
            "benchmark": name,
            "truly_passed": max(0, MIN_CLASS - own.m1),
            "truly_failed": max(0, MIN_CLASS - own.m0),
            "note": f"to reach {MIN_CLASS} of each class, so that this benchmark's own judge "
            "error can be measured (until then it takes every benchmark's)",
        }
    need = label_budget(sum(r.success for r in items), len(items), own)
    if need is None:
        return {
            "benchmark": name,
            "truly_passed": None,
            "truly_failed": None,
            "note": "no number of labels brings the interval under 5 points (the judge "
            "is too weak here, or too few sessions were graded)",
        }
    return {"benchmark": name, **need, "note": "more labelled sessions of each class"}


def analyse(
    rows: Sequence[Row],
    labels: Labels,
    *,
    method: str = "auto",
    min_n: int = 10,
    slots: Sequence[str] = (),
    counted: str = "",
) -> dict[str, Any]:
    """The measured report (module docstring). `slots`: the judge slots whose quality
    is measured; `counted`: the name of the counted verdict where it is not one slot
    (the majority)."""
    chosen = choose_method(method, labels) if len(labels) else method
    given = labels.by_session
    corrector = _Corrector(rows, given, chosen if chosen != "auto" else "rogan-gladen")
    out: dict[str, Any] = {
        "labels": {**labels.to_json(), "matched": sum(1 for r in rows if r.session_id in given)},
        "method": corrector.method if len(labels) else None,
        "min_n": min_n,
    }
    judges = []
    names: list[tuple[str, Callable[[Row], int | None]]] = [
        (slot, _vote_of(slot)) for slot in slots
    ]
    if counted:
        names.append((counted, _counted))
    for name, verdict_of in names:
        pairs: list[Pair] = []
        for row in rows:
            verdict = verdict_of(row)
            if row.session_id in given and verdict is not None:
                pairs.append((row.session_id, row.benchmark, verdict, given[row.session_id]))
        if pairs:
            judges.append(judge_quality(name, pairs))
    out["judges"] = judges

    by_benchmark: dict[str, list[Row]] = defaultdict(list)
    by_cell: dict[tuple[str, str, str], list[Row]] = defaultdict(list)
    by_config: dict[tuple[str, str], dict[str, list[Row]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        by_benchmark[row.benchmark].append(row)
        by_cell[(row.benchmark, row.harness, row.agent_model)].append(row)
        by_config[(row.harness, row.agent_model)][row.benchmark].append(row)

    cells = []
    for (benchmark, harness, model), items in sorted(by_cell.items()):
        entry: dict[str, Any] = {
            "benchmark": benchmark, "harness": harness, "agent_model": model,
            "n": len(items), "judge_rate": _rate(sum(r.success for r in items), len(items)),
            "small": len(items) < min_n,
        }  # fmt: skip
        _corrected(entry, corrector.correct([(1.0, benchmark, items)]))
        cells.append(entry)
    out["cells"] = cells

    benchmarks = []
    for name, items in sorted(by_benchmark.items()):
        entry = {
            "benchmark": name, "n": len(items),
            "judge_rate": _rate(sum(r.success for r in items), len(items)),
            "small": len(items) < min_n, "judge_error": corrector.accuracy_of(name),
        }  # fmt: skip
        _corrected(entry, corrector.correct([(1.0, name, items)]))
        benchmarks.append(entry)
    out["benchmarks"] = benchmarks
    out["budget"] = (
        [_budget(corrector, name, items) for name, items in sorted(by_benchmark.items())]
        if given
        else []
    )

    plain: Sequence[Any] = rows  # read as mappings (`Row.__getitem__`)
    steady = {d["config"]: d for d in dependability(plain, min_n)}
    configs = []
    for (harness, model), per in sorted(by_config.items()):
        items = [r for group in per.values() for r in group]
        n = len(items)
        costs = [r.cost for r in items if r.cost is not None]
        config_name = f"{harness} / {model}"
        sure = steady[config_name]
        balanced_ci = _balanced_ci(per)
        entry = {
            "harness": harness, "agent_model": model, "config": config_name, "n": n,
            "benchmarks": sorted(per), "judge_rate": _rate(sum(r.success for r in items), n),
            "pooled": _rate(sum(r.success for r in items), n),
            "balanced": {"value": round(sure["balanced"], 6), "ci": balanced_ci},
            "cross_benchmark_sd": sure["sd_across_benchmarks"],
            "other_benchmarks": sure["other_benchmarks"],
            "cost_per_task": sum(costs) / len(costs) if costs else None,
            "cost_known": len(costs), "small": sure["small"],
        }  # fmt: skip
        _corrected(entry, corrector.correct([(len(g) / n, b, g) for b, g in sorted(per.items())]))
        _corrected(
            entry,
            corrector.correct([(1 / len(per), b, g) for b, g in sorted(per.items())]),
            "balanced_corrected",
        )
        configs.append(entry)
    placed = {
        c["config"]: c["on_frontier"]
        for c in frontier(
            [
                {
                    "config": c["config"],
                    "balanced": c["balanced"]["value"],
                    "cost_per_task": c["cost_per_task"],
                }
                for c in configs
            ]
        )
    }
    for entry in configs:
        entry["on_frontier"] = placed[entry["config"]]
    out["configs"] = configs

    total = len(rows)
    overall: dict[str, Any] = {"n": total, "judge_rate": _rate(sum(r.success for r in rows), total)}
    if total:
        _corrected(
            overall,
            corrector.correct([(len(g) / total, b, g) for b, g in sorted(by_benchmark.items())]),
        )
    out["overall"] = overall
    out["regression"] = regression(plain)
    out["spending"] = spending(plain, min_n)
    out["best"] = best(plain, min_n)
    out["failure_modes"] = failure_modes(plain, min_n)
    return out


def _vote_of(slot: str) -> Callable[[Row], int | None]:
    def vote(row: Row) -> int | None:
        return row.votes.get(slot)

    return vote


def _counted(row: Row) -> int | None:
    return row.success


def _balanced_ci(per: Mapping[str, Sequence[Row]]) -> list[float] | None:
    balanced = balanced_rate([(sum(r.success for r in g), len(g)) for g in per.values()])
    if balanced is None:
        return None
    return [round(balanced[1][0], 6), round(balanced[1][1], 6)]


__all__ = ["METHODS", "MIN_CLASS", "Row", "analyse", "choose_method"]
