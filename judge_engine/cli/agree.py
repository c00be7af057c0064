"""`judge-engine agree`: how far the judges agree, with each other, themselves and labels."""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson

from ._common import UsageError, writable_file, write_output

NAME = "agree"
HELP = "how far the judges agree: kappa with intervals, majority, labels, calibration"
DESCRIPTION = """\
Agreement over the verdicts in OUT, by the model that actually judged (a fallback
counts as itself), judges in the run's panel order: per pair of judges n, percent
agreement, Cohen's kappa with a 95% bootstrap interval and the confusion matrix;
Fleiss' kappa and Krippendorff's alpha across all judges; with three judges or more,
the majority verdict and how often each judge sides with it; repeat stability (grade
--repeats); accuracy, precision, recall, F1 and kappa against labels (--labels FILE,
or a label the source rows carry); agreement by stated confidence.

Only the judges of the run's current panel count; --all-judges adds every judge the
journal holds verdicts of (a judge dropped from the command, say)."""


def add(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", metavar="OUT", help="a results folder a grade run wrote")
    parser.add_argument(
        "--by",
        choices=("benchmark", "harness", "none"),
        default="none",
        help="repeat everything per benchmark or harness (default none)",
    )
    parser.add_argument(
        "--labels",
        metavar="FILE",
        help="JSONL ({session_id, label}) or CSV (session_id,label) of 0/1 labels",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument(
        "--all-judges",
        action="store_true",
        help="count every judge in the journal, not only the current panel's",
    )


def run(args: argparse.Namespace, argv: list[str]) -> int:
    from ..agreement import agree, render  # imported here: other commands start faster

    target = writable_file(args.json, "--json", Path(args.out)) if args.json else None
    labels = Path(args.labels) if args.labels else None
    try:
        result = agree(Path(args.out), by=args.by, labels_file=labels, all_judges=args.all_judges)
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot read {exc.filename}: {exc.strerror or exc}") from None
    print(render(result))
    if target is not None:
        write_output(target, orjson.dumps(result, option=orjson.OPT_INDENT_2), "--json")
        print(f"\nfigures as JSON: {target}")
    return 0
