"""The success report: who succeeded where, with intervals, tokens and cost.

In: the verdicts in `OUT/journal.jsonl`, read through `results` (one judge slot, or
the majority of the panel's slots per session), the agents' token counts and costs the
traces carry, and prices.
Out: tables as Markdown or CSV, and with `--plots DIR` PNG charts:

- success rate per benchmark x harness x agent model, with n and Wilson 95%
  intervals; cells under `--min-n` are marked;
- per configuration (harness x agent model): the pooled rate next to the
  benchmark-balanced rate (the mean of its per-benchmark rates), because
  configurations ran different benchmark mixes and pooling misleads;
- tokens and cost per task and per success, where the traces carry token counts and
  the source's cost or a price for the agent model is known.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from . import canary
from .agreement import SMALL_CELL
from .journal import OK, read_fields
from .measure import Labels, merge
from .measure.analysis import Row, analyse
from .measure.render import to_markdown as measured_markdown
from .models import main_model
from .pricing import PriceTable
from .progress import fallback_lines
from .results import Results, majority, open_results
from .stats import balanced_rate, wilson

#: The version of the object `report --json` writes.
JSON_FORMAT = "judge-engine-report/1"


@dataclass
class _Session:
    benchmark: str
    harness: str
    model: str
    success: int
    tokens: int | None = None
    cost: float | None = None
    #: "spans", "column" or "priced" (the tokens at the model's price); None: unknown.
    cost_from: str | None = None
    session_id: str = ""
    #: Every judge slot's verdict (None: it gave none).
    votes: Mapping[str, int | None] = field(default_factory=dict)
    #: The agent's LLM calls, where the journal kept them.
    calls: int | None = None
    #: Every judge slot's failure mode, and the counted verdict's.
    modes: Mapping[str, str | None] = field(default_factory=dict)
    mode: str | None = None


@dataclass
class Cell:
    successes: int = 0
    n: int = 0
    tokens: list[int] = field(default_factory=list)
    costs: list[float] = field(default_factory=list)
    cost_from: Counter[str] = field(default_factory=Counter)

    def add(self, session: _Session) -> None:
        self.n += 1
        self.successes += session.success
        if session.tokens is not None:
            self.tokens.append(session.tokens)
        if session.cost is not None:
            self.costs.append(session.cost)
            self.cost_from[session.cost_from or "column"] += 1


@dataclass
class _Journal:
    """What the report needs of the journal, read in one pass: per session its facts
    and every slot's verdict, the slots in the order seen, and per slot the models that
    answered for it."""

    facts: dict[str, dict[str, Any]] = field(default_factory=dict)
    votes: dict[str, dict[str, int | None]] = field(default_factory=dict)
    modes: dict[str, dict[str, str | None]] = field(default_factory=dict)
    #: session -> slot -> the rubric's other criteria (`criterion:NAME` columns).
    criteria: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    slots: dict[str, None] = field(default_factory=dict)
    judged: dict[str, Counter[str]] = field(default_factory=dict)

    @classmethod
    def read(cls, view: Results) -> _Journal:
        """One pass over every record, each newer one over the older of its request:
        what the newest record of each request says (`Results.latest`), at the cost of
        one reading of the journal, not two."""
        data = cls()
        judges: dict[tuple[str, str], str | None] = {}
        facts, votes_of, shows = data.facts, data.votes, view.shows
        for record in read_fields(view.journal):
            slot = record["slot"]
            if record["sample"] != 0 or not shows(slot):
                continue
            session = record["session_id"]
            get = record.get
            fact = facts.get(session)
            if fact is None:
                fact = facts[session] = {
                    "usage": {}, "cost": None, "cost_from": None, "calls": None, "label": None,
                }  # fmt: skip
            fact["benchmark"] = get("benchmark") or "unknown"
            fact["harness"] = get("harness") or "unknown"
            fact["model"] = (
                get("agent_model") or main_model(get("agent_models") or ())[0] or "unknown"
            )
            # Keep what any record knows: records from older runs may lack these.
            calls, label, usage, cost = (
                get("agent_calls"), get("label"), get("agent_usage"), get("agent_cost_usd")
            )  # fmt: skip
            if calls is not None and isinstance(calls, int):
                fact["calls"] = calls
            if label is not None and label in (0, 1):
                fact["label"] = int(label)
            if usage and isinstance(usage, dict):
                fact["usage"] = usage
            if cost is not None and isinstance(cost, (int, float)):
                fact["cost"] = float(cost)
                fact["cost_from"] = get("agent_cost_from") or "column"
            success: Any = get("success")
            ok = record["status"] == OK and success in (0, 1)
            votes = votes_of.get(session)
            if votes is None:
                votes = votes_of[session] = {}
            votes[slot] = int(success) if ok else None
            answers = get("criteria")
            if ok and isinstance(answers, dict) and answers:
                data.criteria.setdefault(session, {})[slot] = answers
            mode = get("failure_mode")
            modes = data.modes.get(session)
            if modes is None:
                modes = data.modes[session] = {}
            modes[slot] = mode if ok and isinstance(mode, str) else None
            judges[(session, slot)] = record["judge"] if ok else None
        for (_, slot), judge in judges.items():
            data.slots[slot] = None
            if judge:
                judged = data.judged.get(slot)
                if judged is None:
                    judged = data.judged[slot] = Counter()
                judged[judge] += 1
        return data

    def carried(self) -> dict[str, int]:
        """The labels the source rows carry."""
        return {k: f["label"] for k, f in self.facts.items() if f["label"] is not None}


def _sessions(data: _Journal, slot: str | None, prices: PriceTable) -> list[_Session]:
    """One row per session: its verdict from `slot`, or the majority of the panel's
    slots (slot None); from the latest record of each request (`results`)."""
    out = []
    for session, by_slot in data.votes.items():
        if slot is not None:
            success = by_slot.get(slot)
        else:
            success = majority([v for v in by_slot.values() if v is not None])
        if success is None:
            continue
        modes = data.modes.get(session, {})
        if slot is not None:
            mode = modes.get(slot)
        else:  # the most common mode among the judges that gave the majority verdict
            named = [modes.get(s) for s, v in by_slot.items() if v == success and modes.get(s)]
            mode = Counter(named).most_common(1)[0][0] if named else None
        fact = data.facts[session]
        usage: Mapping[str, int] = fact["usage"] or {}
        tokens = usage.get("total_tokens")
        cost, cost_from = fact["cost"], fact["cost_from"]
        if cost is None and {"input_tokens", "output_tokens"} <= set(usage):
            cost = prices.cost(fact["model"], usage["input_tokens"], usage["output_tokens"])
            cost_from = "priced" if cost is not None else None
        out.append(
            _Session(
                fact["benchmark"],
                fact["harness"],
                fact["model"],
                success,
                tokens,
                cost,
                cost_from,
                session,
                by_slot,
                fact["calls"],
                modes,
                mode,
            )
        )
    return out


def build(
    out_dir: Path,
    *,
    slot: str | None = None,
    majority: bool = False,
    min_n: int = 10,
    prices: Mapping[str, tuple[float, float]] | None = None,
    all_judges: bool = False,
    labels: Labels | None = None,
    method: str = "auto",
) -> dict[str, Any]:
    """The report's tables as data, and under "measured" the judges against the labels
    (`labels`, a file's, merged over those the source rows carry), the corrected rates
    and the analysis after grading (`measure.analysis`)."""
    view = open_results(out_dir, all_judges=all_judges)
    data = _Journal.read(view)
    available = view.slot_order(data.slots)
    if majority:
        slot = None
        verdict = f"the majority of the judge slots {', '.join(available)} (ties left out)"
    else:
        if slot is None:
            if not available:
                raise ValueError(f"{out_dir} holds no verdict of the current panel yet")
            slot = available[0]
        elif slot not in available:
            hidden = slot in view.hidden_slots()
            raise ValueError(
                f"judge slot {slot!r} is not in the run's current panel (--all-judges counts it)"
                if hidden
                else f"no judge slot {slot!r} in {out_dir}: {', '.join(available) or 'none'}"
            )
        verdict = f"judge slot {slot}"
    sessions = _sessions(data, slot, PriceTable(prices))
    judged = {k: v for k, v in data.judged.items() if slot is None or k == slot}
    cells: dict[tuple[str, str, str], Cell] = {}
    configs: dict[tuple[str, str], dict[str, Cell]] = {}
    for session in sessions:
        key = (session.benchmark, session.harness, session.model)
        cell = cells.get(key)
        if cell is None:
            cell = cells[key] = Cell()
        cell.add(session)
        per_benchmark = configs.setdefault((session.harness, session.model), {})
        cell = per_benchmark.get(session.benchmark)
        if cell is None:
            cell = per_benchmark[session.benchmark] = Cell()
        cell.add(session)
    cell_rows = []
    for (benchmark, harness, model), cell in sorted(cells.items()):
        cell_rows.append(
            {
                "benchmark": benchmark,
                "harness": harness,
                "agent_model": model,
                "n": cell.n,
                "successes": cell.successes,
                "rate": cell.successes / cell.n,
                "ci95": wilson(cell.successes, cell.n),
                "small": cell.n < min_n,
            }
        )
    config_rows = []
    for (harness, model), per_benchmark in sorted(configs.items()):
        pooled = Cell()
        for cell in per_benchmark.values():
            pooled.successes += cell.successes
            pooled.n += cell.n
            pooled.tokens += cell.tokens
            pooled.costs += cell.costs
            pooled.cost_from += cell.cost_from
        balanced = balanced_rate([(c.successes, c.n) for c in per_benchmark.values()])
        assert balanced is not None
        successes = pooled.successes
        config_rows.append(
            {
                "harness": harness,
                "agent_model": model,
                "benchmarks": len(per_benchmark),
                "n": pooled.n,
                "pooled_rate": successes / pooled.n,
                "pooled_ci95": wilson(successes, pooled.n),
                "balanced_rate": balanced[0],
                "balanced_ci95": balanced[1],
                "small": any(c.n < min_n for c in per_benchmark.values()),
                "tokens_per_task": _mean(pooled.tokens),
                "tokens_per_success": sum(pooled.tokens) / successes
                if pooled.tokens and successes and len(pooled.tokens) == pooled.n
                else None,
                "cost_per_task": _mean(pooled.costs),
                "cost_per_success": sum(pooled.costs) / successes
                if pooled.costs and successes and len(pooled.costs) == pooled.n
                else None,
                "cost_from": dict(pooled.cost_from),
            }
        )
    return {
        "verdict": verdict,
        "sessions": len(sessions),
        "min_n": min_n,
        "cells": cell_rows,
        "configurations": config_rows,
        "benchmarks": sorted({s.benchmark for s in sessions}),
        "fallbacks": fallback_lines(judged),
        "canaries": canary.summary(out_dir),
        "criteria": _criteria(data, sessions, slot, min_n),
        "topics": _topics(out_dir),
        "measured": analyse(
            [
                Row(
                    s.session_id,
                    s.benchmark,
                    s.harness,
                    s.model,
                    s.success,
                    s.votes,
                    s.tokens,
                    s.calls,
                    s.cost,
                    s.mode,
                    s.modes,
                )
                for s in sessions
            ],
            merge(data.carried(), labels),
            method=method,
            min_n=min_n,
            slots=available,
            counted="majority" if slot is None else "",
        ),
    }


def _criteria(
    data: _Journal, sessions: Sequence[_Session], slot: str | None, min_n: int
) -> list[dict[str, Any]]:
    """Each criterion the rubrics declared, from the counted slot's answers (the first
    slot's when the verdict counted is the majority): its mean and n overall and per
    benchmark (a pass_fail criterion's mean is its pass rate)."""
    counted = slot or next(iter(data.slots), None)
    values: dict[str, dict[str, list[int]]] = {}
    for session in sessions:
        answers = data.criteria.get(session.session_id, {}).get(counted or "", {})
        for name, value in answers.items():
            if isinstance(value, int):
                per = values.setdefault(name, {})
                per.setdefault("", []).append(value)
                per.setdefault(session.benchmark, []).append(value)
    out = []
    for name, per in sorted(values.items()):
        every = per.pop("")
        out.append(
            {
                "criterion": name,
                "n": len(every),
                "mean": sum(every) / len(every),
                "by_benchmark": {
                    b: {"n": len(v), "mean": sum(v) / len(v), "small": len(v) < min_n}
                    for b, v in sorted(per.items())
                },
            }
        )
    return out


def _topics(out_dir: Path) -> dict[str, Any] | None:
    """The topics `judge-engine topics` wrote, if any."""
    try:
        data = orjson.loads((out_dir / "topics.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("topics"), list) else None


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _interval(ci: Sequence[float] | None) -> str:
    return "-" if ci is None else f"{ci[0]:.0%}–{ci[1]:.0%}"


def _money(value: float | None) -> str:
    return "-" if value is None else f"${value:,.4f}"


def _sources(counts: Mapping[str, int] | None, n: int) -> str:
    """Where a row's costs came from: "spans 12, priced 3, unknown 1"."""
    counts = dict(counts or {})
    known = sum(counts.values())
    if known < n:
        counts["unknown"] = n - known
    return ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())) or "-"


def _count(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def to_markdown(report: Mapping[str, Any]) -> str:
    mark = f"† fewer than {report['min_n']} sessions"
    lines = [
        f"# Success report ({report['sessions']} sessions; verdict: {report['verdict']})",
        "",
        *(f"{line}  " for line in report.get("fallbacks", [])),
        *([""] if report.get("fallbacks") else []),
        "## Success by benchmark, harness and agent model",
        "",
        "| benchmark | harness | agent model | n | success | 95% CI (Wilson) |",
        "|---|---|---|---:|---:|---|",
    ]
    for row in report["cells"]:
        flag = " †" if row["small"] else ""
        lines.append(
            f"| {row['benchmark']} | {row['harness']} | {row['agent_model']} | {row['n']}{flag} "
            f"| {_pct(row['rate'])} | {_interval(row['ci95'])} |"
        )
    lines += [
        "",
        mark,
        "",
        "## Configurations: pooled vs benchmark-balanced",
        "",
        "Pooled weighs every session alike; balanced is the mean of the per-benchmark rates "
        "(normal interval from their Agresti-Coull-adjusted binomial variances), so a "
        "configuration that ran more of an easy benchmark does not look better for it.",
        "",
        "| harness | agent model | benchmarks | n | pooled | 95% CI | balanced | 95% CI |",
        "|---|---|---:|---:|---:|---|---:|---|",
    ]
    for row in report["configurations"]:
        flag = " †" if row["small"] else ""
        lines.append(
            f"| {row['harness']} | {row['agent_model']} | {row['benchmarks']} | {row['n']}{flag} "
            f"| {_pct(row['pooled_rate'])} | {_interval(row['pooled_ci95'])} "
            f"| {_pct(row['balanced_rate'])} | {_interval(row['balanced_ci95'])} |"
        )
    lines += [
        "",
        "## Tokens and cost (the agents', from the traces)",
        "",
        "| harness | agent model | tokens / task | tokens / success | cost / task "
        "| cost / success | cost from |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for row in report["configurations"]:
        lines.append(
            f"| {row['harness']} | {row['agent_model']} | {_count(row['tokens_per_task'])} "
            f"| {_count(row['tokens_per_success'])} | {_money(row['cost_per_task'])} "
            f"| {_money(row['cost_per_success'])} | {_sources(row.get('cost_from'), row['n'])} |"
        )
    lines += [
        "",
        "Cost comes from the traces: the sum of the spans' own cost attributes "
        "(gen_ai.cost.total_cost, gen_ai.usage.cost, response_cost) or the source's cost "
        "column; else the token counts at the agent model's price (built in, or --price, "
        "which covers every spelling of the model); '-' where none is known. 'cost from' "
        "says which, in how many sessions.",
    ]
    if report.get("measured"):
        lines += ["", measured_markdown(report["measured"])]
    if report.get("criteria"):
        lines += [
            "",
            "## Criteria",
            "",
            "| criterion | benchmark | n | mean |",
            "|---|---|---:|---:|",
        ]
        for entry in report["criteria"]:
            lines.append(f"| {entry['criterion']} | all | {entry['n']:,} | {entry['mean']:.2f} |")
            for name, per in entry["by_benchmark"].items():
                flag = " †" if per["small"] else ""
                lines.append(
                    f"| {entry['criterion']} | {name} | {per['n']:,}{flag} | {per['mean']:.2f} |"
                )
    if report.get("topics"):
        topics = report["topics"]
        lines += [
            "",
            f"## Topics (judge-engine topics, mode {topics.get('mode')})",
            "",
            "| topic | name | sessions | share | description |",
            "|---|---|---:|---:|---|",
        ]
        for topic in topics["topics"]:
            lines.append(
                f"| {topic['id']} | {topic['name']} | {topic['size']:,} | {topic['share']:.0%} "
                f"| {topic['description']} |"
            )
    if report.get("canaries"):
        lines += ["", *canary.lines_of(report["canaries"])]
    return "\n".join(lines)


def to_json(report: Mapping[str, Any]) -> dict[str, Any]:
    """The object `report --json` writes (the README lists every key): the measured
    report's keys, with the run's verdict, its sessions and the fallback lines."""
    measured = dict(report["measured"])
    return {
        "format": JSON_FORMAT,
        "verdict": report["verdict"],
        "sessions": report["sessions"],
        "fallbacks": report.get("fallbacks", []),
        **measured,
        "criteria": report.get("criteria", []),
        "topics": report.get("topics"),
        "canaries": report.get("canaries"),
    }


def to_csv(report: Mapping[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        [
            "table",
            "benchmark",
            "harness",
            "agent_model",
            "n",
            "successes",
            "rate",
            "ci_low",
            "ci_high",
            "balanced_rate",
            "balanced_low",
            "balanced_high",
            "tokens_per_task",
            "tokens_per_success",
            "cost_per_task",
            "cost_per_success",
            "small",
        ]
    )
    for row in report["cells"]:
        low, high = row["ci95"] or (None, None)
        writer.writerow(
            [
                "cell",
                row["benchmark"],
                row["harness"],
                row["agent_model"],
                row["n"],
                row["successes"],
                row["rate"],
                low,
                high,
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                row["small"],
            ]
        )
    for row in report["configurations"]:
        low, high = row["pooled_ci95"] or (None, None)
        b_low, b_high = row["balanced_ci95"]
        writer.writerow(
            [
                "configuration",
                "",
                row["harness"],
                row["agent_model"],
                row["n"],
                round(row["pooled_rate"] * row["n"]),
                row["pooled_rate"],
                low,
                high,
                row["balanced_rate"],
                b_low,
                b_high,
                row["tokens_per_task"],
                row["tokens_per_success"],
                row["cost_per_task"],
                row["cost_per_success"],
                row["small"],
            ]
        )
    return buffer.getvalue()


#: The smallest type on a chart, in points: readable at 100% zoom.
MIN_PT = 8


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError(
            "--plots needs matplotlib: pip install matplotlib (in a clone: pip install -e "
            "'.[plots]')"
        ) from None
    return plt


def figures(report: Mapping[str, Any], agreement: Mapping[str, Any]) -> dict[str, Any]:
    """The charts as matplotlib figures, by file name: the success heatmap, pooled vs
    balanced bars, and the judges' kappa matrix (with two judges or more). Every cell
    says its n; small cells are marked; what has no data is grey and says so, never a
    colour that reads as a value."""
    plt = _pyplot()
    with plt.rc_context({"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9}):
        out = {
            "success_heatmap.png": _heatmap(report, plt),
            "pooled_vs_balanced.png": _bars(report, plt),
        }
        if len(agreement.get("judges", [])) >= 2:
            out["judge_kappa.png"] = _kappa(agreement, plt)
    return out


def plots(report: Mapping[str, Any], agreement: Mapping[str, Any], folder: Path) -> list[Path]:
    """Write the charts (`figures`) as PNG files into `folder`."""
    charts = figures(report, agreement)
    plt = _pyplot()
    folder.mkdir(parents=True, exist_ok=True)
    return [_save(figure, folder / name, plt) for name, figure in charts.items()]


def _grey_for_missing(plt: Any, name: str) -> Any:
    return plt.get_cmap(name).with_extremes(bad="#d9d9d9")


def _heatmap(report: Mapping[str, Any], plt: Any) -> Any:
    import numpy as np

    rows = report["configurations"]
    configs = [f"{r['harness']} / {r['agent_model']}" for r in rows]
    benchmarks = report["benchmarks"]
    index = {(r["harness"], r["agent_model"]): i for i, r in enumerate(rows)}
    grid = np.full((max(1, len(configs)), max(1, len(benchmarks))), np.nan)
    cells: dict[tuple[int, int], Mapping[str, Any]] = {}
    for cell in report["cells"]:
        at = (index[(cell["harness"], cell["agent_model"])], benchmarks.index(cell["benchmark"]))
        grid[at] = cell["rate"]
        cells[at] = cell
    width = min(24.0, 1.5 * len(benchmarks) + 0.09 * max((len(c) for c in configs), default=10) + 3)
    figure, axes = plt.subplots(figsize=(width, 0.7 * len(configs) + 2.4))
    image = axes.imshow(
        np.ma.masked_invalid(grid), vmin=0, vmax=1, cmap=_grey_for_missing(plt, "viridis"),
        aspect="auto",
    )  # fmt: skip
    axes.set_xticks(range(len(benchmarks)), benchmarks, rotation=30, ha="right")
    axes.set_yticks(range(len(configs)), configs)
    axes.set_xlabel("benchmark")
    axes.set_ylabel("harness / agent model")
    for i in range(len(configs)):
        for j in range(len(benchmarks)):
            cell = cells.get((i, j))
            if cell is None:
                axes.text(j, i, "–", ha="center", va="center", fontsize=MIN_PT)
                continue
            mark = "*" if cell["small"] else ""
            axes.text(
                j, i, f"{cell['rate']:.0%}{mark}\nn={cell['n']}", ha="center", va="center",
                fontsize=MIN_PT + 1, color="white" if cell["rate"] < 0.5 else "black",
            )  # fmt: skip
    figure.colorbar(image, ax=axes, label="success rate")
    axes.set_title(
        f"Success by configuration and benchmark\n({report['verdict']}; * fewer than "
        f"{report['min_n']} sessions; grey: none)"
    )
    figure.tight_layout()
    return figure


def _bars(report: Mapping[str, Any], plt: Any) -> Any:
    """Horizontal bars, one pair per configuration: any number of them stays legible."""
    rows = report["configurations"]
    labels = [
        f"{r['harness']} / {r['agent_model']} (n={r['n']}{'*' if r['small'] else ''})" for r in rows
    ]
    longest = max((len(label) for label in labels), default=20)
    figure, axes = plt.subplots(figsize=(6 + 0.08 * longest, 0.55 * len(rows) + 1.8))
    positions = range(len(rows))
    for offset, (key, ci_key, label) in enumerate(
        (("pooled_rate", "pooled_ci95", "pooled"), ("balanced_rate", "balanced_ci95", "balanced"))
    ):
        values = [r[key] for r in rows]
        errors = [[r[key] - r[ci_key][0] for r in rows], [r[ci_key][1] - r[key] for r in rows]]
        axes.barh(
            [p + (offset - 0.5) * 0.38 for p in positions], values, 0.38, xerr=errors,
            capsize=3, label=label,
        )  # fmt: skip
    axes.set_yticks(list(positions), labels)
    axes.invert_yaxis()  # the first configuration on top, as in the tables
    axes.set_xlim(0, 1)
    axes.set_xlabel("success rate (95% CI)")
    axes.set_ylabel("harness / agent model")
    axes.legend(title="rate", loc="lower right")
    axes.set_title(
        "Pooled vs benchmark-balanced success per configuration\n"
        "(* a benchmark with fewer sessions than the minimum)"
    )
    figure.tight_layout()
    return figure


def _kappa(agreement: Mapping[str, Any], plt: Any) -> Any:
    import numpy as np

    judges = list(agreement["judges"])
    size = len(judges)
    matrix = np.full((size, size), np.nan)
    notes: dict[tuple[int, int], str] = {}
    for pair in agreement["pairs"]:
        i, j = judges.index(pair["a"]), judges.index(pair["b"])
        value = pair["cohen_kappa"]
        if value is None:
            text = "no common\nsessions" if not pair["n"] else f"undefined\nn={pair['n']}"
        else:
            matrix[i, j] = matrix[j, i] = value
            text = f"{value:.2f}{'*' if pair.get('small') else ''}\nn={pair['n']}"
        notes[(i, j)] = notes[(j, i)] = text
    figure, axes = plt.subplots(figsize=(1.6 * size + 3.5, 1.2 * size + 2.4))
    image = axes.imshow(
        np.ma.masked_invalid(matrix), vmin=-1, vmax=1, cmap=_grey_for_missing(plt, "RdBu")
    )
    axes.set_xticks(range(size), judges, rotation=30, ha="right")
    axes.set_yticks(range(size), judges)
    axes.set_xlabel("judge")
    axes.set_ylabel("judge")
    for i in range(size):
        for j in range(size):
            text = "(itself)" if i == j else notes.get((i, j), "")
            axes.text(j, i, text, ha="center", va="center", fontsize=MIN_PT + 1)
    figure.colorbar(image, ax=axes, label="Cohen's kappa")
    axes.set_title(
        f"Pairwise agreement of the judges (grey: no kappa; * fewer than {SMALL_CELL} sessions)"
    )
    figure.tight_layout()
    return figure


def _save(figure: Any, path: Path, plt: Any) -> Path:
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
