"""`judge-engine export`: the score columns, one row per session, for joining or upserting."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..sinks import EXPORT_FORMATS, export
from ._common import UsageError, writable_file

NAME = "export"
HELP = "write the score columns, one row per session, as Parquet, CSV, JSONL or Braintrust"
DESCRIPTION = """\
Write one row per session from OUT's journal: for each judge slot its success,
confidence, reasoning, judge model and status, and task_success (the first slot),
keyed by session_id: ready to join onto the source dataset (datasets' add_column, a SQL
join) or, with --to braintrust, to merge-upsert onto the sessions' root spans (every
slot under its own score name)."""


def add(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", metavar="OUT", help="a results folder a grade run wrote")
    parser.add_argument(
        "--to", choices=EXPORT_FORMATS, default="parquet", help="format (default parquet)"
    )
    parser.add_argument(
        "--file",
        metavar="PATH",
        help="where to write (default OUT/scores-by-session.*; - for stdout)",
    )
    parser.add_argument(
        "--all-judges",
        action="store_true",
        help="a column group for every judge slot in the journal, not only the current panel's",
    )


def run(args: argparse.Namespace, argv: list[str]) -> int:
    to_stdout = args.file == "-"
    target = (
        writable_file(args.file, "--file", Path(args.out)) if args.file and not to_stdout else None
    )
    try:
        path, rows = export(
            Path(args.out),
            args.to,
            target,
            all_judges=args.all_judges,
            stream=sys.stdout.buffer if to_stdout else None,
        )
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    print(
        f"{rows:,} sessions -> {'stdout' if to_stdout else path}",
        file=sys.stderr if to_stdout else sys.stdout,
    )
    return 0
