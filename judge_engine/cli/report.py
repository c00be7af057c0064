"""`judge-engine report`: success rates by benchmark, harness and agent model, and cost."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from ..files import write_atomic
from ..measure import METHODS, Labels
from ..pricing import parse_price
from ._common import UsageError, bounded, writable_file, writable_folder

NAME = "report"
HELP = "success rates by benchmark, harness and agent model, with intervals and cost"
DESCRIPTION = """\
Success rate per benchmark x harness x agent model with n and Wilson 95% intervals
(cells under --min-n marked); per configuration the pooled rate beside the
benchmark-balanced rate; the agents' tokens and cost per task and per success;
optionally PNG charts (--plots DIR, with matplotlib installed).

With --html FILE, one self-contained HTML file instead (CSS, JavaScript and charts
inline; opens from disk, offline, in any current browser): the run, these tables, the
agreement between judges, and a session browser (sort, filter, search, "judges
disagree") whose session view shows every judge's reasoning beside the transcript
exactly as the judges read it.

Verdicts are those of the run's first judge slot (the task_success column), or of
--judge SLOT, or the majority of the current panel (--majority)."""


def add(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", metavar="OUT", help="a results folder a grade run wrote")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--judge",
        metavar="SLOT",
        help="the judge slot whose verdicts count (default: the first slot, the "
        "task_success column)",
    )
    which.add_argument(
        "--majority",
        action="store_true",
        help="count the majority verdict of the panel's judges (ties left out)",
    )
    parser.add_argument(
        "--min-n", type=bounded(int, 1, 10**9), default=10, metavar="N",
        help="mark cells with fewer sessions (default 10)",
    )  # fmt: skip
    parser.add_argument(
        "--format", choices=("md", "csv"), default="md", help="output format (default md)"
    )
    parser.add_argument("--plots", metavar="DIR", help="also write PNG charts into DIR")
    parser.add_argument(
        "--html", metavar="FILE", help="write the HTML report (with the session browser) to FILE"
    )
    parser.add_argument(
        "--price",
        action="append",
        metavar="MODEL=IN,OUT",
        help="an agent model's price in USD per million tokens (repeatable)",
    )
    parser.add_argument(
        "--labels",
        metavar="FILE",
        help="people's labels (JSONL, CSV or Parquet: session_id and label, 0/1; success, "
        "passed or resolved accepted as names): measure the judges against them and "
        "correct the success rates for the judges' error. Labels the source rows carry "
        "count too; where both say, the file wins. Never sent to a judge.",
    )
    parser.add_argument(
        "--method",
        choices=METHODS,
        default="auto",
        help="how rates are corrected: rogan-gladen (sensitivity and specificity per "
        "benchmark), ppi++ (labels drawn at random from the graded sessions, as `labels "
        "sample` draws them); auto (default): ppi++ for drawn labels, else rogan-gladen",
    )
    parser.add_argument(
        "--json",
        metavar="FILE",
        help="also write the whole report as one JSON object to FILE ('-': stdout, and "
        "nothing else there); the README lists every key",
    )
    parser.add_argument(
        "--all-judges",
        action="store_true",
        help="count every judge in the journal, not only the current panel's",
    )


#: Sorted keys, two-space indent, numpy floats as numbers.
JSON_OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY


def run(args: argparse.Namespace, argv: list[str]) -> int:
    from ..agreement import agree  # imported here: other commands start faster
    from ..measure import LabelsError, read_labels
    from ..report import build, plots, to_csv, to_json, to_markdown

    plots_dir = writable_folder(args.plots, "--plots") if args.plots else None
    try:
        prices = dict(parse_price(text) for text in args.price or ())
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    out = Path(args.out)
    json_path = None
    if args.json and args.json != "-":
        json_path = writable_file(args.json, "--json", out)
    try:
        labels = read_labels(Path(args.labels)) if args.labels else None
    except (LabelsError, OSError) as exc:
        raise UsageError(str(exc)) from None
    if args.html:
        return _html(
            out, writable_file(args.html, "--html", out), args.all_judges, labels, args.method
        )
    try:
        report = build(
            out,
            slot=args.judge,
            majority=args.majority,
            min_n=args.min_n,
            prices=prices,
            all_judges=args.all_judges,
            labels=labels,
            method=args.method,
        )
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    if args.json == "-":
        sys.stdout.buffer.write(orjson.dumps(to_json(report), option=JSON_OPTIONS) + b"\n")
        return 0
    if json_path is not None:
        write_atomic(json_path, orjson.dumps(to_json(report), option=JSON_OPTIONS) + b"\n")
        print(f"JSON report: {json_path}", file=sys.stderr)
    print(to_markdown(report) if args.format == "md" else to_csv(report), end="")
    print()
    if plots_dir is not None:
        try:
            written = plots(report, agree(out, all_judges=args.all_judges), plots_dir)
        except RuntimeError as exc:
            raise UsageError(str(exc)) from None
        for path in written:
            print(f"plot: {path}", file=sys.stderr)
    return 0


def _html(out: Path, path: Path, all_judges: bool, labels: Labels | None, method: str) -> int:
    from ..html import write_html

    try:
        size = write_html(out, path, all_judges=all_judges, labels=labels, method=method)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    print(
        f"HTML report: {path} ({size / 1024:,.0f} KB); open it in a browser (file://{path.resolve()})"
    )
    return 0
