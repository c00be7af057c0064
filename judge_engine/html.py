"""The HTML report: one self-contained file to open from disk and to share.

In: a results folder (the journal's latest records through `results`, the tables of
`report.build`, the figures of `agreement.agree`, `run.json`, `summary.json`,
`rejected.jsonl` and the kept transcripts of `transcripts`). Out: one HTML page with
its CSS, JavaScript and SVG charts inline and no reference to any network: the run,
success by benchmark x harness x agent model with Wilson intervals, pooled against
benchmark-balanced rates, agreement, and a session browser (sort, filter, search,
disagreements) with a session view (every judge's verdict and reasoning side by side,
the transcript exactly as the judges read it).

The page's data is one JSON document in a `<script type="application/json">`; every
text from a trace or a judge reaches the page through `textContent`, never as markup.
Transcripts stay compressed (zlib, as kept) inside the file and are expanded one at a
time, when a session is opened, by the browser's own `DecompressionStream`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from . import transcripts
from .html_measured import section as measured_section
from .html_parts import escape, table
from .journal import FAILED, SKIPPED
from .measure import Labels
from .progress import fallback_lines
from .report import _money, _pct  # the text report's formats, the same figures
from .results import open_results

#: Characters of a session's task kept in the table's data for the search.
TASK_CHARS = 600
_HERE = Path(__file__).resolve().parent


def build_html(
    out_dir: Path,
    *,
    all_judges: bool = False,
    min_n: int = 10,
    labels: Labels | None = None,
    method: str = "auto",
) -> str:
    """The report of a results folder, as one HTML document; with `labels`, measured
    against them (the Measured tab, and the sessions' labels for the browser's filter
    "judge vs label disagree")."""
    from .agreement import agree  # numpy and the statistics: only when a report is made
    from .report import build

    view = open_results(out_dir, all_judges=all_judges)
    records = list(view.latest(first_sample=True))
    slots = view.slot_order(r.slot for r in records)
    kept = transcripts.latest(out_dir)
    sessions = _sessions(records, slots, kept)
    try:
        report: dict[str, Any] | None = build(
            out_dir, min_n=min_n, all_judges=all_judges, labels=labels, method=method
        )
    except ValueError:
        report = None  # no verdict yet: the browser still shows the failures
    if labels is not None:
        for entry in sessions:
            entry["label"] = labels.by_session.get(entry["id"], entry["label"])
    agreement = agree(out_dir, all_judges=all_judges)
    title = f"judge-engine report: {out_dir.name}"
    data = {
        "slots": slots,
        "sessions": sessions,
    }
    body = "\n".join(
        [
            f"<h1>judge-engine report <small>{_e(str(out_dir))}</small></h1>",
            _nav(),
            _run_section(out_dir, records, slots),
            _success_section(report),
            measured_section(
                report["measured"] if report else None,
                report["canaries"] if report else None,
                report["topics"] if report else None,
            ),
            _agreement_section(agreement),
            _browser_section(),
        ]
    )
    payload = orjson.dumps(data).replace(b"<", b"\\u003c").replace(b">", b"\\u003e")
    return _PAGE.format(
        title=_e(title),
        css=(_HERE / "html_assets" / "report.css").read_text(encoding="utf-8"),
        body=body,
        data=payload.replace(b"&", b"\\u0026").decode("utf-8"),
        js=(_HERE / "html_assets" / "report.js").read_text(encoding="utf-8"),
    )


def write_html(
    out_dir: Path,
    path: Path,
    *,
    all_judges: bool = False,
    labels: Labels | None = None,
    method: str = "auto",
) -> int:
    """Write the report to `path` (atomically); its size in bytes."""
    text = build_html(out_dir, all_judges=all_judges, labels=labels, method=method).encode()
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(text)
    partial.replace(path)
    return len(text)


_e = escape


def _sessions(
    records: Sequence[Any], slots: Sequence[str], kept: Mapping[str, transcripts.Transcript]
) -> list[dict[str, Any]]:
    """One entry per session: its columns, each slot's verdict, and its transcript."""
    by_session: dict[str, dict[str, Any]] = {}
    for record in records:
        entry = by_session.get(record.session_id)
        if entry is None:
            item = kept.get(record.session_id)
            entry = by_session[record.session_id] = {
                "id": record.session_id,
                "benchmark": record.benchmark or "unknown",
                "harness": record.harness or "unknown",
                "model": record.grouping_model,
                "label": record.label,
                "rubric": f"{record.rubric} {record.rubric_version}",
                "verdicts": {},
                "task": _task(item),
                "source": f"{item.source}, row {item.row + 1} ({item.format})" if item else "",
                "z": item.zlib if item else None,
                "chars": item.chars if item else 0,
            }
        entry["verdicts"][record.slot] = {
            "judge": record.judge,
            "status": record.status,
            "success": record.success,
            "confidence": record.confidence,
            "reasoning": record.reasoning or "",
            "error": record.error or "",
            "mode": record.failure_mode if record.status == "ok" else None,
            "step": record.failure_step,
            "note": record.failure_note or "",
        }
    order = {slot: index for index, slot in enumerate(slots)}
    for entry in by_session.values():
        entry["verdicts"] = {
            slot: entry["verdicts"][slot]
            for slot in sorted(entry["verdicts"], key=lambda s: order.get(s, len(order)))
        }
    return list(by_session.values())


