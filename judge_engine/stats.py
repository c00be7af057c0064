"""Agreement and rate statistics, as plain functions over plain data.

In: ratings (for each item, the category each rater gave; any hashable category) or
counts. Out: numbers, or None where a statistic is undefined (say, kappa when both
raters always give the same single category: chance agreement is then 1 and the
ratio 0/0). Nothing here knows about judges or sessions.

Confidence intervals: Wilson score intervals for proportions; for kappa, alpha and
the classification metrics a percentile bootstrap over items (2,000 resamples,
seeded, so a report is reproducible); resamples where the statistic is undefined are
left out.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from itertools import combinations
from typing import Any, TypeVar

import numpy as np

Z95 = 1.959963984540054
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
CI_METHOD = f"percentile bootstrap over sessions, {BOOTSTRAP_RESAMPLES} resamples, seed 0"

T = TypeVar("T")


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (None when n is 0)."""
    if n <= 0:
        return None
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def cohen_kappa(pairs: Sequence[tuple[Hashable, Hashable]]) -> float | None:
    """Cohen's kappa of two raters over items rated by both."""
    return kappa_counts(Counter(pairs))


def kappa_counts(counts: Mapping[Any, int]) -> float | None:
    """Cohen's kappa from the counts of each (first rater, second rater) outcome."""
    n = sum(counts.values())
    if n == 0:
        return None
    observed = sum(c for (a, b), c in counts.items() if a == b) / n
    first: Counter[Hashable] = Counter()
    second: Counter[Hashable] = Counter()
    for (a, b), c in counts.items():
        first[a] += c
        second[b] += c
    expected = sum(first[c] * second.get(c, 0) for c in first) / (n * n)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1 - expected)


def confusion(pairs: Sequence[tuple[int, int]]) -> list[list[int]]:
    """[[n00, n01], [n10, n11]]: rows the first rater's verdict, columns the second's."""
    table = [[0, 0], [0, 0]]
    for a, b in pairs:
        table[a][b] += 1
    return table


def fleiss_kappa(items: Sequence[Mapping[Any, int]]) -> float | None:
    """Fleiss' kappa; each item maps category -> how many raters chose it (same total)."""
    items = [i for i in items if sum(i.values()) > 0]
    if not items:
        return None
    raters = sum(items[0].values())
    if raters < 2 or any(sum(i.values()) != raters for i in items):
        raise ValueError("Fleiss' kappa needs the same number (>= 2) of raters for every item")
    n_items = len(items)
    per_item = [
        (sum(c * c for c in item.values()) - raters) / (raters * (raters - 1)) for item in items
    ]
    p_bar = sum(per_item) / n_items
    totals: Counter[Hashable] = Counter()
    for item in items:
        totals.update(item)
    p_e = sum((t / (n_items * raters)) ** 2 for t in totals.values())
    if p_e >= 1.0:
        return None
    return (p_bar - p_e) / (1 - p_e)


def krippendorff_alpha(units: Sequence[Sequence[Hashable]]) -> float | None:
    """Krippendorff's alpha for nominal data; each unit lists the values it was given
    (raters who did not rate a unit simply add nothing). Units with one value are
    not pairable and do not count."""
    coincidence: dict[tuple[Hashable, Hashable], float] = {}
    for values in units:
        m = len(values)
        if m < 2:
            continue
        for i, j in combinations(range(m), 2):
            a, b = values[i], values[j]
            coincidence[(a, b)] = coincidence.get((a, b), 0.0) + 1 / (m - 1)
            coincidence[(b, a)] = coincidence.get((b, a), 0.0) + 1 / (m - 1)
    totals: dict[Hashable, float] = {}
    for (a, _), weight in coincidence.items():
        totals[a] = totals.get(a, 0.0) + weight
    n = sum(totals.values())
    if n <= 1:
        return None
    observed = sum(w for (a, b), w in coincidence.items() if a != b)
    expected = sum(totals[a] * totals[b] for a in totals for b in totals if a != b) / (n - 1)
    if expected == 0:
        return None
    return 1 - observed / expected


def classification(pairs: Sequence[tuple[int, int]]) -> dict[str, float | None]:
    """Accuracy, precision, recall, F1 and kappa of predictions against labels.

    `pairs` are (prediction, label); the positive class is 1 (success).
    """
    return classification_counts(Counter(pairs))


def classification_counts(counts: Mapping[tuple[int, int], int]) -> dict[str, float | None]:
    n = sum(counts.values())
    tp = counts.get((1, 1), 0)
    fp = counts.get((1, 0), 0)
    fn = counts.get((0, 1), 0)
    correct = tp + counts.get((0, 0), 0)
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    if precision is None or recall is None:
        f1 = None
    else:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "accuracy": correct / n if n else None,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "kappa": kappa_counts(counts),
    }


def bootstrap_ci(
    items: Sequence[T],
    statistic: Callable[[Mapping[T, int]], float | None],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float] | None:
    """A 95% percentile-bootstrap interval of `statistic` over `items` (None if undefined).

    `statistic` reads the counts of each distinct item, which is all that kappa and the
    classification metrics depend on; so a resample is one multinomial draw of those
    counts, and the interval costs the same for ten sessions or a million.
    """
    n = len(items)
    if n == 0:
        return None
    counts = Counter(items)
    values = list(counts)
    draws = np.random.default_rng(seed).multinomial(
        n, [counts[v] / n for v in values], size=resamples
    )
    results: list[float] = []
    for row in draws:
        value = statistic({v: int(c) for v, c in zip(values, row, strict=True) if c})
        if value is not None:
            results.append(value)
    if len(results) < resamples // 2:
        return None  # undefined in most resamples: no honest interval
    results.sort()
    return results[int(0.025 * (len(results) - 1))], results[int(0.975 * (len(results) - 1))]


def balanced_rate(cells: Sequence[tuple[int, int]]) -> tuple[float, tuple[float, float]] | None:
    """The mean of per-group rates (successes, n) and its 95% normal interval.

    Each group weighs the same whatever its size. The interval adds the groups'
    binomial variances, each with the Agresti-Coull adjustment (two successes and two
    failures added) so that a group at 0% or 100% still carries its uncertainty:
    var = sum(p~(1-p~)/(n+4)) / k^2 with p~ = (s+2)/(n+4).
    """
    cells = [(s, n) for s, n in cells if n > 0]
    if not cells:
        return None
    k = len(cells)
    mean = sum(s / n for s, n in cells) / k
    variance = sum(((s + 2) / (n + 4)) * (1 - (s + 2) / (n + 4)) / (n + 4) for s, n in cells)
    half = Z95 * math.sqrt(variance / (k * k))
    return mean, (max(0.0, mean - half), min(1.0, mean + half))
