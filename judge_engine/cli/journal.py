"""`judge-engine journal verify`: a results folder's journal and its score columns, checked."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..sinks import verify
from ._common import Parser

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
        "read, transcripts.jsonl) decompresses to its digest. Exit 0 when all holds, 1 "
        "otherwise.",
    )
    check.add_argument("out", metavar="OUT", help="a results folder a grade run wrote")


def run(args: argparse.Namespace, argv: list[str]) -> int:
    report = verify(Path(args.out))
    print(
        f"{report.records:,} journal records for {report.keys:,} requests: {report.verdicts:,} "
        f"verdicts, {report.failures:,} failures, {report.skips:,} guard skips; "
        f"{report.score_rows:,} score rows; {report.transcripts:,} kept transcripts"
    )
    if report.torn_tail:
        print("the last line is torn (a run was killed mid-write); the next run cuts it")
    for problem in report.problems:
        print(f"problem: {problem}")
    print("journal verified: OK" if report.ok else "journal verification FAILED")
    return 0 if report.ok else 1
