"""The HTML report's "Measured" tab: the judges against labels, corrected success, and
the analysis after grading, each with a chart.

In: the dict `measure.analysis.analyse` returns (under "measured" in `report.build`).
Out: one `<section>` of escaped HTML with inline SVG charts: the judges' sensitivity
and specificity, judge rate against corrected rate per benchmark, each factor's share
of R², dependability (balanced rate against its spread across benchmarks), cost against
quality with the frontier, how failed runs spend, and the best configuration per
benchmark. Every text from a trace reaches the page escaped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from .html_parts import escape, table
from .measure.render import METHOD_WORDS

_e = escape


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _figure(entry: Mapping[str, Any] | None) -> str:
    if not entry or entry.get("value") is None:
        return "-"
    ci = entry.get("ci")
    return _pct(entry["value"]) + (f" <small>({ci[0]:.0%}–{ci[1]:.0%})</small>" if ci else "")


def _kappa(entry: Mapping[str, Any] | None) -> str:
    if not entry or entry.get("value") is None:
        return "-"
    ci = entry.get("ci")
    return f"{entry['value']:.2f}" + (f" <small>({ci[0]:.2f} to {ci[1]:.2f})</small>" if ci else "")


_table = table


def _small(entry: Mapping[str, Any]) -> str:
    return ' <span class="small" title="few sessions">small n</span>' if entry.get("small") else ""


def _corrected(entry: Mapping[str, Any], key: str = "corrected") -> str:
    if entry.get(key):
        return _figure(entry[key])
    reason = entry.get(f"{key}_reason")
    return (
        f'<span class="missing" title="{_e(reason)}">none: {_e(reason)}</span>' if reason else "-"
    )


def _intervals_svg(
    rows: Sequence[tuple[str, Sequence[tuple[float | None, Sequence[float] | None, str]]]],
    *,
    label: str,
    lo: float = 0.0,
    hi: float = 1.0,
    ticks: Sequence[float] = (0, 0.25, 0.5, 0.75, 1.0),
    fmt: str = "{:.0%}",
    reference: float | None = None,
) -> str:
    """Points with their intervals, one row per name and one mark per series (class
    s0, s1, ...): judge against corrected rate, a ratio against 1."""
    if not rows:
        return ""
    label_w, plot_w, row_h = 300, 440, 24
    height = row_h * len(rows) + 40
    span = hi - lo if hi > lo else 1.0

    def scale(v: float) -> float:
        return label_w + (min(hi, max(lo, v)) - lo) / span * plot_w

    parts = [
        f'<svg class="chart" role="img" aria-label="{_e(label)}" viewBox="0 0 '
        f'{label_w + plot_w + 40} {height}" width="{label_w + plot_w + 40}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg">'
    ]
    for tick in ticks:
        x = scale(tick)
        parts.append(
            f'<line x1="{x:.1f}" y1="8" x2="{x:.1f}" y2="{height - 24}" class="grid"/>'
            f'<text x="{x:.1f}" y="{height - 8}" text-anchor="middle" class="axis">'
            f"{fmt.format(tick)}</text>"
        )
    if reference is not None:
        x = scale(reference)
        parts.append(f'<line x1="{x:.1f}" y1="8" x2="{x:.1f}" y2="{height - 24}" class="ref"/>')
    for index, (name, series) in enumerate(rows):
        y = 12 + index * row_h
        short = name if len(name) <= 40 else name[:39] + "…"
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 12}" text-anchor="end" class="label">'
            f"<title>{_e(name)}</title>{_e(short)}</text>"
        )
        for number, (value, ci, title) in enumerate(series):
            if value is None:
                continue
            dy = y + 5 + number * 7
            if ci:
                parts.append(
                    f'<line x1="{scale(ci[0]):.1f}" y1="{dy}" '
                    f'x2="{scale(ci[1]):.1f}" y2="{dy}" class="ci s{number}"/>'
                )
            parts.append(
                f'<circle cx="{scale(value):.1f}" cy="{dy}" r="4" class="s{number}">'
                f"<title>{_e(title)}</title></circle>"
            )
    parts.append("</svg>")
    return "".join(parts)


def _scatter_svg(
    points: Sequence[tuple[str, float, float, bool]],
    *,
    label: str,
    x_title: str,
    y_title: str,
    x_fmt: str,
    y_fmt: str,
    connect: bool = False,
    quadrants: tuple[float, float] | None = None,
) -> str:
    """Named points (name, x, y, marked): marked points are drawn larger and, with
    `connect`, joined in x order (the frontier); `quadrants` draws the medians."""
    if not points:
        return ""
    width, height, pad = 720, 360, 60
    xs = [p[1] for p in points]
    ys = [p[2] for p in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(0.0, min(ys)), max(ys)
    x1 = x1 if x1 > x0 else x0 + 1
    y1 = y1 if y1 > y0 else y0 + 1

    def sx(v: float) -> float:
        return pad + (v - x0) / (x1 - x0) * (width - 2 * pad)

    def sy(v: float) -> float:
        return height - pad + 10 - (v - y0) / (y1 - y0) * (height - 2 * pad)

    parts = [
        f'<svg class="chart" role="img" aria-label="{_e(label)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="{pad}" y1="{sy(y0):.1f}" x2="{width - pad}" y2="{sy(y0):.1f}" class="grid"/>',
        f'<line x1="{pad}" y1="20" x2="{pad}" y2="{sy(y0):.1f}" class="grid"/>',
        f'<text x="{width / 2}" y="{height - 12}" text-anchor="middle" class="axis">'
        f"{_e(x_title)}</text>",
        f'<text x="14" y="{height / 2}" class="axis" transform="rotate(-90 14 {height / 2})" '
        f'text-anchor="middle">{_e(y_title)}</text>',
    ]
    for value in (x0, (x0 + x1) / 2, x1):
        parts.append(
            f'<text x="{sx(value):.1f}" y="{height - pad + 26}" text-anchor="middle" '
            f'class="axis">{_e(x_fmt.format(value))}</text>'
        )
    for value in (y0, (y0 + y1) / 2, y1):
        parts.append(
            f'<text x="{pad - 6}" y="{sy(value) + 4:.1f}" text-anchor="end" class="axis">'
            f"{_e(y_fmt.format(value))}</text>"
        )
    if quadrants is not None:
        qx, qy = quadrants
        parts.append(
            f'<line x1="{sx(qx):.1f}" y1="20" x2="{sx(qx):.1f}" y2="{height - pad + 10}" '
            f'class="ref"/><line x1="{pad}" y1="{sy(qy):.1f}" x2="{width - pad}" '
            f'y2="{sy(qy):.1f}" class="ref"/>'
        )
    if connect:
        front = sorted((p for p in points if p[3]), key=lambda p: p[1])
        if len(front) > 1:
            path = " ".join(f"{sx(p[1]):.1f},{sy(p[2]):.1f}" for p in front)
            parts.append(f'<polyline points="{path}" class="frontier"/>')
    for name, x, y, marked in points:
        parts.append(
            f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="{6 if marked else 4}" '
            f'class="{"s0 marked" if marked else "s1"}"><title>{_e(name)}: '
            f"{_e(x_fmt.format(x))}, {_e(y_fmt.format(y))}</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _judges(measured: Mapping[str, Any]) -> str:
    judges = measured.get("judges") or []
    if not judges:
        return ""
    rows = []
    chart_rows = []
    for judge in judges:
        for name, entry in [("all", judge), *judge["by_benchmark"].items()]:
            (a, b), (c, d) = entry["confusion"]
            rows.append(
                [
                    _e(judge["judge"]),
                    _e(name),
                    f"{entry['n_labelled']:,}",
                    _figure(entry["sensitivity"]),
                    _figure(entry["specificity"]),
                    _figure(entry["accuracy"]),
                    _kappa(entry["kappa"]),
                    f"{a} {b} / {c} {d}",
                ]
            )
            series = []
            for key in ("sensitivity", "specificity"):
                figure = entry[key]
                series.append(
                    (figure["value"], figure["ci"], f"{key} {figure['value']:.1%}")
                    if figure
                    else (None, None, "")
                )
            chart_rows.append((f"{judge['judge']} / {name}", series))
    disagree = "".join(
        f"<p>{_e(j['judge'])} and the labels disagree on {len(j['disagree']):,} sessions "
        f"(the Sessions tab's filter “judge vs label disagree” lists them).</p>"
        for j in judges
        if j["disagree"]
    )
    return (
        "<h3>The judges against the labels</h3><p>Sensitivity (blue): the judge passes what "
        "the labels pass; specificity (orange): it fails what they fail; Wilson 95% "
        "intervals, kappa's by bootstrap. Confusion: rows the label, columns the judge "
        "(fail, pass).</p>"
        + _intervals_svg(chart_rows, label="sensitivity and specificity per judge")
        + _table(
            [
                "judge",
                "benchmark",
                "n labelled",
                "sensitivity",
                "specificity",
                "accuracy",
                "kappa",
                "confusion",
            ],
            rows,
        )
        + disagree
    )


def _correction(measured: Mapping[str, Any]) -> str:
    labels = measured["labels"]
    if not labels["n"]:
        return (
            "<h3>Corrected success</h3><p>No labels: the rates are the judge's, whose own "
            "error is not measured. Label a random sample (<code>judge-engine labels sample "
            "OUT --n 100 --per benchmark --to sheet.csv</code>) and pass it with "
            "<code>--labels</code>.</p>"
        )
    method = measured["method"]
    chart = _intervals_svg(
        [
            (
                entry["benchmark"],
                [
                    (entry["judge_rate"]["value"], entry["judge_rate"]["ci"], "judge rate"),
                    (
                        (entry["corrected"] or {}).get("value"),
                        (entry["corrected"] or {}).get("ci"),
                        "corrected",
                    ),
                ],
            )
            for entry in [*measured["benchmarks"], {**measured["overall"], "benchmark": "all"}]
        ],
        label="judge rate and corrected rate per benchmark",
    )
    rows = [
        [
            _e(entry["benchmark"]),
            f"{entry['n']:,}{_small(entry)}",
            _figure(entry["judge_rate"]),
            _corrected(entry),
            _e(entry["judge_error"]["from"]),
            "{labelled_passed} / {labelled_failed}".format(**entry["judge_error"]),
        ]
        for entry in measured["benchmarks"]
    ]
    overall = measured["overall"]
    rows.append(
        [
            "<b>all</b>",
            f"{overall['n']:,}",
            _figure(overall["judge_rate"]),
            _corrected(overall),
            "",
            "",
        ]
    )
    configs = [
        [
            _e(c["config"]),
            f"{c['n']:,}{_small(c)}",
            _figure(c["pooled"]),
            _corrected(c),
            _figure(c["balanced"]),
            _corrected(c, "balanced_corrected"),
        ]
        for c in measured["configs"]
    ]
    budget = [
        [
            _e(b["benchmark"]),
            _e("-" if b["truly_passed"] is None else b["truly_passed"]),
            _e("-" if b["truly_failed"] is None else b["truly_failed"]),
            _e(b["note"]),
        ]
        for b in measured.get("budget") or []
    ]
    return (
        f"<h3>Corrected success ({_e(method)})</h3><p>{labels['n']:,} labels from "
        f"{_e(', then '.join(labels['sources']))}; {labels['matched']:,} on counted sessions"
        + (
            f"; {labels['conflicts']:,} differ from the source rows' (the file's count)"
            if labels["conflicts"]
            else ""
        )
        + f". {_e(METHOD_WORDS.get(method, method))}. Blue: the judge's rate; orange: "
        "corrected.</p>"
        + chart
        + _table(
            [
                "benchmark",
                "n",
                "judge rate",
                "corrected",
                "judge error from",
                "labelled passed / failed",
            ],
            rows,
        )
        + _table(
            [
                "configuration",
                "n",
                "pooled",
                "pooled, corrected",
                "balanced",
                "balanced, corrected",
            ],
            configs,
        )
        + (
            "<h4>Label budget</h4><p>More labels of each class to bring a benchmark's "
            "corrected interval under ±5 points.</p>"
            + _table(["benchmark", "truly passed", "truly failed", ""], budget)
            if budget
            else ""
        )
    )


def _regression(measured: Mapping[str, Any]) -> str:
    fit = measured.get("regression")
    if not fit:
        return ""
    chart = _intervals_svg(
        [
            (
                f["factor"],
                [
                    (f["shapley_r2"], None, f"Shapley share {f['shapley_r2']:.3f}"),
                    (f["delta_r2"], None, f"drop-one ΔR² {f['delta_r2']:.3f}"),
                ],
            )
            for f in fit["factors"]
        ],
        label="each factor's share of R squared",
        hi=max(0.05, fit["r2"]),
        ticks=[round(fit["r2"] * t, 3) for t in (0, 0.5, 1.0)] if fit["r2"] > 0 else (0,),
        fmt="{:.3f}",
    )
    factors = [
        [
            _e(f["factor"]),
            f"{f['levels']}",
            f"{f['delta_r2']:.3f}",
            f"{f['shapley_r2']:.3f}",
            "-" if f["wald_p"] is None else f"{f['wald_p']:.4f}",
        ]
        for f in fit["factors"]
    ]
    coefficients = [
        [
            _e(c["factor"]),
            _e(c["level"]),
            f"{c['estimate']:+.3f}",
            f"{c['se_hc1']:.3f}",
            f"{c['ci'][0]:+.3f} to {c['ci'][1]:+.3f}",
        ]
        for c in fit["coefficients"]
    ]
    reference = ", ".join(f"{k} {v}" for k, v in fit["reference"].items())
    warnings = "".join(f'<p class="warn">⚠ {_e(w)}</p>' for w in fit["warnings"])
    return (
        "<h3>Which factor explains success</h3><p>success ~ C(benchmark) + C(agent_model) + "
        f"C(harness), a linear probability model, n = {fit['n']:,}, R² = {fit['r2']:.3f}, "
        f"HC1 standard errors; reference levels: {_e(reference)}. Blue: the factor's "
        "Shapley share of R²; orange: the R² lost when it is dropped.</p>"
        + chart
        + warnings
        + _table(["factor", "levels", "drop-one ΔR²", "Shapley share", "robust Wald p"], factors)
        + _table(["factor", "level", "estimate", "SE (HC1)", "95% CI"], coefficients)
    )


def _findings(measured: Mapping[str, Any]) -> str:
    configs = measured["configs"]
    spread = [c for c in configs if c["cross_benchmark_sd"] is not None]
    quadrant = ""
    if spread:
        xs = sorted(c["balanced"]["value"] for c in spread)
        ys = sorted(c["cross_benchmark_sd"] for c in spread)
        quadrant = _scatter_svg(
            [
                (
                    c["config"],
                    c["balanced"]["value"],
                    c["cross_benchmark_sd"],
                    not c["other_benchmarks"],
                )
                for c in spread
            ],
            label="dependability: balanced success against its spread across benchmarks",
            x_title="benchmark-balanced success",
            y_title="SD across benchmarks",
            x_fmt="{:.0%}",
            y_fmt="{:.0%}",
            quadrants=(xs[len(xs) // 2], ys[len(ys) // 2]),
        )
    priced = [c for c in configs if c["cost_per_task"] is not None]
    cost_chart = _scatter_svg(
        [
            (c["config"], c["cost_per_task"], c["balanced"]["value"], c["on_frontier"])
            for c in priced
        ],
        label="cost per task against balanced success, the frontier joined",
        x_title="mean cost per task (USD)",
        y_title="benchmark-balanced success",
        x_fmt="${:,.4f}",
        y_fmt="{:.0%}",
        connect=True,
    )
    steady = [
        [
            _e(c["config"]) + (" ◇" if c["other_benchmarks"] else ""),
            _e(", ".join(c["benchmarks"])),
            f"{c['n']:,}{_small(c)}",
            _figure(c["balanced"]),
            _pct(c["cross_benchmark_sd"]),
            "-" if c["cost_per_task"] is None else f"${c['cost_per_task']:,.4f}",
            "★" if c["on_frontier"] else "",
        ]
        for c in configs
    ]
    spending = measured["spending"]
    ratios = [s for s in spending if s["ratio"] is not None]
    top = max([2.0, *(s["ci"][1] for s in ratios if s["ci"]), *(s["ratio"] for s in ratios)])
    top = math.ceil(top)
    spend_chart = _intervals_svg(
        [(s["benchmark"], [(s["ratio"], s["ci"], f"ratio {s['ratio']:.2f}")]) for s in ratios],
        label="median tokens of failed runs over successful runs, per benchmark",
        hi=float(top),
        ticks=[0, 1, *([top] if top > 1 else [])],
        fmt="{:.0f}×",
        reference=1.0,
    )
    spend_rows = [
        [
            _e(s["benchmark"]) + _small(s),
            f"{_num(s['median_tokens_failed'])} ({s['n_failed_tokens']})",
            f"{_num(s['median_tokens_succeeded'])} ({s['n_succeeded_tokens']})",
            "-"
            if s["ratio"] is None
            else f"{s['ratio']:.2f}" + (f" ({s['ci'][0]:.2f}–{s['ci'][1]:.2f})" if s["ci"] else ""),
            f"{_num(s['median_calls_failed'])} / {_num(s['median_calls_succeeded'])}",
            _e(s["pattern"] or ""),
        ]
        for s in spending
    ]
    best_rows = [
        [
            _e(b["benchmark"]),
            _e(b["config"]),
            f"{_pct(b['rate'])} <small>({b['ci'][0]:.0%}–{b['ci'][1]:.0%})</small>"
            if b["ci"]
            else _pct(b["rate"]),
            f"{b['n']:,}{_small(b)}",
            _e(b["runner_up"] or "-"),
            {True: "yes", False: "no: intervals overlap", None: "-"}[b["separated"]],
        ]
        for b in measured["best"]
    ]
    best_chart = _intervals_svg(
        [
            (f"{b['benchmark']}: {b['config']}", [(b["rate"], b["ci"], f"{b['rate']:.1%}")])
            for b in measured["best"]
        ],
        label="the best configuration per benchmark with its interval",
    )
    return (
        "<h3>Dependability</h3><p>Per configuration: its benchmark-balanced success against "
        "the standard deviation of its per-benchmark rates (lower right: good and steady; "
        "lines: the medians). Hollow: ran another set of benchmarks than the most common "
        "one (◇ in the table), not comparable as is.</p>"
        + quadrant
        + "<h3>Cost against quality</h3><p>Mean cost per task (from the traces) against "
        "balanced success; ★ and the line: the frontier (no other is as good for less).</p>"
        + (cost_chart or "<p>No configuration's cost is known.</p>")
        + _table(
            [
                "configuration",
                "benchmarks",
                "n",
                "balanced",
                "SD across benchmarks",
                "cost / task",
                "frontier",
            ],
            steady,
        )
        + "<h3>How failed runs spend</h3><p>Median tokens of failed over successful runs "
        "per benchmark, with its bootstrap interval (none under 5 runs a side); above 1, "
        "failed runs thrash; below, they give up early.</p>"
        + spend_chart
        + _table(
            [
                "benchmark",
                "failed: median tokens (n)",
                "succeeded: median tokens (n)",
                "ratio (95% CI)",
                "calls failed / succeeded",
                "pattern",
            ],
            spend_rows,
        )
        + "<h3>Best per benchmark</h3>"
        + best_chart
        + _table(
            ["benchmark", "best configuration", "rate", "n", "runner-up", "separated from it"],
            best_rows,
        )
    )


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _modes(measured: Mapping[str, Any]) -> str:
    modes = measured.get("failure_modes")
    if not modes or not modes["n_failed"]:
        return ""
    chart = _intervals_svg(
        [
            (code, [(e["share"], e["ci"], f"{code}: {e['count']} of {modes['n_failed']}")])
            for code, e in modes["overall"].items()
        ],
        label="the failure modes' shares of the failed sessions",
    )
    rows = [
        [_e(code), f"{e['count']:,}", _figure({"value": e["share"], "ci": e["ci"]})]
        for code, e in modes["overall"].items()
    ]
    by = [
        [
            _e(entry["factor"]), _e(entry["level"]), f"{entry['n_failed']:,}{_small(entry)}",
            _e(", ".join(f"{code} {e['share']:.0%}" for code, e in
                         list(entry["modes"].items())[:3])),
        ]
        for entry in modes["by"]
    ]  # fmt: skip
    spend = [
        [_e(e["mode"]), f"{e['n']:,}", f"{e['median_tokens']:,.0f}",
         "-" if e["ratio"] is None else f"{e['ratio']:.2f}×"]
        for e in modes["spend"]
    ]  # fmt: skip
    return (
        f"<h3>Why sessions failed</h3><p>{modes['n_failed']:,} failed sessions; the mode "
        "each counted verdict named, with Wilson 95% intervals (the Sessions tab filters "
        "by mode).</p>"
        + chart
        + _table(["mode", "count", "share"], rows)
        + _table(["factor", "level", "failed", "top modes"], by)
        + (_table(["mode", "sessions", "median tokens", "against every failed"], spend)
           if spend else "")
    )  # fmt: skip


def _canaries(report: Mapping[str, Any] | None) -> str:
    if not report:
        return ""
    last = report["runs"][-1]
    rows = [
        [
            _e(slot),
            "-"
            if not j["sensitivity"]
            else f"{j['sensitivity']['value']:.0%} (n={j['sensitivity']['n']})",
            "-"
            if not j["specificity"]
            else f"{j['specificity']['value']:.0%} (n={j['specificity']['n']})",
            _e(", ".join(j["served"]) or "-"),
        ]
        for slot, j in sorted(last["judges"].items())
    ]
    warnings = "".join(f'<p class="warn">⚠ {_e(w)}</p>' for w in report["warnings"])
    return (
        f"<h3>Canaries ({len(report['runs'])} runs; the last: {_e(last['run'])})</h3>"
        + warnings
        + _table(["judge slot", "sensitivity", "specificity", "answered as"], rows)
    )


def _topics(topics: Mapping[str, Any] | None) -> str:
    if not topics or not topics.get("topics"):
        return ""
    rows = [
        [_e(t["id"]), _e(t["name"]), f"{t['size']:,}", f"{t['share']:.0%}", _e(t["description"]),
         _e(", ".join(t["sessions"][:3]))]
        for t in topics["topics"]
    ]  # fmt: skip
    return (
        f"<h3>Topics (mode {_e(topics.get('mode'))})</h3><p>The failed sessions grouped by "
        f"what their judges wrote and named by the judge; "
        f"{len(topics.get('unassigned', [])):,} unassigned.</p>"
        + _table(["topic", "name", "sessions", "share", "description", "e.g."], rows)
    )


def section(
    measured: Mapping[str, Any] | None,
    canaries: Mapping[str, Any] | None = None,
    topics: Mapping[str, Any] | None = None,
) -> str:
    """The tab (module docstring)."""
    if not measured:
        return (
            '<section id="measured" class="tab"><h2>Measured</h2><p>No verdict yet.</p></section>'
        )
    return (
        '<section id="measured" class="tab"><h2>Measured</h2>'
        + _judges(measured)
        + _correction(measured)
        + _modes(measured)
        + _topics(topics)
        + _regression(measured)
        + _findings(measured)
        + _canaries(canaries)
        + "</section>"
    )


__all__ = ["section"]
