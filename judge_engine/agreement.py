"""How far the judges agree: with each other, with themselves, and with labels.

In: the verdicts in `OUT/journal.jsonl` (by the model that actually judged, so a
fallback counts as itself), and labels from a file or from the source. Out: a JSON-able
dict and a readable text rendering:

- per pair of judges, over the sessions both graded: n, percent agreement, Cohen's
  kappa with a 95% bootstrap interval, the 2x2 confusion matrix;
- across all judges: Fleiss' kappa (sessions every judge graded) and Krippendorff's
  alpha (nominal; every session with two verdicts or more);
- the majority verdict per session (ties have none) and how often each judge sides
  with it;
- repeat stability (`grade --repeats K`): each judge's self-agreement and flip rate;
- against labels: accuracy, precision, recall, F1 and kappa, per judge and for the
  majority, with bootstrap intervals;
- calibration: per stated confidence, agreement with the labels where they exist, else
  with the majority of the *other* judges (a judge's own vote would flatter it);
- the same per benchmark or harness with `--by`; cells under 20 sessions are marked.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

from .measure.labels import read_labels
from .results import majority as _majority
from .results import open_results, verdict_of
from .stats import (
    CI_METHOD,
    bootstrap_ci,
    classification,
    classification_counts,
    cohen_kappa,
    confusion,
    fleiss_kappa,
    kappa_counts,
    krippendorff_alpha,
    wilson,
)

#: Cells with fewer sessions are marked small (still shown).
SMALL_CELL = 20
CONFIDENCES = ("low", "medium", "high")


@dataclass
class Verdicts:
    """Verdicts by session and judge model, read from a journal."""

    #: Judge models in order of first appearance.
    judges: list[str] = field(default_factory=list)
    #: session -> judge -> (success, confidence), first sample only.
    first: dict[str, dict[str, tuple[int, str | None]]] = field(default_factory=dict)
    #: session -> judge -> success of every sample, in sample order.
    samples: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    #: session -> {"benchmark": ..., "harness": ...}
    groups: dict[str, dict[str, str]] = field(default_factory=dict)
    #: Labels the source carried, by session.
    labels: dict[str, int] = field(default_factory=dict)
    #: session -> judge -> the failure mode it named (first sample; failures only).
    modes: dict[str, dict[str, str]] = field(default_factory=dict)


def load(out_dir: Path, *, all_judges: bool = False) -> Verdicts:
    """The verdicts of OUT through the one read model (`results`): the latest record of
    each request, the current panel's slots (or every slot with `all_judges`), judges
    in panel order."""
    view = open_results(out_dir, all_judges=all_judges)
    data = Verdicts()
    samples: dict[tuple[str, str], dict[int, int]] = {}
    seen: list[str] = []
    for record in view.latest():
        success = verdict_of(record)
        if success is None or record.judge is None:
            continue
        session = record.session_id
        data.groups.setdefault(
            session,
            {"benchmark": record.benchmark or "unknown", "harness": record.harness or "unknown"},
        )
        if record.label is not None:
            data.labels[session] = record.label
        seen.append(record.judge)
        samples.setdefault((session, record.judge), {})[record.sample] = success
        if record.sample == 0:
            data.first.setdefault(session, {}).setdefault(
                record.judge, (success, record.confidence)
            )
            if success == 0 and record.failure_mode:
                data.modes.setdefault(session, {}).setdefault(record.judge, record.failure_mode)
    data.judges = view.judge_order(seen)
    for (session, judge), by_sample in samples.items():
        data.samples.setdefault(session, {})[judge] = [by_sample[k] for k in sorted(by_sample)]
    return data


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _interval(ci: tuple[float, float] | None) -> list[float] | None:
    return None if ci is None else [round(ci[0], 4), round(ci[1], 4)]


def _metric_ci(pairs: list[tuple[int, int]], name: str) -> list[float] | None:
    return _interval(bootstrap_ci(pairs, lambda counts: classification_counts(counts)[name]))


def analyse(data: Verdicts, sessions: Sequence[str], labels: Mapping[str, int]) -> dict[str, Any]:
    """Every statistic over one set of sessions."""
    first = {s: data.first[s] for s in sessions if s in data.first}
    judges = [j for j in data.judges if any(j in v for v in first.values())]
    result: dict[str, Any] = {"sessions": len(first), "judges": judges}
    if len(first) < SMALL_CELL:
        result["small"] = True

    pairs = []
    for a, b in combinations(judges, 2):
        both = [(v[a][0], v[b][0]) for v in first.values() if a in v and b in v]
        n = len(both)
        pair: dict[str, Any] = {
            "a": a,
            "b": b,
            "n": n,
            "agreement": _round(sum(x == y for x, y in both) / n) if n else None,
            "cohen_kappa": _round(cohen_kappa(both)),
            "kappa_ci95": _interval(bootstrap_ci(both, kappa_counts)) if n else None,
            "confusion": confusion(both),
        }
        if n < SMALL_CELL:
            pair["small"] = True
        pairs.append(pair)
    result["pairs"] = pairs

    complete = [v for v in first.values() if all(j in v for j in judges)]
    if len(judges) >= 2:
        result["fleiss_kappa"] = _round(
            fleiss_kappa([Counter(v[j][0] for j in judges) for v in complete])
        )
        result["fleiss_sessions"] = len(complete)
        units = [[v[j][0] for j in judges if j in v] for v in first.values()]
        result["krippendorff_alpha"] = _round(krippendorff_alpha(units))
        result["alpha_sessions"] = sum(1 for u in units if len(u) >= 2)
    else:
        result.update(
            fleiss_kappa=None, fleiss_sessions=0, krippendorff_alpha=None, alpha_sessions=0
        )

    majority = {s: _majority([x for x, _ in v.values()]) for s, v in first.items() if len(v) >= 2}
    decided = {s: m for s, m in majority.items() if m is not None}
    # Where a session has two verdicts, a majority exists only where they agree, and
    # each judge "sides with it" by construction: that figure counts only sessions
    # with three verdicts or more, and is left out when there are none.
    sides: dict[str, Any] = {}
    contested = {s: m for s, m in decided.items() if len(first[s]) >= 3}
    only_agreement = not contested
    for judge in [] if only_agreement else judges:
        agree = [first[s][judge][0] == m for s, m in contested.items() if judge in first[s]]
        n = len(agree)
        sides[judge] = {
            "n": n,
            "sides_with_majority": _round(sum(agree) / n) if n else None,
            "ci95": _interval(wilson(sum(agree), n)),
        }
    result["majority"] = {
        "sessions": len(majority),
        "decided": len(decided),
        "ties": len(majority) - len(decided),
        "success_rate": _round(sum(decided.values()) / len(decided)) if decided else None,
        "only_where_judges_agree": only_agreement,
        "judges": sides,
    }

    known = {s: labels[s] for s in first if s in labels}
    if known:
        by_judge: dict[str, Any] = {}
        for judge in judges:
            scored = [(first[s][judge][0], y) for s, y in known.items() if judge in first[s]]
            by_judge[judge] = _label_metrics(scored)
        scored = [(decided[s], y) for s, y in known.items() if s in decided]
        result["labels"] = {
            "sessions": len(known),
            "success_rate": _round(sum(known.values()) / len(known)),
            "judges": by_judge,
            "majority": _label_metrics(scored),
        }

    result["calibration"] = _calibration(first, judges, known)
    return result


def _label_metrics(scored: list[tuple[int, int]]) -> dict[str, Any]:
    metrics = classification(scored)
    out: dict[str, Any] = {"n": len(scored)}
    for name, value in metrics.items():
        out[name] = _round(value)
        out[f"{name}_ci95"] = _metric_ci(scored, name) if scored else None
    if len(scored) < SMALL_CELL:
        out["small"] = True
    return out


def _calibration(
    first: Mapping[str, Mapping[str, tuple[int, str | None]]],
    judges: Sequence[str],
    labels: Mapping[str, int],
) -> dict[str, Any]:
    reference_name = "labels" if labels else "majority of the other judges"
    table: dict[str, Any] = {}
    for judge in judges:
        cells: dict[str, list[bool]] = {c: [] for c in CONFIDENCES}
        for session, verdicts in first.items():
            if judge not in verdicts:
                continue
            success, confidence = verdicts[judge]
            if confidence not in cells:
                continue
            if labels:
                reference = labels.get(session)
            else:
                others = [x for j, (x, _) in verdicts.items() if j != judge]
                reference = _majority(others) if others else None
            if reference is not None:
                cells[confidence].append(success == reference)
        table[judge] = {
            level: {
                "n": len(hits),
                "agreement": _round(sum(hits) / len(hits)) if hits else None,
                "ci95": _interval(wilson(sum(hits), len(hits))),
                **({"small": True} if len(hits) < SMALL_CELL else {}),
            }
            for level, hits in cells.items()
        }
    return {"reference": reference_name, "judges": table}


def repeats(data: Verdicts) -> dict[str, Any]:
    """Self-agreement, flip rate and Fleiss' kappa across samples, per judge."""
    out: dict[str, Any] = {}
    for judge in data.judges:
        runs = [v[judge] for v in data.samples.values() if len(v.get(judge, ())) >= 2]
        if not runs:
            continue
        k = max(len(r) for r in runs)
        flips = sum(1 for r in runs if len(set(r)) > 1)
        pair_agreement = [
            sum(a == b for a, b in combinations(r, 2)) / (len(r) * (len(r) - 1) / 2) for r in runs
        ]
        full = [Counter(r) for r in runs if len(r) == k]
        out[judge] = {
            "sessions": len(runs),
            "samples": k,
            "self_agreement": _round(sum(pair_agreement) / len(runs)),
            "flip_rate": _round(flips / len(runs)),
            "flip_ci95": _interval(wilson(flips, len(runs))),
            "self_fleiss_kappa": _round(fleiss_kappa(full)) if full else None,
        }
    return out


