"""Canaries: a small labelled set graded in every run, to see a judge drift.

In: the results folder of one run's canaries (`OUT/canaries/run-N/`, graded by the same
panel as the run, its rows carrying their own 0/1 labels), and `OUT/canaries/
history.jsonl`, one line per earlier run. Out: this run's line appended to the history
(per judge slot: its sensitivity and specificity counts on the canaries, the models
that answered as the gateway named them, the rubric versions), and warnings, one line
each, where a judge moved since the previous run:

- its sensitivity or specificity changed beyond chance (a two-sided two-proportion
  z-test, p < 0.05);
- the model the gateway says answered changed (a silent model update behind an alias);
- a rubric's version (the hash of its file) changed.

The canaries' verdicts live in their own folders: they are never counted in a run's
results.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from .files import open_state
from .results import open_results, verdict_of

HISTORY = "history.jsonl"
#: Below this p-value a change of sensitivity or specificity is called beyond chance.
ALPHA = 0.05


def canary_folder(out: Path) -> Path:
    return out / "canaries"


def next_run_folder(out: Path) -> Path:
    """The folder this run's canaries go to: run-1, run-2, ..."""
    base = canary_folder(out)
    base.mkdir(parents=True, exist_ok=True)
    taken = [int(p.name[4:]) for p in base.glob("run-*") if p.name[4:].isdigit()]
    return base / f"run-{max(taken, default=0) + 1}"


def measure(folder: Path) -> dict[str, Any]:
    """One canary run's line: per judge slot, its counts against the rows' labels, the
    models that answered and the rubric versions."""
    view = open_results(folder)
    judges: dict[str, dict[str, Any]] = {}
    unlabelled: set[str] = set()
    for record in view.latest(first_sample=True):
        verdict = verdict_of(record)
        entry = judges.setdefault(
            record.slot,
            {"tp": 0, "m1": 0, "tn": 0, "m0": 0, "served": set(), "rubrics": {}},
        )
        if record.served_model:
            entry["served"].add(record.served_model)
        entry["rubrics"][record.rubric] = record.rubric_version
        if record.label is None:
            unlabelled.add(record.session_id)
            continue
        if verdict is None:
            continue
        if record.label == 1:
            entry["m1"] += 1
            entry["tp"] += verdict
        else:
            entry["m0"] += 1
            entry["tn"] += 1 - verdict
    for entry in judges.values():
        entry["served"] = sorted(entry["served"])
    return {"run": folder.name, "at": time.time(), "judges": judges,
            "unlabelled": len(unlabelled)}  # fmt: skip


def history(out: Path) -> list[dict[str, Any]]:
    """The canary lines of every earlier run, oldest first."""
    path = canary_folder(out) / HISTORY
    try:
        text = path.read_bytes()
    except OSError:
        return []
    lines = []
    for line in text.splitlines():
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # a torn last line
        if isinstance(data, dict) and isinstance(data.get("judges"), dict):
            lines.append(data)
    return lines


def append(out: Path, line: Mapping[str, Any]) -> None:
    """This run's line, appended (one write; a torn line is skipped on reading)."""
    path = canary_folder(out) / HISTORY
    with open_state(path, "ab") as handle:
        handle.write(orjson.dumps(line) + b"\n")


def two_proportion_p(x1: int, n1: int, x2: int, n2: int) -> float | None:
    """The two-sided p-value of the pooled two-proportion z-test (None: undefined)."""
    if not n1 or not n2:
        return None
    pooled = (x1 + x2) / (n1 + n2)
    spread = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if spread <= 0:
        return 1.0 if x1 / n1 == x2 / n2 else None
    z = (x1 / n1 - x2 / n2) / math.sqrt(spread)
    return math.erfc(abs(z) / math.sqrt(2))


def compare(previous: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """One line per judge slot that moved (module docstring)."""
    lines = []
    before: Mapping[str, Any] = previous.get("judges", {})
    for slot, now in sorted(current.get("judges", {}).items()):
        then = before.get(slot)
        if not then:
            continue
        for name, x, n in (("sensitivity", "tp", "m1"), ("specificity", "tn", "m0")):
            p = two_proportion_p(int(then[x]), int(then[n]), int(now[x]), int(now[n]))
            if p is not None and p < ALPHA:
                lines.append(
                    f"canaries: judge slot {slot}'s {name} moved from "
                    f"{then[x] / then[n]:.0%} (n={then[n]}) in {previous.get('run')} to "
                    f"{now[x] / now[n]:.0%} (n={now[n]}) now: beyond chance (two-proportion "
                    f"test, p={p:.3f})"
                )
        if then.get("served") and now.get("served") and then["served"] != now["served"]:
            lines.append(
                f"canaries: judge slot {slot} was answered by {', '.join(then['served'])} in "
                f"{previous.get('run')}, by {', '.join(now['served'])} now (the model "
                "behind the name changed)"
            )
        for rubric, version in sorted(now.get("rubrics", {}).items()):
            old = then.get("rubrics", {}).get(rubric)
            if old and old != version:
                lines.append(
                    f"canaries: rubric {rubric} changed ({old} in {previous.get('run')}, "
                    f"{version} now): verdicts before and after are not of the same rubric"
                )
    return lines


def summary(out: Path) -> dict[str, Any] | None:
    """For `report`: the history, and the last run's comparison with the one before."""
    lines = history(out)
    if not lines:
        return None
    warnings = compare(lines[-2], lines[-1]) if len(lines) > 1 else []
    return {
        "runs": [
            {
                "run": line.get("run"),
                "at": line.get("at"),
                "judges": {
                    slot: {
                        "sensitivity": _rate(j.get("tp", 0), j.get("m1", 0)),
                        "specificity": _rate(j.get("tn", 0), j.get("m0", 0)),
                        "served": j.get("served", []),
                        "rubrics": j.get("rubrics", {}),
                    }
                    for slot, j in line["judges"].items()
                },
            }
            for line in lines
        ],
        "warnings": warnings,
    }


def _rate(x: int, n: int) -> dict[str, Any] | None:
    return {"value": x / n, "n": n} if n else None


def lines_of(report: Mapping[str, Any] | None) -> Iterator[str]:
    """The canaries' section of the text report."""
    if not report:
        return
    last = report["runs"][-1]
    yield f"## Canaries ({len(report['runs'])} runs; the last: {last['run']})"
    yield ""
    yield "| judge slot | sensitivity | specificity | answered as |"
    yield "|---|---:|---:|---|"
    for slot, judge in sorted(last["judges"].items()):
        yield (
            f"| {slot} | {_shown(judge['sensitivity'])} | {_shown(judge['specificity'])} "
            f"| {', '.join(judge['served']) or '-'} |"
        )
    yield ""
    yield from (f"⚠ {line}  " for line in report["warnings"])
    if not report["warnings"]:
        yield (
            "No judge moved beyond chance since the run before."
            if len(report["runs"]) > 1
            else "The first canary run: the next one is compared with it."
        )
    yield ""


def _shown(rate: Mapping[str, Any] | None) -> str:
    return "-" if not rate else f"{rate['value']:.0%} (n={rate['n']})"


__all__ = [
    "ALPHA",
    "append",
    "canary_folder",
    "compare",
    "history",
    "lines_of",
    "measure",
    "next_run_folder",
    "summary",
    "two_proportion_p",
]
