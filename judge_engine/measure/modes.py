"""Why sessions failed: the failure modes the judges named, counted with intervals.

In: one row per counted session (its counted verdict and the failure mode that verdict
came with, its benchmark, harness, agent model and tokens). Out, over the failed
sessions: each mode's count and share with a Wilson 95% interval, overall and per level
of each factor (benchmark, harness, agent model), the top modes of each configuration,
and per mode the median tokens its sessions spent against every failed session's. A
failure whose judge named no mode (a reply from before modes were asked, or a gateway
that ignored the schema) counts under "not_given", so the shares still add up.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from ..stats import wilson

NOT_GIVEN = "not_given"
FACTORS = ("benchmark", "harness", "agent_model")
#: Modes shown per configuration.
TOP = 3


def _shares(modes: Sequence[str]) -> dict[str, dict[str, Any]]:
    counts = Counter(modes)
    n = len(modes)
    out = {}
    for code, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        ci = wilson(count, n)
        out[code] = {
            "count": count,
            "share": round(count / n, 6),
            "ci": [round(ci[0], 6), round(ci[1], 6)] if ci else None,
        }
    return out


def failure_modes(rows: Sequence[Mapping[str, Any]], min_n: int = 10) -> dict[str, Any]:
    """The counts (module docstring); `rows` need success, mode, the factors, tokens."""
    failed = [r for r in rows if not r["success"]]
    modes = [r.get("mode") or NOT_GIVEN for r in failed]
    by = []
    for factor in FACTORS:
        groups: dict[str, list[str]] = defaultdict(list)
        for row, mode in zip(failed, modes, strict=True):
            groups[str(row[factor])].append(mode)
        for level, items in sorted(groups.items()):
            by.append({"factor": factor, "level": level, "n_failed": len(items),
                       "small": len(items) < min_n, "modes": _shares(items)})  # fmt: skip
    configs: dict[str, list[str]] = defaultdict(list)
    for row, mode in zip(failed, modes, strict=True):
        configs[f"{row['harness']} / {row['agent_model']}"].append(mode)
    top = [
        {"config": config, "n_failed": len(items), "small": len(items) < min_n,
         "top": [{"mode": code, **entry} for code, entry in list(_shares(items).items())[:TOP]]}
        for config, items in sorted(configs.items())
    ]  # fmt: skip
    spent: dict[str, list[float]] = defaultdict(list)
    for row, mode in zip(failed, modes, strict=True):
        if row.get("tokens") is not None:
            spent[mode].append(float(row["tokens"]))
    every = [t for items in spent.values() for t in items]
    overall_median = statistics.median(every) if every else None
    spend = [
        {"mode": mode, "n": len(items), "median_tokens": statistics.median(items),
         "median_tokens_all_failed": overall_median,
         "ratio": statistics.median(items) / overall_median if overall_median else None}
        for mode, items in sorted(spent.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    ]  # fmt: skip
    return {
        "n_failed": len(failed),
        "overall": _shares(modes) if modes else {},
        "by": by,
        "configs": top,
        "spend": spend,
    }


__all__ = ["FACTORS", "NOT_GIVEN", "failure_modes"]