def agree(
    out_dir: Path,
    *,
    by: str = "none",
    labels_file: Path | None = None,
    all_judges: bool = False,
) -> dict[str, Any]:
    """The whole `agree` report for a results folder."""
    data = load(out_dir, all_judges=all_judges)
    labels = dict(data.labels)
    carried = "the source rows (their success/label/resolved/passed field)"
    source = carried if labels else None
    label_modes: dict[str, str] = {}
    if labels_file is not None:
        read = read_labels(labels_file)
        given = read.by_session
        labels.update(given)  # the file wins where both say
        label_modes = {s: m for s, m in read.failure_mode.items() if given.get(s) == 0}
        source = f"{labels_file}" if source is None else f"{labels_file}, then {carried}"
    sessions = list(data.first)
    result = analyse(data, sessions, labels)
    result["ci_method"] = CI_METHOD
    result["repeats"] = repeats(data)
    result["failure_modes"] = mode_agreement(data, label_modes)
    if "labels" in result:
        result["labels"]["source"] = source
    else:
        result["labels"] = {}
    result["by"] = {}
    if by != "none":
        groups: dict[str, list[str]] = {}
        for session in sessions:
            groups.setdefault(data.groups[session][by], []).append(session)
        sections = {
            name: analyse(data, members, labels) for name, members in sorted(groups.items())
        }
        for section in sections.values():
            if "labels" in section:
                section["labels"]["source"] = source
        result["by"] = {by: sections}
    return result


