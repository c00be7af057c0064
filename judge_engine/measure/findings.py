"""The analysis users run after grading, on the counted verdicts.

In: one row per counted session (benchmark, harness, agent model, success, and the
agent's tokens, LLM calls and cost where the trace says). Out, as plain dicts:

- `dependability`: per configuration (harness x agent model), the benchmark-balanced
  success rate against its standard deviation across benchmarks, with n and the
  benchmarks it ran; configurations on another set of benchmarks than the most
  common one are marked;
- `frontier`: per configuration, mean cost per task against balanced success, and
  whether it is on the Pareto frontier (no other is as good for less, or better for
  as much);
- `spending`: per benchmark, the median tokens (and LLM calls) of failed against
  successful runs, their ratio with a 95% bootstrap interval (2,000 resamples of
  each group, seed 0; none under `MIN_GROUP` runs a group), and the pattern named
  when the interval excludes 1: failed runs that spend more are thrashing, less are
  giving up early;
- `best`: per benchmark, the configuration with the highest rate, and whether its
  Wilson interval lies wholly above the runner-up's.

Every figure says its n; cells under `min_n` are marked, never dropped.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..stats import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, wilson

#: Fewer failed or successful runs than this in a benchmark: no interval for the ratio
#: of their medians (a bootstrap of one or two runs says nothing) and no pattern named.
MIN_GROUP = 5


def _config(row: Mapping[str, Any]) -> str:
    return f"{row['harness']} / {row['agent_model']}"


def dependability(rows: Sequence[Mapping[str, Any]], min_n: int) -> list[dict[str, Any]]:
    by_config: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        by_config[_config(row)][str(row["benchmark"])].append(int(row["success"]))
    sets: dict[frozenset[str], int] = defaultdict(int)
    for per in by_config.values():
        sets[frozenset(per)] += 1
    common = max(sets.items(), key=lambda kv: (kv[1], len(kv[0])))[0] if sets else frozenset()
    out = []
    for config, per in sorted(by_config.items()):
        rates = [sum(v) / len(v) for v in per.values()]
        out.append(
            {
                "config": config,
                "n": sum(len(v) for v in per.values()),
                "benchmarks": sorted(per),
                "balanced": sum(rates) / len(rates),
                "sd_across_benchmarks": statistics.pstdev(rates) if len(rates) > 1 else None,
                "other_benchmarks": frozenset(per) != common,
                "small": any(len(v) < min_n for v in per.values()),
            }
        )
    return out


def frontier(configs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`configs`: dicts with config, balanced, cost_per_task (None: unknown)."""
    known = [c for c in configs if c.get("cost_per_task") is not None]
    out = []
    for config in configs:
        cost, rate = config.get("cost_per_task"), config["balanced"]
        on = cost is not None and not any(
            other is not config
            and other["cost_per_task"] <= cost
            and other["balanced"] >= rate
            and (other["cost_per_task"] < cost or other["balanced"] > rate)
            for other in known
        )
        out.append({**config, "on_frontier": on})
    return out


def bootstrap_medians(
    values: Sequence[float], resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """`resamples` draws of the median of a bootstrap resample of `values`, drawn
    exactly and in O(resamples) whatever the size: the k-th smallest of n indices drawn
    uniformly with replacement is ceil(n U_(k)), U_(k) the k-th order statistic of n
    uniforms, which is Beta(k, n - k + 1); for an even n the next one above it is
    U_(k) + (1 - U_(k)) Beta(1, n - k)."""
    ordered = np.sort(np.asarray(values, dtype=float))
    n = len(ordered)
    k = (n + 1) // 2
    lower = rng.beta(k, n - k + 1, size=resamples)
    first = ordered[np.clip(np.ceil(n * lower).astype(np.int64) - 1, 0, n - 1)]
    if n % 2:
        return np.asarray(first)
    upper = lower + (1 - lower) * rng.beta(1, n - k, size=resamples)
    second = ordered[np.clip(np.ceil(n * upper).astype(np.int64) - 1, 0, n - 1)]
    return np.asarray((first + second) / 2)


def _ratio_ci(failed: Sequence[float], succeeded: Sequence[float]) -> tuple[float, float] | None:
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    ma = bootstrap_medians(failed, BOOTSTRAP_RESAMPLES, rng)
    mb = bootstrap_medians(succeeded, BOOTSTRAP_RESAMPLES, rng)
    ok = mb > 0
    if ok.sum() < BOOTSTRAP_RESAMPLES // 2:
        return None
    ratios = np.sort(ma[ok] / mb[ok])
    return float(ratios[int(0.025 * (len(ratios) - 1))]), float(
        ratios[int(0.975 * (len(ratios) - 1))]
    )


def spending(rows: Sequence[Mapping[str, Any]], min_n: int) -> list[dict[str, Any]]:
    by_benchmark: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        by_benchmark[str(row["benchmark"])].append(row)
    out = []
    for benchmark, items in sorted(by_benchmark.items()):
        entry: dict[str, Any] = {"benchmark": benchmark}
        for measure, key in (("tokens", "tokens"), ("calls", "calls")):
            failed = [float(r[key]) for r in items if not r["success"] and r.get(key) is not None]
            passed = [float(r[key]) for r in items if r["success"] and r.get(key) is not None]
            entry[f"n_failed_{measure}"] = len(failed)
            entry[f"n_succeeded_{measure}"] = len(passed)
            med_f = statistics.median(failed) if failed else None
            med_s = statistics.median(passed) if passed else None
            entry[f"median_{measure}_failed"] = med_f
            entry[f"median_{measure}_succeeded"] = med_s
            ratio = med_f / med_s if med_f is not None and med_s else None
            enough = min(len(failed), len(passed)) >= MIN_GROUP
            ci = _ratio_ci(failed, passed) if enough and ratio is not None else None
            if measure == "tokens":
                entry["ratio"], entry["ci"] = ratio, list(ci) if ci else None
                entry["pattern"] = (
                    "failed runs spend more: thrashing"
                    if ci and ci[0] > 1
                    else ("failed runs spend less: giving up early" if ci and ci[1] < 1 else None)
                )
                entry["small"] = min(len(failed), len(passed)) < min_n
            else:
                entry["calls_ratio"] = ratio
        out.append(entry)
    return out


def best(rows: Sequence[Mapping[str, Any]], min_n: int) -> list[dict[str, Any]]:
    cells: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        cells[str(row["benchmark"])][_config(row)].append(int(row["success"]))
    out = []
    for benchmark, configs in sorted(cells.items()):
        ranked = sorted(
            ((sum(v) / len(v), len(v), sum(v), config) for config, v in configs.items()),
            key=lambda t: (-t[0], -t[1], t[3]),
        )
        rate, n, successes, config = ranked[0]
        ci = wilson(successes, n)
        separated = None
        if len(ranked) > 1:
            _, n2, s2, _ = ranked[1]
            ci2 = wilson(s2, n2)
            separated = bool(ci and ci2 and ci[0] > ci2[1])
        out.append(
            {
                "benchmark": benchmark,
                "config": config,
                "rate": rate,
                "n": n,
                "ci": list(ci) if ci else None,
                "runner_up": ranked[1][3] if len(ranked) > 1 else None,
                "separated": separated,
                "small": n < min_n,
            }
        )
    return out


__all__ = ["MIN_GROUP", "best", "bootstrap_medians", "dependability", "frontier", "spending"]
