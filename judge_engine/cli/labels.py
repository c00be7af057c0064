"""`judge-engine labels sample`: draw graded sessions for people to label."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._common import UsageError, bounded, writable_file

NAME = "labels"
HELP = "draw a random sample of graded sessions as a sheet for people to label"
DESCRIPTION = """\
A few labels measure the judge: how often it passes what truly passed (sensitivity)
and fails what truly failed (specificity), per benchmark, and so how far its success
rates are off. `report --labels FILE` then corrects every rate for that error.

  judge-engine labels sample OUT --n 100 --per benchmark --to sheet.csv

draws N graded sessions at random (seeded; with --per, stratified: each benchmark,
harness or agent model gets a share of N in proportion to its size, drawn at random
within it) and writes them as a CSV sheet: session id, benchmark, harness, agent
model, the task and the agent's final answer as the judges read them, and an empty
label column (1: the agent succeeded, 0: it did not) beside failure_mode, labeler and
note. The judges' verdicts stay hidden unless --show-verdicts (a person who sees them
tends to agree). Every row says how it was drawn (the drawn column): `report` then
knows the labels are a random sample and may use PPI++. With --html FILE, the HTML
report is written to FILE too and each row links to the session's view in it."""


def add(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sample = actions.add_parser(
        "sample",
        help="a seeded, stratified random sample of graded sessions, as a sheet to fill in",
        description=DESCRIPTION,
    )
    sample.add_argument("out", metavar="OUT", help="a results folder a grade run wrote")
    sample.add_argument(
        "--n", type=bounded(int, 1, 10**7), required=True, metavar="N",
        help="how many sessions to draw",
    )  # fmt: skip
    sample.add_argument(
        "--per",
        choices=("benchmark", "harness", "agent_model"),
        help="stratify: each group gets a share of N in proportion to its size (at least "
        "one while N allows)",
    )
    sample.add_argument("--seed", type=int, default=0, help="the draw's seed (default 0)")
    sample.add_argument(
        "--to", required=True, metavar="FILE", help="the CSV sheet to write ('-': stdout)"
    )
    sample.add_argument(
        "--show-verdicts",
        action="store_true",
        help="add each judge slot's verdict to the sheet (hidden by default)",
    )
    sample.add_argument(
        "--html",
        metavar="FILE",
        help="also write the HTML report to FILE and link every row to its session view",
    )


def run(args: argparse.Namespace, argv: list[str]) -> int:
    from ..files import write_atomic
    from ..measure.labels import candidates, sample, sheet

    out = Path(args.out)
    target = None if args.to == "-" else writable_file(args.to, "--to", out)
    html_path = writable_file(args.html, "--html", out) if args.html else None
    try:
        pool = candidates(out)
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    if not pool:
        raise UsageError(f"{out} holds no graded session to sample")
    chosen, drawn = sample(pool, args.n, per=args.per, seed=args.seed)
    link = None
    if html_path is not None:
        from ..html import write_html

        write_html(out, html_path)
        link = html_path.resolve().as_uri()
    text = sheet(chosen, drawn, verdicts=args.show_verdicts, link=link)
    if target is None:
        sys.stdout.write(text)
        return 0
    write_atomic(target, text.encode("utf-8"))
    print(f"{drawn}\nsheet: {target} ({len(chosen):,} rows; fill in the label column, 1 or 0)")
    if html_path is not None:
        print(f"HTML report: {html_path} (each row's view column opens its session)")
    print(f"then: judge-engine report {out} --labels {target}")
    return 0
