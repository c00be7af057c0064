"""Success rates corrected for the judge's own error, from a few labels.

In: counts of judge verdicts and of labelled sessions (the judge's verdict beside the
label). Out: a corrected rate with a 95% interval that carries the uncertainty of the
labelled set, by a named method, or no figure and the reason.

- `rogan_gladen`: theta = (p + q0 - 1) / (q0 + q1 - 1), p the judge's success rate over
  N graded sessions, q1 its sensitivity (it passes a truly passed session) and q0 its
  specificity (it fails a truly failed one), each estimated from the labels (m1 truly
  passed, m0 truly failed). The delta method gives the variance, one term per source of
  uncertainty (Lee et al. 2025, "How to correctly report LLM-as-a-judge evaluations"):
  var = [V(p, N) + (1-theta)^2 V(q0, m0) + theta^2 V(q1, m1)] / (q0 + q1 - 1)^2, where
  V(r, m) = r(1-r)/m is the variance of a proportion r measured over m, and where r is
  0 or 1 the Agresti-Coull adjusted one (r~(1-r~)/(m+4), r~ = (x+2)/(m+4)), so that a
  rate measured at 0 or 1 (a cell of one session, a judge right on every labelled
  failure) does not claim to be exact. Where
  the labelled sessions are among the graded ones (as in a run), their verdicts count in
  both p and the q's: the covariance terms are added (`rogan_gladen_mix`). The interval
  is built by MOVER (Newcombe's method of variance estimates recovery): the verdicts'
  own part from the Wilson interval of p mapped through the correction (so a cell of a
  few sessions keeps Wilson's honest width and asymmetry), the labels' part added in
  quadrature: lower = theta - sqrt(((p - L)/J)^2 + z^2 V_labels), upper likewise; for
  many sessions this is the delta method's interval. No half-width is narrower than
  the one knowing every session's truth would give (z sqrt(theta~(1-theta~)/N), theta~
  Agresti-Coull adjusted): the covariances cannot take away more than the judge's noise.
  Where q0 + q1 - 1 < 0.2 the judge is little better than a coin: no figure.
- `ppi_mean`: prediction-powered inference with power tuning (PPI++, Angelopoulos,
  Duchi and Zrnic 2023) for a mean, when the labelled sessions are a random sample of
  the graded ones: theta = mean_N(lambda Yhat) + mean_n(Y - lambda Yhat), lambda =
  Cov(Y, Yhat) / ((1 + n/N) Var(Yhat)) clipped to [0, 1]; the interval is the normal
  one with the two means' variances added (as `ppi_py.ppi_mean_ci` computes it).
- `label_budget`: how many more labels of each class bring the Rogan-Gladen interval's
  half-width under a target, from the measured sensitivity and specificity.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..stats import Z95, wilson

#: Below this Youden index (sensitivity + specificity - 1) a correction is refused.
MIN_YOUDEN = 0.2


@dataclass(frozen=True)
class Accuracy:
    """A judge's error rates from labelled sessions: among the truly passed (m1) how
    many it passed, among the truly failed (m0) how many it failed."""

    m1: int
    passed_of_passed: int
    m0: int
    failed_of_failed: int

    @property
    def sensitivity(self) -> float | None:
        return self.passed_of_passed / self.m1 if self.m1 else None

    @property
    def specificity(self) -> float | None:
        return self.failed_of_failed / self.m0 if self.m0 else None

    @classmethod
    def of(cls, pairs: Sequence[tuple[int, int]]) -> Accuracy:
        """From (judge verdict, label) pairs."""
        m1 = sum(1 for _, label in pairs if label == 1)
        m0 = len(pairs) - m1
        tp = sum(1 for verdict, label in pairs if verdict == 1 and label == 1)
        tn = sum(1 for verdict, label in pairs if verdict == 0 and label == 0)
        return cls(m1, tp, m0, tn)


@dataclass(frozen=True)
class Corrected:
    """A corrected rate: value and 95% interval, or None with the reason."""

    value: float | None
    ci: tuple[float, float] | None
    method: str
    n_labels: int
    reason: str = ""
    #: The estimate's variance (for combining cells into configurations).
    variance: float | None = None

    def to_json(self) -> dict[str, object] | None:
        if self.value is None:
            return None
        return {
            "value": round(self.value, 6),
            "ci": [round(self.ci[0], 6), round(self.ci[1], 6)] if self.ci else None,
            "method": self.method,
            "n_labels": self.n_labels,
        }


def _binomial_variance(successes: int, n: int) -> float:
    """The variance of a proportion's estimate; at 0 or 1, Agresti-Coull adjusted (two
    successes and two failures added), so that such a rate still carries its
    uncertainty."""
    if 0 < successes < n:
        rate = successes / n
        return rate * (1 - rate) / n
    adjusted = (successes + 2) / (n + 4)
    return adjusted * (1 - adjusted) / (n + 4)


def _clip(value: float) -> float:
    return min(1.0, max(0.0, value))


@dataclass(frozen=True)
class Stratum:
    """One part of a weighted rate: `successes` of `n` verdicts, weighing `weight`, whose
    judge error is that of the accuracy group `group` (a benchmark, or "pooled")."""

    weight: float
    successes: int
    n: int
    group: str
    #: Labelled sessions among the stratum's own, truly passed and truly failed: their
    #: verdicts count in both the stratum's rate and the judge's measured error, so
    #: the two estimates covary (and the variance is smaller than if they did not).
    labelled_passed: int = 0
    labelled_failed: int = 0


def rogan_gladen(successes: int, n: int, accuracy: Accuracy) -> Corrected:
    """The Rogan-Gladen correction of `successes` of `n` verdicts (module docstring)."""
    return rogan_gladen_mix([Stratum(1.0, successes, n, "")], {"": accuracy})


def rogan_gladen_mix(strata: Sequence[Stratum], accuracies: Mapping[str, Accuracy]) -> Corrected:
    """A weighted sum of Rogan-Gladen corrected rates (a configuration pooled over
    benchmarks, or balanced, or the whole run). The strata's sampling terms are
    independent; strata that share an accuracy group share its label terms, so their
    derivatives add before squaring (the delta method over every estimate at once)."""
    method = "rogan-gladen"
    groups = {s.group for s in strata if s.n}
    labels = sum(accuracies[g].m0 + accuracies[g].m1 for g in groups)
    if not groups:
        return Corrected(None, None, method, labels, "no verdicts")
    for group in sorted(groups):
        accuracy = accuracies[group]
        q1, q0 = accuracy.sensitivity, accuracy.specificity
        where = f" ({group})" if group else ""
        if q1 is None or q0 is None:
            return Corrected(None, None, method, labels,
                             f"the labels{where} hold no truly passed or no truly failed "
                             "session")  # fmt: skip
        if q0 + q1 - 1 < MIN_YOUDEN:
            return Corrected(
                None, None, method, labels,
                f"the judge is little better than a coin{where}: sensitivity + specificity "
                f"- 1 = {q0 + q1 - 1:.2f} < {MIN_YOUDEN}",
            )  # fmt: skip
    value = 0.0
    sampling = 0.0  # the verdicts' own variance, symmetric (for `combine`)
    down2 = up2 = 0.0  # the same, from each stratum's Wilson interval (MOVER)
    oracle = 0.0  # the variance were every session's truth known (a floor)
    variance = 0.0  # the label terms and the covariances
    d_q0: dict[str, float] = {}
    d_q1: dict[str, float] = {}
    for stratum in strata:
        if not stratum.n:
            continue
        accuracy = accuracies[stratum.group]
        q1, q0 = accuracy.sensitivity or 0.0, accuracy.specificity or 0.0
        youden = q0 + q1 - 1
        p = stratum.successes / stratum.n
        theta = (p + q0 - 1) / youden
        value += stratum.weight * theta
        sampling += stratum.weight**2 * _binomial_variance(stratum.successes, stratum.n) / youden**2
        known = (min(1.0, max(0.0, theta)) * stratum.n + 2) / (stratum.n + 4)
        oracle += stratum.weight**2 * known * (1 - known) / stratum.n
        low, high = wilson(stratum.successes, stratum.n) or (p, p)
        down2 += (stratum.weight * (p - low) / youden) ** 2
        up2 += (stratum.weight * (high - p) / youden) ** 2
        # d theta / d q0 = (1 - theta) / J; d theta / d q1 = -theta / J
        d_q0[stratum.group] = d_q0.get(stratum.group, 0.0) + stratum.weight * (1 - theta) / youden
        d_q1[stratum.group] = d_q1.get(stratum.group, 0.0) - stratum.weight * theta / youden
    for group in groups:
        accuracy = accuracies[group]
        variance += d_q0[group] ** 2 * _binomial_variance(accuracy.failed_of_failed, accuracy.m0)
        variance += d_q1[group] ** 2 * _binomial_variance(accuracy.passed_of_passed, accuracy.m1)
    # Labelled sessions inside a stratum: Cov(p_s, q1) = k1 q1(1-q1) / (n_s m1) and
    # Cov(p_s, q0) = -k0 q0(1-q0) / (n_s m0), each with its two derivatives, twice.
    for stratum in strata:
        if not stratum.n or not (stratum.labelled_passed or stratum.labelled_failed):
            continue
        accuracy = accuracies[stratum.group]
        q1, q0 = accuracy.sensitivity or 0.0, accuracy.specificity or 0.0
        d_p = stratum.weight / (q0 + q1 - 1)
        cov1 = stratum.labelled_passed * q1 * (1 - q1) / (stratum.n * accuracy.m1)
        cov0 = -stratum.labelled_failed * q0 * (1 - q0) / (stratum.n * accuracy.m0)
        variance += 2 * d_p * (d_q1[stratum.group] * cov1 + d_q0[stratum.group] * cov0)
    # The covariances can take away no more than the judge's noise: no estimate from
    # these sessions is surer than knowing every one's truth (Agresti-Coull adjusted).
    floor = Z95**2 * oracle
    lower = value - math.sqrt(max(floor, down2 + Z95**2 * variance))
    upper = value + math.sqrt(max(floor, up2 + Z95**2 * variance))
    return Corrected(
        _clip(value), (_clip(lower), _clip(upper)), method, labels,
        variance=max(0.0, sampling + variance),
    )  # fmt: skip


def ppi_mean(
    labels: Sequence[int], predicted: Sequence[int], unlabelled: Sequence[int]
) -> Corrected:
    """PPI++'s mean of the truth from `labels` beside the judge's verdicts on the same
    sessions (`predicted`) and its verdicts on the sessions nobody labelled."""
    method = "ppi++"
    n, big_n = len(labels), len(unlabelled)
    if n < 2 or big_n < 1:
        return Corrected(None, None, method, n, "fewer than 2 labelled sessions")
    y = np.asarray(labels, dtype=float)
    yhat = np.asarray(predicted, dtype=float)
    unl = np.asarray(unlabelled, dtype=float)
    # lambda from the classical point estimate (lam = 1), as ppi_py computes it.
    first = unl.mean() + (y - yhat).mean()
    grads, grads_hat = y - first, yhat - first
    cov = float(np.mean((grads - grads.mean()) * (grads_hat - grads_hat.mean())))
    var_hat = float(np.var(np.concatenate([yhat, unl]), ddof=1))
    lam = 0.0 if var_hat == 0 else cov / ((1 + n / big_n) * var_hat)
    lam = min(1.0, max(0.0, lam))
    theta = float((lam * unl).mean() + (y - lam * yhat).mean())
    variance = float(np.var(lam * unl) / big_n + np.var(y - lam * yhat) / n)
    half = Z95 * math.sqrt(variance)
    return Corrected(
        _clip(theta), (_clip(theta - half), _clip(theta + half)), method, n, variance=variance
    )


def combine(parts: Sequence[tuple[float, Corrected]], method: str) -> Corrected:
    """A weighted mean of corrected rates (weights summing to 1; strata taken as
    independent): pooled over benchmarks by their sizes, balanced with equal weights."""
    if not parts or any(c.value is None or c.variance is None for _, c in parts):
        reasons = {c.reason for _, c in parts if c.value is None}
        return Corrected(None, None, method, sum(c.n_labels for _, c in parts),
                         "; ".join(sorted(reasons)) or "no corrected stratum")  # fmt: skip
    value = sum(w * (c.value or 0.0) for w, c in parts)
    variance = sum(w * w * (c.variance or 0.0) for w, c in parts)
    half = Z95 * math.sqrt(variance)
    labels = sum(c.n_labels for _, c in parts)
    return Corrected(
        _clip(value), (_clip(value - half), _clip(value + half)), method, labels,
        variance=variance,
    )  # fmt: skip


def label_budget(
    successes: int, n: int, accuracy: Accuracy, target: float = 0.05
) -> dict[str, int] | None:
    """More labels of each class (truly passed, truly failed) that bring the
    Rogan-Gladen interval's half-width under `target`, with the sensitivity and
    specificity `accuracy` measured; None when it cannot be done (the judge's own
    sampling term alone exceeds the target, or no correction is made)."""
    q1, q0 = accuracy.sensitivity, accuracy.specificity
    if n == 0 or q1 is None or q0 is None or q0 + q1 - 1 < MIN_YOUDEN:
        return None
    youden = q0 + q1 - 1
    p = successes / n
    theta = _clip((p + q0 - 1) / youden)
    # A proportion measured at 0 or 1 from few labels is not known to be exact.
    q0s = min(max(q0, 0.5 / (accuracy.m0 + 1)), 1 - 0.5 / (accuracy.m0 + 1))
    q1s = min(max(q1, 0.5 / (accuracy.m1 + 1)), 1 - 0.5 / (accuracy.m1 + 1))
    limit = (target / Z95) ** 2 * youden**2
    sampling = p * (1 - p) / n
    if sampling >= limit:
        return None
    a0 = (1 - theta) ** 2 * q0s * (1 - q0s)
    a1 = theta**2 * q1s * (1 - q1s)
    room = limit - sampling
    # Split the room between the two terms in proportion to the square roots of their
    # numerators (the split that needs the fewest labels in all).
    s0, s1 = math.sqrt(a0), math.sqrt(a1)
    total = s0 + s1 or 1.0
    need0 = math.ceil(a0 / (room * s0 / total)) if a0 > 0 else 0
    need1 = math.ceil(a1 / (room * s1 / total)) if a1 > 0 else 0
    return {
        "truly_passed": max(0, need1 - accuracy.m1),
        "truly_failed": max(0, need0 - accuracy.m0),
    }


__all__ = [
    "MIN_YOUDEN",
    "Accuracy",
    "Corrected",
    "Stratum",
    "combine",
    "label_budget",
    "ppi_mean",
    "rogan_gladen",
    "rogan_gladen_mix",
]
