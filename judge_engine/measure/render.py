"""The measured report as Markdown, for `report`'s text output.

In: the dict `analysis.analyse` returns. Out: Markdown sections: the judges against the
labels, corrected success (per benchmark, configuration, cell and overall) with the
method named, the label budget, which factor explains success, dependability, cost
against quality, how failed runs spend, and the best configuration per benchmark.
Every figure says its n; figures under `--min-n` are marked with a dagger.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

METHOD_WORDS = {
    "rogan-gladen": "Rogan-Gladen: (judge rate + specificity - 1) / (sensitivity + "
    "specificity - 1), the judge's error measured on the labelled sessions; the interval "
    "by the delta method (Wilson's interval of the judge rate mapped through the "
    "correction, the labels' uncertainty added), carrying the uncertainty of the graded "
    "and the labelled sessions",
    "ppi++": "PPI++: the power-tuned prediction-powered mean over the labelled sessions (a "
    "random sample of the graded ones) and the judge's verdicts on the others; its normal "
    "interval carries both samples' uncertainty",
}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _ci(ci: Sequence[float] | None) -> str:
    return "-" if not ci else f"{ci[0]:.0%}–{ci[1]:.0%}"


def _figure(entry: Mapping[str, Any] | None) -> str:
    """ "85.7% (49%–97%)" from a {value, ci} entry."""
    if not entry or entry.get("value") is None:
        return "-"
    return f"{_pct(entry['value'])} ({_ci(entry.get('ci'))})"


def _kappa(entry: Mapping[str, Any] | None) -> str:
    if not entry or entry.get("value") is None:
        return "-"
    ci = entry.get("ci")
    return f"{entry['value']:.2f}" + (f" ({ci[0]:.2f} to {ci[1]:.2f})" if ci else "")


def _dagger(entry: Mapping[str, Any]) -> str:
    return " †" if entry.get("small") else ""


def _corrected(entry: Mapping[str, Any], key: str = "corrected") -> str:
    if entry.get(key):
        return _figure(entry[key])
    return "- ¹" if entry.get(f"{key}_reason") else "-"


def _judges(measured: Mapping[str, Any]) -> list[str]:
    judges = measured.get("judges") or []
    if not judges:
        return []
    lines = [
        "## The judges against the labels",
        "",
        "Sensitivity: the judge passes a session the labels pass; specificity: it fails one "
        "they fail (Wilson 95% intervals; kappa's by bootstrap). Confusion: rows the label, "
        "columns the judge (fail, pass).",
        "",
        "| judge | benchmark | n labelled | sensitivity | specificity | accuracy | kappa "
        "| confusion |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for judge in judges:
        rows = [("all", judge), *judge["by_benchmark"].items()]
        for name, entry in rows:
            (a, b), (c, d) = entry["confusion"]
            lines.append(
                f"| {judge['judge']} | {name} | {entry['n_labelled']} "
                f"| {_figure(entry['sensitivity'])} | {_figure(entry['specificity'])} "
                f"| {_figure(entry['accuracy'])} | {_kappa(entry['kappa'])} "
                f"| {a} {b} / {c} {d} |"
            )
    lines.append("")
    for judge in judges:
        ids = judge["disagree"]
        if ids:
            shown = ", ".join(ids[:20]) + (f" and {len(ids) - 20} more" if len(ids) > 20 else "")
            lines.append(f"{judge['judge']} and the labels disagree on {len(ids)}: {shown}  ")
    return [*lines, ""]


def corrected_by_benchmark(measured: Mapping[str, Any]) -> list[str]:
    """The corrected-success section's head: where the labels came from, the method,
    and per benchmark the judge's rate beside the corrected one (or, without labels,
    how to get some)."""
    labels = measured["labels"]
    if not labels["n"]:
        return [
            "## Corrected success",
            "",
            "No labels: the rates above are the judge's, whose own error is not measured. "
            "Label a random sample (`judge-engine labels sample OUT --n 100 --per benchmark "
            "--to sheet.csv`), fill in its label column, and pass it with --labels to see "
            "the judge's sensitivity and specificity and rates corrected for them.",
            "",
        ]
    method = measured["method"]
    sources = ", then ".join(labels["sources"])
    lines = [
        f"## Corrected success ({method})",
        "",
        f"{labels['n']:,} labels from {sources}; {labels['matched']:,} of them on counted "
        f"sessions." + (f" {labels['conflicts']:,} labels differ between the file and the "
                        "source rows: the file's count." if labels["conflicts"] else ""),
        "",
        f"Method: {METHOD_WORDS.get(method, method)}."
        + (f" {labels['left_empty']:,} drawn sessions were left unlabelled: PPI++ takes them "
           "to be missing at random." if method == "ppi++" and labels.get("left_empty") else ""),
        "",
        "| benchmark | n | judge rate (95% CI) | corrected (95% CI) | judge error from "
        "| labelled passed / failed |",
        "|---|---:|---:|---:|---|---|",
    ]  # fmt: skip
    reasons: dict[str, str] = {}
    for entry in measured["benchmarks"]:
        error = entry["judge_error"]
        lines.append(
            f"| {entry['benchmark']} | {entry['n']:,}{_dagger(entry)} "
            f"| {_figure(entry['judge_rate'])} | {_corrected(entry)} | {error['from']} "
            f"| {error['labelled_passed']} / {error['labelled_failed']} |"
        )
        if entry.get("corrected_reason"):
            reasons[entry["benchmark"]] = entry["corrected_reason"]
    overall = measured["overall"]
    lines.append(
        f"| **all** | {overall['n']:,} | {_figure(overall['judge_rate'])} "
        f"| {_corrected(overall)} | | |"
    )
    lines += ["", *(f"¹ {name}: {why}  " for name, why in reasons.items())]
    if overall.get("corrected_reason") and "all" not in reasons:
        lines.append(f"¹ all: {overall['corrected_reason']}  ")
    return lines


def _correction(measured: Mapping[str, Any]) -> list[str]:
    lines = corrected_by_benchmark(measured)
    if not measured["labels"]["n"]:
        return lines
    lines += [
        "",
        "| harness | agent model | benchmarks | n | pooled | pooled, corrected | balanced "
        "| balanced, corrected |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for entry in measured["configs"]:
        lines.append(
            f"| {entry['harness']} | {entry['agent_model']} | {len(entry['benchmarks'])} "
            f"| {entry['n']:,}{_dagger(entry)} | {_figure(entry['pooled'])} "
            f"| {_corrected(entry)} | {_figure(entry['balanced'])} "
            f"| {_corrected(entry, 'balanced_corrected')} |"
        )
    lines += [
        "",
        "| benchmark | harness | agent model | n | judge rate | corrected |",
        "|---|---|---|---:|---:|---:|",
    ]
    for entry in measured["cells"]:
        lines.append(
            f"| {entry['benchmark']} | {entry['harness']} | {entry['agent_model']} "
            f"| {entry['n']:,}{_dagger(entry)} | {_figure(entry['judge_rate'])} "
            f"| {_corrected(entry)} |"
        )
    budget = measured.get("budget") or []
    if budget:
        lines += [
            "",
            "### Label budget",
            "",
            "More labelled sessions of each class that bring a benchmark's corrected "
            "interval under ±5 points, from the judge's measured sensitivity and "
            "specificity:",
            "",
            "| benchmark | truly passed | truly failed | |",
            "|---|---:|---:|---|",
        ]
        for entry in budget:
            lines.append(
                f"| {entry['benchmark']} | {_count(entry['truly_passed'])} "
                f"| {_count(entry['truly_failed'])} | {entry['note']} |"
            )
    return [*lines, ""]


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _regression(measured: Mapping[str, Any]) -> list[str]:
    fit = measured.get("regression")
    if not fit:
        return []
    reference = ", ".join(f"{k} {v}" for k, v in fit["reference"].items())
    lines = [
        "## Which factor explains success",
        "",
        f"Linear probability model success ~ C(benchmark) + C(agent_model) + C(harness), "
        f"n = {fit['n']:,}, R² = {fit['r2']:.3f}, HC1 standard errors. Reference levels "
        f"(the most common of each): {reference}.",
        "",
        "| factor | levels | drop-one ΔR² | Shapley share of R² | robust Wald p |",
        "|---|---:|---:|---:|---:|",
    ]
    for entry in fit["factors"]:
        lines.append(
            f"| {entry['factor']} | {entry['levels']} | {_num(entry['delta_r2'])} "
            f"| {_num(entry['shapley_r2'])} | {_num(entry['wald_p'], 4)} |"
        )
    lines += [
        "",
        "| factor | level | estimate | SE (HC1) | 95% CI |",
        "|---|---|---:|---:|---|",
    ]
    for entry in fit["coefficients"]:
        lo, hi = entry["ci"]
        lines.append(
            f"| {entry['factor']} | {entry['level']} | {entry['estimate']:+.3f} "
            f"| {entry['se_hc1']:.3f} | {lo:+.3f} to {hi:+.3f} |"
        )
    lines += ["", *(f"⚠ {warning}  " for warning in fit["warnings"])]
    return [*lines, ""]


def _findings(measured: Mapping[str, Any]) -> list[str]:
    lines = [
        "## Dependability and cost against quality",
        "",
        "Per configuration: its benchmark-balanced rate, the standard deviation of its "
        "per-benchmark rates, and its mean cost per task; ★ marks the cost-quality "
        "frontier (no other configuration is as good for less); ◇ marks a configuration "
        "that ran another set of benchmarks than the most common one (not comparable "
        "as is).",
        "",
        "| configuration | benchmarks | n | balanced | SD across benchmarks | cost / task "
        "| frontier |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for entry in measured["configs"]:
        mark = " ◇" if entry["other_benchmarks"] else ""
        cost = entry["cost_per_task"]
        lines.append(
            f"| {entry['config']}{mark} | {', '.join(entry['benchmarks'])} "
            f"| {entry['n']:,}{_dagger(entry)} | {_figure(entry['balanced'])} "
            f"| {_pct(entry['cross_benchmark_sd'])} "
            f"| {'-' if cost is None else f'${cost:,.4f}'} "
            f"| {'★' if entry['on_frontier'] else ''} |"
        )
    lines += [
        "",
        "## How failed runs spend",
        "",
        "Median tokens (and LLM calls) of failed against successful runs per benchmark; "
        "the ratio's 95% interval by bootstrap (none under 5 runs a side).",
        "",
        "| benchmark | failed: tokens (n) | succeeded: tokens (n) | ratio (95% CI) "
        "| calls failed / succeeded | pattern |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for entry in measured["spending"]:
        ratio = "-" if entry["ratio"] is None else f"{entry['ratio']:.2f}"
        ci = entry["ci"]
        ratio += f" ({ci[0]:.2f}–{ci[1]:.2f})" if ci else ""
        lines.append(
            f"| {entry['benchmark']}{_dagger(entry)} "
            f"| {_count_f(entry['median_tokens_failed'])} ({entry['n_failed_tokens']}) "
            f"| {_count_f(entry['median_tokens_succeeded'])} ({entry['n_succeeded_tokens']}) "
            f"| {ratio} | {_count_f(entry['median_calls_failed'])} / "
            f"{_count_f(entry['median_calls_succeeded'])} | {entry['pattern'] or ''} |"
        )
    lines += [
        "",
        "## Best per benchmark",
        "",
        "| benchmark | best configuration | rate (95% CI) | n | runner-up | separated |",
        "|---|---|---:|---:|---|---|",
    ]
    for entry in measured["best"]:
        separated = {True: "yes", False: "no: intervals overlap", None: "-"}[entry["separated"]]
        lines.append(
            f"| {entry['benchmark']} | {entry['config']} "
            f"| {_pct(entry['rate'])} ({_ci(entry['ci'])}) | {entry['n']}{_dagger(entry)} "
            f"| {entry['runner_up'] or '-'} | {separated} |"
        )
    return [*lines, ""]


def _count_f(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _share(entry: Mapping[str, Any]) -> str:
    ci = entry.get("ci")
    return f"{entry['share']:.0%}" + (f" ({ci[0]:.0%}–{ci[1]:.0%})" if ci else "")


def modes_markdown(measured: Mapping[str, Any]) -> list[str]:
    """The failure modes' section: overall, per factor, per configuration, spend."""
    modes = measured.get("failure_modes")
    if not modes or not modes["n_failed"]:
        return []
    lines = [
        f"## Why sessions failed ({modes['n_failed']:,} failed sessions)",
        "",
        "The failure mode each counted verdict named; shares of the failed sessions with "
        "Wilson 95% intervals (not_given: the judge named none).",
        "",
        "| mode | count | share (95% CI) |",
        "|---|---:|---:|",
        *(f"| {code} | {e['count']:,} | {_share(e)} |" for code, e in modes["overall"].items()),
        "",
        "| factor | level | failed | top modes |",
        "|---|---|---:|---|",
    ]
    for entry in modes["by"]:
        top = ", ".join(f"{code} {_share(e)}" for code, e in list(entry["modes"].items())[:3])
        lines.append(
            f"| {entry['factor']} | {entry['level']} | {entry['n_failed']:,}{_dagger(entry)} "
            f"| {top} |"
        )
    lines += ["", "| configuration | failed | top modes |", "|---|---:|---|"]
    for entry in modes["configs"]:
        top = ", ".join(f"{t['mode']} {_share(t)}" for t in entry["top"])
        lines.append(f"| {entry['config']} | {entry['n_failed']:,}{_dagger(entry)} | {top} |")
    if modes["spend"]:
        lines += [
            "",
            "| mode | sessions with tokens | median tokens | against every failed session |",
            "|---|---:|---:|---:|",
        ]
        for entry in modes["spend"]:
            ratio = "-" if entry["ratio"] is None else f"{entry['ratio']:.2f}×"
            lines.append(
                f"| {entry['mode']} | {entry['n']:,} | {entry['median_tokens']:,.0f} | {ratio} |"
            )
    return [*lines, ""]


def to_markdown(measured: Mapping[str, Any]) -> str:
    """The sections (module docstring), dagger: fewer than `min_n` sessions."""
    lines = [
        *_judges(measured),
        *_correction(measured),
        *modes_markdown(measured),
        *_regression(measured),
        *_findings(measured),
        f"† fewer than {measured['min_n']} sessions",
    ]
    return "\n".join(lines)


__all__ = ["METHOD_WORDS", "corrected_by_benchmark", "modes_markdown", "to_markdown"]