def _task(item: transcripts.Transcript | None) -> str:
    """The task as the judges read it (the message's Task section), clipped."""
    if item is None:
        return ""
    text = item.text()
    start = text.find("## Task\n")
    if start < 0:
        return ""
    start += len("## Task\n")
    end = text.find("\n## ", start)
    return text[start : end if end >= 0 else None].strip()[:TASK_CHARS]


#: The report's tabs: one section shows at a time, the bar stays at the top.
TABS = (("run", "The run"), ("success", "Success"), ("measured", "Measured"),
        ("agreement", "Agreement"), ("sessions", "Sessions"))  # fmt: skip


def _nav() -> str:
    items = "".join(
        f'<a href="#{anchor}" data-tab="{anchor}" role="tab">{title}</a>' for anchor, title in TABS
    )
    return f'<nav class="tabs" role="tablist">{items}</nav>'


_table = table


def _ci(ci: Sequence[float] | None) -> str:
    return "-" if not ci else f"{ci[0]:.1%} to {ci[1]:.1%}"


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _run_section(out_dir: Path, records: Sequence[Any], slots: Sequence[str]) -> str:
    run = _json(out_dir / "run.json")
    summary = _json(out_dir / "summary.json")
    sources = run.get("sources", {}).get("sources", [])
    panel = run.get("panel", {})
    rubrics = sorted({f"{r.rubric} {r.rubric_version}" for r in records})
    sessions = {r.session_id for r in records}
    failed_sessions = {r.session_id for r in records if r.status == FAILED}
    reasons = Counter((r.error or "").split(":", 1)[0][:80] for r in records if r.status == FAILED)
    skipped = Counter(r.slot for r in records if r.status == SKIPPED)
    tokens = sum(int(r.usage.get("total_tokens", 0)) for r in records)
    costs = [r.cost_usd for r in records if r.cost_usd is not None]
    rejected = _lines(out_dir / "rejected.jsonl")
    facts = [
        ("sources", ", ".join(map(str, sources)) or "-"),
        ("panel", ", ".join(map(str, panel.get("judge", []))) or "-"),
        ("fallback judges", ", ".join(map(str, panel.get("fallback_judge", []))) or "none"),
        ("guard", str(panel.get("guard", "-"))),
        ("rubrics", ", ".join(rubrics) or "-"),
        ("sessions", f"{len(sessions):,} ({len(sessions) - len(failed_sessions):,} graded)"),
        ("failed", f"{len(failed_sessions):,} sessions"),
        ("skipped by the guard", ", ".join(f"{s}: {n:,}" for s, n in skipped.items()) or "none"),
        ("rejected rows", f"{rejected:,}"),
        ("judge tokens", f"{tokens:,}"),
        ("judge cost", f"${sum(costs):,.4f}" if costs else "unknown"),
        ("last run's wall time", f"{float(summary.get('wall_s', 0.0)):,.1f} s"),
    ]
    rows = [[_e(k), _e(v)] for k, v in facts]
    rows += [[_e("failed: " + reason), f"{n:,}"] for reason, n in reasons.most_common(8)]
    fallbacks = "".join(f"<p>{_e(line)}</p>" for line in fallback_lines(_slot_judges(records)))
    return (
        f'<section id="run" class="tab"><h2>The run</h2>{_table(["", ""], rows, "facts")}'
        f"{fallbacks}</section>"
    )


def _slot_judges(records: Sequence[Any]) -> dict[str, Counter[str]]:
    """Per judge slot, the verdicts each model gave for it."""
    slots: dict[str, Counter[str]] = {}
    for record in records:
        if record.status == "ok" and record.judge:
            slots.setdefault(record.slot, Counter())[record.judge] += 1
    return slots


def _json(path: Path) -> dict[str, Any]:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _lines(path: Path) -> int:
    try:
        with open(path, "rb") as handle:
            return sum(1 for _ in handle)
    except OSError:
        return 0


