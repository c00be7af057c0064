"""How good a judge is, measured against people's labels.

In: for one judge, (session id, benchmark, its verdict, the label) for every labelled
session it graded. Out, overall and per benchmark: n labelled, sensitivity (it passes
a truly passed session), specificity (it fails a truly failed one) and accuracy, each
with a Wilson 95% interval; Cohen's kappa with the percentile bootstrap interval the
agreement report uses; the 2x2 confusion matrix (rows the label, columns the judge);
and the sessions where the judge and the label disagree, by id.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from ..stats import bootstrap_ci, kappa_counts, wilson
from .correct import Accuracy

#: (session id, benchmark, the judge's verdict, the label).
Pair = tuple[str, str, int, int]


def _proportion(successes: int, n: int) -> dict[str, Any] | None:
    if n == 0:
        return None
    ci = wilson(successes, n)
    return {
        "value": round(successes / n, 6),
        "ci": [round(ci[0], 6), round(ci[1], 6)] if ci else None,
        "n": n,
    }


def _kappa(pairs: Sequence[tuple[int, int]]) -> dict[str, Any] | None:
    counts = Counter(pairs)
    value = kappa_counts(counts)
    if value is None:
        return None
    ci = bootstrap_ci(list(pairs), kappa_counts)
    return {
        "value": round(value, 6),
        "ci": [round(ci[0], 6), round(ci[1], 6)] if ci else None,
        "n": len(pairs),
    }


def metrics(pairs: Sequence[Pair]) -> dict[str, Any]:
    """The measures of one judge over `pairs` (module docstring), without the split by
    benchmark."""
    verdict_label = [(verdict, label) for _, _, verdict, label in pairs]
    accuracy = Accuracy.of(verdict_label)
    correct = sum(1 for v, y in verdict_label if v == y)
    confusion = [[0, 0], [0, 0]]
    for verdict, label in verdict_label:
        confusion[label][verdict] += 1
    return {
        "n_labelled": len(pairs),
        "sensitivity": _proportion(accuracy.passed_of_passed, accuracy.m1),
        "specificity": _proportion(accuracy.failed_of_failed, accuracy.m0),
        "accuracy": _proportion(correct, len(pairs)),
        "kappa": _kappa(verdict_label),
        # rows: the label (failed, passed); columns: the judge's verdict (failed, passed)
        "confusion": confusion,
        "disagree": sorted(session for session, _, v, y in pairs if v != y),
    }


def judge_quality(judge: str, pairs: Sequence[Pair]) -> dict[str, Any]:
    """One judge's measures overall and per benchmark."""
    by_benchmark: dict[str, list[Pair]] = defaultdict(list)
    for pair in pairs:
        by_benchmark[pair[1]].append(pair)
    return {
        "judge": judge,
        **metrics(pairs),
        "by_benchmark": {name: metrics(items) for name, items in sorted(by_benchmark.items())},
    }


__all__ = ["Pair", "judge_quality", "metrics"]
