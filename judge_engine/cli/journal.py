"""`judge-engine journal verify`: a results folder's journal and its score columns, checked."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..journal import ReadLock
from ..sinks import verify
from ._common import Parser, UsageError

NAME = "journal"
HELP = "check a results folder: the journal's integrity and its score columns"
DESCRIPTION = "Work on a results folder's journal."


def add(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(
        dest="journal_command", metavar="ACTION", required=True, parser_class=Parser
    )
    check = actions.add_parser(
        "verify",
        help="check the journal's integrity and its agreement with scores.jsonl",
        description="Check that every journal line parses, carries valid fields and the "
        "key its own fields hash to; that no request holds two verdicts; and that "
        "scores.jsonl holds exactly one row per (session, judge slot), each equal to what "
        "the journal's latest record gives; and that every kept transcript (what the judges "
        "read, transcripts.jsonl) decompresses to its digest. While a grade run writes OUT, "
        "the journal is checked up to where it was when the check began and the score "
        "columns are left for the end of the run (say --wait to wait for it). Exit 0 when "
        "all holds, 1 otherwise.",
    )
    check.add_argument("out", metavar="OUT", help="a results folder a grade run wrote")
    check.add_argument(
        "--wait",
        action="store_true",
        help="when a run is writing OUT, wait for it to end, then check everything",
    )


def run(args: argparse.Namespace, argv: list[str]) -> int:
    out = Path(args.out)
    if not out.is_dir():
        raise UsageError(f"{out}: no such folder")
    with ReadLock(out, wait=args.wait) as lock:
        if lock.busy:
            print(
                f"a run is in progress on {out}: the journal is checked up to where it is "
                "now; the score columns are final when the run ends (--wait waits for it)"
            )
        report = verify(out, live=lock.busy)
    print(
        f"{report.records:,} journal records for {report.keys:,} requests: {report.verdicts:,} "
        f"verdicts, {report.failures:,} failures, {report.skips:,} guard skips; "
        + (
            "score rows not checked (the run is writing them)"
            if lock.busy
            else f"{report.score_rows:,} score rows"
        )
        + f"; {report.transcripts:,} kept transcripts"
    )
    if report.failure_reasons:
        reasons = ", ".join(f"{n:,} {why}" for why, n in report.failure_reasons.most_common())
        print(f"failures by reason: {reasons}")
    if report.conflicting:
        print(
            f"{report.conflicting:,} requests were answered twice, differently, in a batch's "
            "files (conflicting_answers): neither answer was taken; they were asked again"
        )
    if report.torn_tail:
        print("the last line is torn (a run was killed mid-write); the next run cuts it")
    for problem in report.problems:
        print(f"problem: {problem}")
    print("journal verified: OK" if report.ok else "journal verification FAILED")
    return 0 if report.ok else 1