def _success_section(report: Mapping[str, Any] | None) -> str:
    if report is None:
        return '<section id="success" class="tab"><h2>Success</h2><p>No verdict yet.</p></section>'
    cells = report["cells"]
    rows = [
        [
            _e(c["benchmark"]),
            _e(c["harness"]),
            _e(c["agent_model"]),
            f"{c['n']:,}" + (' <span class="small" title="few sessions">small n</span>'
                             if c["small"] else ""),
            _pct(c["rate"]),
            _ci(c["ci95"]),
        ]
        for c in cells
    ]  # fmt: skip
    table = _table(["benchmark", "harness", "agent model", "n", "success", "Wilson 95%"], rows)
    configs = [
        [
            _e(c["harness"]),
            _e(c["agent_model"]),
            f"{c['benchmarks']}",
            f"{c['n']:,}",
            f"{_pct(c['pooled_rate'])} ({_ci(c['pooled_ci95'])})",
            f"{_pct(c['balanced_rate'])} ({_ci(c['balanced_ci95'])})",
            _num(c["tokens_per_task"], 0),
            _num(c["tokens_per_success"], 0),
            _money(c["cost_per_task"]),
            _money(c["cost_per_success"]),
        ]
        for c in report["configurations"]
    ]
    config_table = _table(
        [
            "harness", "agent model", "benchmarks", "n", "pooled", "benchmark-balanced",
            "tokens / task", "tokens / success", "cost / task", "cost / success",
        ],
        configs,
    )  # fmt: skip
    single = sum(1 for c in cells if c["n"] == 1)
    many = [c for c in cells if c["n"] > 1]
    if single and many:
        chart = (
            f'<label class="toggle"><input type="checkbox" id="show-n1"> show the {single:,} '
            f"cells of n = 1 too</label>"
            f'<div class="chart-n1" hidden>{_bars_svg(cells)}</div>'
            f'<div class="chart-many">{_bars_svg(many)}</div>'
        )
    else:
        chart = _bars_svg(cells)
    return (
        f'<section id="success" class="tab"><h2>Success</h2><p>Verdicts: '
        f"{_e(report['verdict'])}; {report['sessions']:,} sessions; cells under "
        f"{report['min_n']} sessions are marked small n.</p>{chart}"
        f"<h3>By benchmark, harness and agent model</h3>{table}"
        f"<h3>Per configuration: pooled and benchmark-balanced</h3>{config_table}</section>"
    )


#: The chart's label column holds this many characters (13 px type, about 7 px each):
#: a longer label is cut with an ellipsis, and its whole text is its tooltip.
LABEL_CHARS = 52
#: Charts with more rows than this repeat the axis above the bars.
_AXIS_TWICE = 12


