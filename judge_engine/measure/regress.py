"""Which factor explains success: a linear-probability regression with robust errors.

In: one row per counted session: its success (0/1) and its levels of the factors
(benchmark, agent model, harness). Out: `success ~ C(benchmark) + C(agent_model) +
C(harness)` fitted by least squares with HC1 standard errors, as a dict: n, R^2, the
reference level of each factor (its most common), a coefficient per other level with
its 95% interval, each factor's drop-one R^2 change, its Shapley (LMG) share of R^2
(the mean of its R^2 gains over every order the factors can enter in; the shares add
up to R^2), a robust Wald test per factor, and warnings in words.

HC1: V = n/(n-k) (X'X)^-1 X' diag(e^2) X (X'X)^-1, with k the rank of the design. A
design whose columns are linearly dependent (a harness seen on one benchmark only, so
that its column is the benchmark's) keeps the first of the dependent columns and names
the others as confounded, never fits an unidentified coefficient silently; singleton
cells (a combination of levels seen once) fit exactly, with leverage 1 and a zero
residual, so HC1 understates their uncertainty: they are counted in a warning.
numpy is all it needs; the tests compare it with statsmodels' `ols(...).fit(cov_type=
"HC1")` to 1e-8.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..stats import Z95

FACTORS = ("benchmark", "agent_model", "harness")


def chi2_sf(x: float, dof: int) -> float:
    """P(X > x) for X chi-squared with `dof` degrees of freedom (the upper regularized
    gamma Q(dof/2, x/2), by its series or continued fraction)."""
    if x <= 0:
        return 1.0
    a, z = dof / 2.0, x / 2.0
    gln = math.lgamma(a)
    if z < a + 1:  # the series of the lower gamma, then 1 - P
        term = total = 1.0 / a
        k = a
        for _ in range(1000):
            k += 1
            term *= z / k
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(-z + a * math.log(z) - gln))
    # Lentz's continued fraction of the upper gamma.
    tiny = 1e-300
    b = z + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        step = d * c
        h *= step
        if abs(step - 1) < 1e-15:
            break
    return min(1.0, math.exp(-z + a * math.log(z) - gln) * h)


def _codes(
    rows: Sequence[Mapping[str, Any]], factors: Sequence[str]
) -> dict[str, tuple[list[str], np.ndarray]]:
    """Each factor's levels (sorted) and every row's level as an index into them (read
    once, used by every fit)."""
    out = {}
    for factor in factors:
        numbers: dict[str, int] = {}
        index = np.fromiter(
            (numbers.setdefault(str(r[factor]), len(numbers)) for r in rows),
            dtype=np.int64, count=len(rows),
        )  # fmt: skip
        names = sorted(numbers)
        order = np.array([names.index(name) for name in numbers], dtype=np.int64)
        out[factor] = (names, order[index] if len(index) else index)
    return out


def _design(
    codes: Mapping[str, tuple[list[str], np.ndarray]],
    factors: Sequence[str],
    reference: Mapping[str, str],
) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """The design matrix (an intercept, then a dummy per non-reference level) and the
    (factor, level) of each column."""
    n = len(next(iter(codes.values()))[1]) if codes else 0
    columns: list[tuple[str, str]] = [("", "intercept")]
    blocks = [np.ones((n, 1))]
    for factor in factors:
        levels, index = codes[factor]
        kept = [j for j, level in enumerate(levels) if level != reference[factor]]
        columns += [(factor, levels[j]) for j in kept]
        if kept:
            blocks.append((index[:, None] == np.array(kept)[None, :]).astype(float))
    return np.hstack(blocks), columns


def _independent(matrix: np.ndarray) -> list[int]:
    """The columns kept: each that adds to the rank of those before it (read from the
    Gram matrix, k x k, whatever the number of sessions)."""
    gram = matrix.T @ matrix
    kept: list[int] = []
    rank = 0
    for column in range(matrix.shape[1]):
        trial = [*kept, column]
        new = int(np.linalg.matrix_rank(gram[np.ix_(trial, trial)]))
        if new > rank:
            kept, rank = trial, new
    return kept


def _fit(matrix: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Least squares: coefficients, residuals, R^2."""
    beta, *_ = np.linalg.lstsq(matrix, y, rcond=None)
    residual = y - matrix @ beta
    total = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((residual**2).sum()) / total if total > 0 else 0.0
    return beta, residual, r2


def _r2(codes: Mapping[str, tuple[list[str], np.ndarray]], factors: Sequence[str],
        reference: Mapping[str, str], y: np.ndarray) -> float:  # fmt: skip
    if not factors:
        return 0.0
    matrix, _ = _design(codes, factors, reference)
    keep = _independent(matrix)
    return _fit(matrix[:, keep], y)[2]


