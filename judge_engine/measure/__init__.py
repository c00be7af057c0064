"""Measurement: how far the judges are right, and what the verdicts say once corrected.

In: the counted verdicts of a run (from `report`) and people's labels. Out: the
judges' sensitivity, specificity, accuracy and kappa against the labels; success rates
corrected for the judge's error (Rogan-Gladen or PPI++); the analysis users run after
grading (a regression of success on benchmark, agent model and harness; dependability;
the cost-quality frontier; how failed runs spend; the best configuration per
benchmark). One module per job:

- `labels`: labels read, merged and sampled for labelling;
- `correct`: the estimators;
- `quality`: a judge's error rates against labels;
- `regress`: the linear-probability regression with HC1 errors;
- `findings`: dependability, frontier, spending, best;
- `analysis`: all of it over a run's counted sessions, as `report --json` writes it.

The package's front imports only `labels` (no numpy), so that a command that merely
names a method or reads labels starts fast; the statistics load with `analysis`.
"""

from .labels import Labels, LabelsError, merge, read_labels

#: The correction methods `report --method` takes (`analysis.choose_method`).
METHODS = ("auto", "rogan-gladen", "ppi++")

__all__ = ["METHODS", "Labels", "LabelsError", "merge", "read_labels"]