def _label(text: str) -> str:
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def _bars_svg(cells: Sequence[Mapping[str, Any]]) -> str:
    """Success rate per cell as a horizontal bar with its Wilson interval. Labels fit
    their column (cut with an ellipsis, the whole text as a tooltip); a long chart has
    its axis at the top and the bottom."""
    if not cells:
        return ""
    label_w, bar_w, row_h = 380, 420, 26
    top = 24 if len(cells) > _AXIS_TWICE else 0
    height = row_h * len(cells) + 40 + top
    parts = [
        f'<svg class="chart" role="img" aria-label="success rate by cell with 95% intervals" '
        f'viewBox="0 0 {label_w + bar_w + 120} {height}" width="{label_w + bar_w + 120}" '
        f'height="{height}" xmlns="http://www.w3.org/2000/svg" data-rows="{len(cells)}">'
    ]
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        x = label_w + tick * bar_w
        parts.append(
            f'<line x1="{x}" y1="{8 + top}" x2="{x}" y2="{height - 24}" class="grid"/>'
            f'<text x="{x}" y="{height - 8}" text-anchor="middle" class="axis">{tick:.0%}</text>'
        )
        if top:
            parts.append(
                f'<text x="{x}" y="16" text-anchor="middle" class="axis">{tick:.0%}</text>'
            )
    for index, cell in enumerate(cells):
        y = 12 + top + index * row_h
        name = f"{cell['benchmark']} / {cell['harness']} / {cell['agent_model']}"
        low, high = cell["ci95"] or (cell["rate"], cell["rate"])
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 14}" text-anchor="end" class="label">'
            f"<title>{_e(name)} (n={cell['n']})</title>{_e(_label(name))}</text>"
            f'<rect x="{label_w}" y="{y + 3}" width="{cell["rate"] * bar_w:.1f}" height="14" '
            f'class="{"bar small" if cell["small"] else "bar"}"/>'
            f'<line x1="{label_w + low * bar_w:.1f}" y1="{y + 10}" '
            f'x2="{label_w + high * bar_w:.1f}" y2="{y + 10}" class="ci"/>'
            f'<text x="{label_w + bar_w + 8}" y="{y + 14}">{cell["rate"]:.0%} '
            f"(n={cell['n']})</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _agreement_section(result: Mapping[str, Any]) -> str:
    judges: list[str] = list(result.get("judges", []))
    pairs = {(p["a"], p["b"]): p for p in result.get("pairs", [])}
    pairs.update({(p["b"], p["a"]): p for p in result.get("pairs", [])})
    rows = []
    for a in judges:
        row = [_e(a)]
        for b in judges:
            if a == b:
                row.append("-")
                continue
            pair = pairs.get((a, b))
            if pair is None or pair.get("cohen_kappa") is None:
                row.append('<span class="missing">no shared sessions</span>')
                continue
            ci = pair.get("kappa_ci95")
            shown = f"{ci[0]:.2f} to {ci[1]:.2f}, " if ci else ""
            row.append(f"{pair['cohen_kappa']:.2f}<br><small>{shown}n={pair['n']}</small>")
        rows.append(row)
    matrix = _table(["Cohen's kappa", *(_e(j) for j in judges)], rows, "matrix")
    stats = [
        [_e("Fleiss' kappa"), _num(result.get("fleiss_kappa")),
         f"{result.get('fleiss_sessions', 0):,} sessions"],
        [_e("Krippendorff's alpha"), _num(result.get("krippendorff_alpha")),
         f"{result.get('alpha_sessions', 0):,} sessions"],
    ]  # fmt: skip
    labels = result.get("labels") or {}
    label_rows = [
        [
            _e(judge),
            f"{m['n']:,}",
            f"{_pct(m['accuracy'])} ({_ci(m.get('accuracy_ci95'))})",
            _num(m.get("kappa")),
        ]
        for judge, m in (labels.get("judges") or {}).items()
    ]
    label_html = (
        f"<h3>Against labels</h3><p>Labels from {_e(str(labels.get('source')))}; "
        f"{labels.get('sessions', 0):,} labelled sessions.</p>"
        + _table(["judge", "n", "accuracy", "kappa"], label_rows)
        if label_rows
        else "<p>No labels in the sources.</p>"
    )
    calibration = (result.get("calibration") or {}).get("judges") or {}
    calib_rows = [
        [_e(judge)]
        + [
            f"{_pct(levels[level]['agreement'])} (n={levels[level]['n']})"
            if level in levels
            else "-"
            for level in ("low", "medium", "high")
        ]
        for judge, levels in calibration.items()
    ]
    calib_html = (
        "<h3>By confidence</h3>" + _table(["judge", "low", "medium", "high"], calib_rows)
        if calib_rows
        else ""
    )
    return (
        '<section id="agreement" class="tab"><h2>Agreement</h2>'
        f"<p>{result.get('sessions', 0):,} sessions; intervals 95%.</p>{matrix}"
        f"{_table(['', 'value', 'over'], stats)}{label_html}{calib_html}</section>"
    )


def _browser_section() -> str:
    return """<section id="sessions" class="tab"><h2>Sessions</h2>
<div class="controls">
  <input id="search" type="search" placeholder="search task and reasoning" aria-label="search">
  <label><input type="checkbox" id="f-disagree"> judges disagree</label>
  <label><input type="checkbox" id="f-failed"> failed</label>
  <label><input type="checkbox" id="f-skipped"> skipped</label>
  <label><input type="checkbox" id="f-label"> judge vs label disagree</label>
  <label><input type="checkbox" id="f-modes"> judges disagree on the mode</label>
  <span id="count" aria-live="polite"></span>
</div>
<div class="wrap"><table id="browser"><thead></thead><tbody></tbody></table></div>
<div class="pager"><button id="prev">previous</button> <span id="page"></span>
<button id="next">next</button></div>
</section>
<aside id="view" hidden aria-label="the session"><div class="view-head">
<h2 id="view-title"></h2><a href="#sessions" id="back" title="close (Esc)">close ✕</a></div>
<table class="facts" id="view-facts"></table>
<div id="verdicts" class="verdicts"></div>
<h3>What the judges read</h3>
<pre id="transcript"></pre>
</aside>"""


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; \
style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>{title}</title>
<style>{css}</style></head>
<body><main>
{body}
</main>
<script type="application/json" id="data">{data}</script>
<script>{js}</script>
</body></html>
"""
