"""`judge-engine export`: the score columns, one row per session, for joining or upserting."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..sinks import EXPORT_FORMATS, export
from ._common import UsageError, writable_file

NAME = "export"
#: The positional a command line may give after the options (`--to rows FILE`).
TRAILING = "target"
HELP = "write the score columns, one row per session, as Parquet, CSV, JSONL or Braintrust"
DESCRIPTION = """\
Write one row per session from OUT's journal: for each judge slot its success,
confidence, reasoning, judge model and status, and task_success (the first slot),
keyed by session_id: ready to join onto the source dataset (datasets' add_column, a SQL
join) or, with --to braintrust, to merge-upsert onto the sessions' root spans (every
slot under its own score name). Each slot's failure mode, step and note, and the
rubric's other criteria (criterion:NAME), are columns too.

--where KEY=VALUE (or KEY!=VALUE; several combine with AND) keeps the sessions it
picks. Keys: benchmark, harness, agent_model, session_id, success (0/1, the first
slot's verdict), failure_mode (the first slot's code), judge (SLOT:0 or SLOT:1),
judge_vs_label (agree or disagree, the first slot against the label; --labels FILE
adds labels to the rows' own) and topic (an id from judge-engine topics).

--to rows FILE writes the picked sessions' source rows as they were read, ready to
become a targeted eval set: JSON-lines sources line for line, byte for byte; a Parquet
source as Parquet with its own schema (FILE ending .parquet); other sources as JSON
lines:

  judge-engine export OUT --where failure_mode=step_repetition --to rows loops.jsonl"""


def add(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", metavar="OUT", help="a results folder a grade run wrote")
    parser.add_argument("target", nargs="?", metavar="FILE", help="where to write (as --file)")
    parser.add_argument(
        "--to",
        choices=(*EXPORT_FORMATS, "rows"),
        default="parquet",
        help="format (default parquet); rows: the picked sessions' source rows as read",
    )
    parser.add_argument(
        "--where",
        action="append",
        metavar="KEY=VALUE",
        help="keep the sessions it picks (KEY!=VALUE too; repeatable, combined with AND)",
    )
    parser.add_argument(
        "--labels", metavar="FILE", help="labels for --where judge_vs_label=... (the file wins)"
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
    from ..selection import SelectionError, Where

    if args.target and args.file and args.target != args.file:
        raise UsageError("give the output once: FILE or --file")
    args.file = args.file or args.target
    try:
        wheres = [Where.parse(text) for text in args.where or ()]
    except SelectionError as exc:
        raise UsageError(str(exc)) from None
    if args.to == "rows" or wheres:
        return _rows(args, wheres)
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


def _rows(args: argparse.Namespace, wheres: list[Any]) -> int:
    from ..measure import LabelsError, read_labels
    from ..selection import SelectionError, select, write_rows

    out = Path(args.out)
    if args.to != "rows":
        raise UsageError("--where picks sessions for --to rows FILE (their source rows)")
    if not args.file or args.file == "-":
        raise UsageError("--to rows needs a FILE to write (.jsonl, or .parquet)")
    target = writable_file(args.file, "--to rows", out)
    try:
        labels = read_labels(Path(args.labels)).by_session if args.labels else None
        sessions = select(out, wheres, labels)
        written, missing = write_rows(out, sessions, target)
    except (FileNotFoundError, SelectionError, LabelsError) as exc:
        raise UsageError(str(exc)) from None
    print(f"{len(sessions):,} sessions picked; {written:,} source rows -> {target}")
    if missing:
        print(
            f"judge-engine: {len(missing):,} of them were not found in their sources (graded "
            f"before transcripts were kept, or the source moved): {', '.join(missing[:5])}",
            file=sys.stderr,
        )
    return 0