def regression(
    rows: Sequence[Mapping[str, Any]], factors: Sequence[str] = FACTORS
) -> dict[str, Any] | None:
    """The fit (module docstring), or None with fewer than two sessions."""
    n = len(rows)
    if n < 2:
        return None
    y = np.array([float(r["success"]) for r in rows])
    reference = {
        f: sorted(Counter(str(r[f]) for r in rows).items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
        for f in factors
    }
    codes = _codes(rows, factors)
    matrix, columns = _design(codes, factors, reference)
    keep = _independent(matrix)
    warnings: list[str] = []
    dropped = [columns[i] for i in range(len(columns)) if i not in keep]
    for factor, level in dropped:
        # Which kept columns the dropped one is made of.
        x = matrix[:, keep]
        coef, *_ = np.linalg.lstsq(x, matrix[:, columns.index((factor, level))], rcond=None)
        parts = [
            f"{columns[keep[j]][0] or 'the intercept'} {columns[keep[j]][1]}".strip()
            for j in range(len(keep))
            if abs(coef[j]) > 1e-9
        ]
        warnings.append(
            f"{factor} {level} is confounded with {', '.join(parts[:4]) or 'other levels'}: "
            "its effect cannot be told apart (its coefficient is left out)"
        )
    x = matrix[:, keep]
    kept_columns = [columns[i] for i in keep]
    beta, residual, r2 = _fit(x, y)
    k = len(keep)
    bread = np.linalg.pinv(x.T @ x)
    meat = x.T @ (x * (residual**2)[:, None])
    scale = n / (n - k) if n > k else float("nan")
    cov = scale * bread @ meat @ bread
    coefficients = []
    for j, (factor, level) in enumerate(kept_columns):
        se = math.sqrt(max(0.0, float(cov[j, j]))) if math.isfinite(scale) else float("nan")
        coefficients.append(
            {
                "factor": factor or "intercept",
                "level": level,
                "estimate": float(beta[j]),
                "se_hc1": se,
                "ci": [float(beta[j] - Z95 * se), float(beta[j] + Z95 * se)],
            }
        )
    # Each factor's share: drop-one change, Shapley (LMG) over every order, Wald test.
    subsets = {
        combo: _r2(codes, list(combo), reference, y)
        for size in range(len(factors) + 1)
        for combo in itertools.combinations(factors, size)
    }

    def r2_of(names: Sequence[str]) -> float:
        return subsets[tuple(f for f in factors if f in names)]

    orders = list(itertools.permutations(factors))
    factor_rows = []
    for factor in factors:
        others = [f for f in factors if f != factor]
        shapley = sum(
            r2_of(order[: order.index(factor) + 1]) - r2_of(order[: order.index(factor)])
            for order in orders
        ) / len(orders)
        positions = [j for j, (f, _) in enumerate(kept_columns) if f == factor]
        wald_p: float | None = None
        if positions and math.isfinite(scale):
            b = beta[positions]
            v = cov[np.ix_(positions, positions)]
            try:
                statistic = float(b @ np.linalg.solve(v, b))
                wald_p = chi2_sf(statistic, len(positions))
            except np.linalg.LinAlgError:
                wald_p = None
        factor_rows.append(
            {
                "factor": factor,
                "levels": len({str(r[factor]) for r in rows}),
                "delta_r2": r2 - r2_of(others),
                "shapley_r2": shapley,
                "wald_p": wald_p,
            }
        )
    cells = Counter(tuple(str(r[f]) for f in factors) for r in rows)
    singles = sum(1 for count in cells.values() if count == 1)
    if singles:
        warnings.append(
            f"{singles:,} of {len(cells):,} cells (one combination of {', '.join(factors)}) "
            "hold one session: they fit exactly (leverage 1, zero residual), so HC1 "
            "understates their uncertainty"
        )
    if "harness" in factors and "benchmark" in factors:
        seen: dict[str, set[str]] = {}
        for r in rows:
            seen.setdefault(str(r["harness"]), set()).add(str(r["benchmark"]))
        lone = sorted(h for h, b in seen.items() if len(b) == 1 and len(seen) > 1)
        if lone:
            warnings.append(
                f"{len(lone):,} harnesses ran one benchmark only ({', '.join(lone[:5])}"
                f"{', ...' if len(lone) > 5 else ''}): their effect and that benchmark's "
                "are told apart only through the other harnesses"
            )
    if n <= k:
        warnings.append(f"{n} sessions for {k} coefficients: no standard errors")
    return {
        "n": n,
        "r2": r2,
        "rank": k,
        "reference": reference,
        "coefficients": coefficients,
        "factors": factor_rows,
        "warnings": warnings,
    }


__all__ = ["FACTORS", "chi2_sf", "regression"]
