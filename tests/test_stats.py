"""Statistics against published worked examples and values worked by hand."""

from __future__ import annotations

from collections import Counter

import pytest

from judge_engine.stats import (
    balanced_rate,
    bootstrap_ci,
    classification,
    cohen_kappa,
    confusion,
    fleiss_kappa,
    kappa_counts,
    krippendorff_alpha,
    wilson,
)

# Cohen (Wikipedia's worked example): 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no.
COHEN = [(1, 1)] * 20 + [(1, 0)] * 5 + [(0, 1)] * 10 + [(0, 0)] * 15


def test_cohen_kappa_worked_example() -> None:
    # p_o = 35/50 = 0.7; p_e = 0.5*0.6 + 0.5*0.4 = 0.5; kappa = 0.2/0.5
    assert cohen_kappa(COHEN) == pytest.approx(0.4)
    assert confusion(COHEN) == [[15, 10], [5, 20]]


def test_cohen_kappa_degenerate_cases() -> None:
    assert cohen_kappa([]) is None
    assert cohen_kappa([(1, 1)] * 10) is None  # both always 1: chance agreement is 1
    # One judge always says 1: whatever the other does, agreement is what chance gives.
    assert cohen_kappa([(1, 1)] * 6 + [(1, 0)] * 4) == pytest.approx(0.0)
    assert cohen_kappa([(1, 0)] * 5 + [(0, 1)] * 5) == pytest.approx(-1.0)


def test_fleiss_kappa_worked_example() -> None:
    # Fleiss (1971) as in Wikipedia: 10 subjects, 14 raters, 5 categories: 0.210.
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0],
             [2, 2, 8, 1, 1], [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2],
             [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]  # fmt: skip
    items = [{c: n for c, n in enumerate(row) if n} for row in table]
    assert fleiss_kappa(items) == pytest.approx(0.20993, abs=1e-5)


def test_fleiss_kappa_by_hand_and_degenerate() -> None:
    # 3 raters, 4 items: [3 yes], [2 yes 1 no], [1 yes 2 no], [3 no]
    # P_i = 1, 1/3, 1/3, 1 -> P = 2/3; p_yes = 6/12 -> Pe = 0.5; kappa = (2/3-1/2)/(1/2) = 1/3
    items = [Counter({1: 3}), Counter({1: 2, 0: 1}), Counter({1: 1, 0: 2}), Counter({0: 3})]
    assert fleiss_kappa(items) == pytest.approx(1 / 3)
    assert fleiss_kappa([Counter({1: 3})] * 5) is None  # one category only
    assert fleiss_kappa([]) is None
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa([Counter({1: 3}), Counter({1: 2})])


def test_krippendorff_alpha_worked_example() -> None:
    # Krippendorff (2011), four observers, twelve units, missing values, nominal: 0.743.
    rows = ["1 2 3 3 2 1 4 1 2 . . .", "1 2 3 3 2 2 4 1 2 5 . 3",
            ". 3 3 3 2 3 4 2 2 5 1 .", "1 2 3 3 2 4 4 1 2 5 1 ."]  # fmt: skip
    columns = zip(*(r.split() for r in rows), strict=True)
    units = [[v for v in column if v != "."] for column in columns]
    assert krippendorff_alpha(units) == pytest.approx(0.7434, abs=1e-4)


def test_krippendorff_alpha_degenerate() -> None:
    assert krippendorff_alpha([[1], [0]]) is None  # no unit has two values
    assert krippendorff_alpha([[1, 1], [1, 1, 1]]) is None  # no variation at all
    # Two raters, perfect agreement with variation: alpha is 1.
    assert krippendorff_alpha([[1, 1], [0, 0], [1, 1]]) == pytest.approx(1.0)


def test_wilson_interval() -> None:
    low, high = wilson(8, 10)  # type: ignore[misc]
    assert (low, high) == (pytest.approx(0.4902, abs=1e-4), pytest.approx(0.9433, abs=1e-4))
    low, high = wilson(0, 10)  # type: ignore[misc]
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    assert wilson(0, 0) is None


def test_classification_by_hand() -> None:
    # (prediction, label): tp=2, fp=1, fn=1, tn=1
    metrics = classification([(1, 1), (1, 0), (0, 1), (1, 1), (0, 0)])
    assert metrics["accuracy"] == pytest.approx(0.6)
    assert metrics["precision"] == pytest.approx(2 / 3)
    assert metrics["recall"] == pytest.approx(2 / 3)
    assert metrics["f1"] == pytest.approx(2 / 3)
    # kappa: p_o = 0.6, p_e = 0.6*0.6 + 0.4*0.4 = 0.52 -> 0.08/0.48
    assert metrics["kappa"] == pytest.approx(1 / 6)
    always_no = classification([(0, 1), (0, 0)])
    assert always_no["precision"] is None and always_no["recall"] == 0.0


def test_bootstrap_is_seeded_and_covers_the_estimate() -> None:
    first = bootstrap_ci(COHEN, kappa_counts)
    assert first == bootstrap_ci(COHEN, kappa_counts)
    assert first is not None and first[0] < 0.4 < first[1]
    assert bootstrap_ci([(1, 1)] * 30, kappa_counts) is None  # undefined in every resample
    assert bootstrap_ci([], kappa_counts) is None


def test_balanced_rate_by_hand() -> None:
    # rates 1/2 and 3/4 -> 0.625; Agresti-Coull variances (3/6)(3/6)/6 and (5/8)(3/8)/8
    mean, (low, high) = balanced_rate([(1, 2), (3, 4)])  # type: ignore[misc]
    half = 1.959963984540054 * ((0.25 / 6 + (15 / 64) / 8) / 4) ** 0.5
    assert mean == pytest.approx(0.625)
    assert (low, high) == (pytest.approx(0.625 - half), pytest.approx(0.625 + half))
    mean, (low, high) = balanced_rate([(0, 1), (1, 1)])  # type: ignore[misc]
    assert mean == 0.5 and low < 0.5 < high  # extreme groups still carry uncertainty
    assert balanced_rate([]) is None