def _mode_pairs(pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Cohen's kappa over (first, second) failure modes with its bootstrap interval and
    the confusion table (first's mode -> second's mode -> count)."""
    confusion: dict[str, dict[str, int]] = {}
    for a, b in pairs:
        row = confusion.setdefault(a, {})
        row[b] = row.get(b, 0) + 1
    kappa = cohen_kappa(pairs) if pairs else None
    ci = bootstrap_ci(list(pairs), kappa_counts) if pairs and kappa is not None else None
    return {
        "n": len(pairs),
        "agree": _round(sum(1 for a, b in pairs if a == b) / len(pairs)) if pairs else None,
        "kappa": _round(kappa),
        "ci": _interval(ci),
        "confusion": confusion,
        **({"small": True} if len(pairs) < SMALL_CELL else {}),
    }


def mode_agreement(data: Verdicts, label_modes: Mapping[str, str]) -> dict[str, Any]:
    """How far the judges agree on why a session failed: per pair of judges, over the
    sessions both failed and both named a mode; and per judge against the labels'
    `failure_mode`, over the labelled failures the judge also failed."""
    pairs = []
    for a, b in combinations(data.judges, 2):
        both = [(modes[a], modes[b]) for modes in data.modes.values() if a in modes and b in modes]
        pairs.append({"a": a, "b": b, **_mode_pairs(both)})
    vs_labels = []
    for judge in data.judges:
        scored = [
            (data.modes[s][judge], mode)
            for s, mode in label_modes.items()
            if judge in data.modes.get(s, {})
        ]
        if scored:
            vs_labels.append({"judge": judge, **_mode_pairs(scored)})
    return {"pairs": pairs, "vs_labels": vs_labels}


# --- text ------------------------------------------------------------------------------


def _f(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ci(ci: Sequence[float] | None) -> str:
    return "" if not ci else f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def render(result: Mapping[str, Any]) -> str:
    lines = [_render_section(result, "all sessions")]
    repeats_table = result.get("repeats") or {}
    if repeats_table:
        lines.append("\nrepeat stability (grade --repeats)")
        lines.append(
            f"  {'judge':<28}{'sessions':>9}{'K':>4}{'self-agree':>12}{'flip rate':>11}{'kappa':>8}"
        )
        for judge, r in repeats_table.items():
            lines.append(
                f"  {judge:<28}{r['sessions']:>9}{r['samples']:>4}"
                f"{_f(r['self_agreement']):>12}{_f(r['flip_rate']):>11}"
                f"{_f(r['self_fleiss_kappa']):>8}"
            )
    modes = result.get("failure_modes") or {}
    rated = [p for p in modes.get("pairs", []) if p["n"]] + modes.get("vs_labels", [])
    if rated:
        lines.append("\nfailure modes: agreement over the sessions both failed and named a mode")
        lines.append(f"  {'pair (first ~ second)':<50}{'n':>5}{'agree':>8}{'kappa':>8}  95% CI")
        for pair in rated:
            name = f"{pair['a']} ~ {pair['b']}" if "a" in pair else f"{pair['judge']} ~ labels"
            lines.append(
                f"  {name:<50}{pair['n']:>5}{_f(pair['agree']):>8}{_f(pair['kappa']):>8}  "
                f"{_ci(pair['ci'])}{_small(pair)}"
            )
            top = sorted(
                ((a, b, n) for a, row in pair["confusion"].items() for b, n in row.items()
                 if a != b), key=lambda t: -t[2],
            )[:3]  # fmt: skip
            if top:
                shown = "; ".join(f"{a} ~ {b}: {n}" for a, b, n in top)
                lines.append(f"  {'':<4}most often read differently: {shown}")
    for by, groups in (result.get("by") or {}).items():
        for name, section in groups.items():
            lines.append("\n" + _render_section(section, f"{by} = {name}"))
    lines.append(
        f"\nintervals: Wilson for proportions; {result.get('ci_method', CI_METHOD)} "
        "for kappa and label metrics. (small) marks cells under "
        f"{SMALL_CELL} sessions."
    )
    return "\n".join(lines)


def _small(cell: Mapping[str, Any]) -> str:
    return " (small)" if cell.get("small") else ""


def _render_section(section: Mapping[str, Any], title: str) -> str:
    lines = [
        f"== {title}: {section['sessions']} sessions, judges: "
        f"{', '.join(section['judges']) or 'none'}{_small(section)}"
    ]
    if section["pairs"]:
        lines.append(
            f"  {'pair (first ~ second)':<48}{'n':>6}{'agree':>8}{'kappa':>8}  {'95% CI':<16}"
            "confusion [[0~0, 0~1], [1~0, 1~1]]"
        )
        for p in section["pairs"]:
            name = f"{p['a']} ~ {p['b']}"
            lines.append(
                f"  {name:<48}{p['n']:>6}{_f(p['agreement']):>8}"
                f"{_f(p['cohen_kappa']):>8}  {_ci(p['kappa_ci95']):<16}"
                f"{p['confusion']}{_small(p)}"
            )
    if section["pairs"]:
        lines.append("  (confusion rows: the first judge's verdict 0, 1; columns: the second's)")
    if len(section["judges"]) >= 2:
        lines.append(
            f"  Fleiss' kappa {_f(section['fleiss_kappa'])} over "
            f"{section['fleiss_sessions']} sessions every judge graded; "
            f"Krippendorff's alpha {_f(section['krippendorff_alpha'])} over "
            f"{section['alpha_sessions']} sessions"
        )
    majority = section["majority"]
    if majority["sessions"] and majority.get("only_where_judges_agree"):
        lines.append(
            f"  majority: no session has three verdicts, so only where its two agree: "
            f"{majority['decided']} sessions ({majority['ties']} split); success rate "
            f"{_f(majority['success_rate'])}"
        )
    elif majority["sessions"]:
        lines.append(
            f"  majority: {majority['decided']} sessions decided, {majority['ties']} "
            f"ties; success rate {_f(majority['success_rate'])}"
        )
        for judge, s in majority["judges"].items():
            lines.append(
                f"    {judge:<30} sides with the majority {_f(s['sides_with_majority'])} "
                f"{_ci(s['ci95'])} (n={s['n']} sessions with three verdicts or more)"
            )
    labels = section.get("labels")
    if labels:
        where = labels.get("source") or "the labels given"
        lines.append(
            f"  against labels from {where} ({labels['sessions']} sessions, success rate "
            f"{_f(labels['success_rate'])}):"
        )
        lines.append(
            f"    {'judge':<30}{'n':>5}{'acc':>7}{'prec':>7}{'recall':>8}{'F1':>7}"
            f"{'kappa':>7}  kappa 95% CI"
        )
        name = (
            "(majority: where both agree)"
            if majority.get("only_where_judges_agree")
            else "(majority)"
        )
        rows = [*labels["judges"].items(), (name, labels["majority"])]
        for judge, m in rows:
            lines.append(
                f"    {judge:<30}{m['n']:>5}{_f(m['accuracy'], 2):>7}"
                f"{_f(m['precision'], 2):>7}{_f(m['recall'], 2):>8}{_f(m['f1'], 2):>7}"
                f"{_f(m['kappa'], 2):>7}  {_ci(m.get('kappa_ci95'))}{_small(m)}"
            )
    calibration = section["calibration"]
    if calibration["judges"]:
        lines.append(
            f"  calibration: agreement with {calibration['reference']} by stated confidence"
        )
        for judge, cells in calibration["judges"].items():
            parts = [
                f"{level} {_f(c['agreement'], 2)} (n={c['n']})"
                for level, c in cells.items()
                if c["n"]
            ]
            lines.append(f"    {judge:<30} {'; '.join(parts) or '-'}")
    return "\n".join(lines)
