"""`judge-engine show`: what the judge reads for one session, and how its trace was read."""

from __future__ import annotations

import argparse
import difflib
from pathlib import Path

from .. import transcripts
from ..journal import JOURNAL
from ..plan import Planner
from ..results import open_results
from ..rubrics import RubricSet
from ..sessions import Session
from ..show import describe, describe_graded
from ._common import UsageError, add_options, build_config, read

#: Sources may follow the options.
TAKES_SOURCES = True
NAME = "show"
HELP = "print what the judge will read for one session, and how its trace was read"
DESCRIPTION = """\
Read the sources until the session with this id, and print the user message the judge
would receive for it (no network), which message was taken as the task, which calls
were left out as side calls and why, and what was replaced (binary parts) or counted
(failed calls, empty messages).

Given a results folder (OUT) instead of sources, show the session as the run graded
it: every judge's verdict, confidence and reasoning, and the user message the judges
read, exactly as the run kept it (OUT/transcripts.jsonl), not rendered again."""


def add(parser: argparse.ArgumentParser) -> None:
    add_options(parser, ["sources", "request"])
    parser.add_argument("--session", required=True, metavar="ID", help="the session id to show")
    parser.add_argument(
        "--judge", action="append", metavar="MODEL",
        help="the judge of the body shown (default gpt-4.1)",
    )  # fmt: skip
    parser.add_argument("--system", action="store_true", help="print the system message too")


def run(args: argparse.Namespace, argv: list[str]) -> int:
    given = getattr(args, "sources", None) or []
    if len(given) == 1 and (Path(given[0]) / JOURNAL).is_file():
        return _graded(Path(given[0]), args.session)
    config = build_config(args, ["sources", "request"]).replace(
        judge=tuple(args.judge or ("gpt-4.1",)), guard="off"
    )
    options = config.sources
    planner = Planner(config.panel, config.request, RubricSet.load(config.request.rubrics))
    seen = _Nearest(args.session)
    for item in read(options, options.sources):
        if isinstance(item, Session):
            seen.add(item.session_id)
        if isinstance(item, Session) and item.session_id == args.session:
            rendered = planner.render(planner.plan(item))
            if not rendered.asks:
                reason = rendered.records[0].error if rendered.records else "nothing to send"
                raise UsageError(f"session {args.session!r} cannot be rendered: {reason}")
            print(describe(item, rendered.asks[0].request, system=args.system))
            return 0
    raise UsageError(
        f"no session {args.session!r} in {', '.join(options.sources)}{seen.suggestion()}"
    )


class _Nearest:
    """The ids closest to one that is not there, kept while the sources stream by (at
    most `_KEEP` candidates held, the closest by difflib's ratio)."""

    _KEEP = 3

    def __init__(self, wanted: str) -> None:
        self.wanted = wanted
        self.best: list[tuple[float, str]] = []
        self._matcher = difflib.SequenceMatcher(b=wanted)

    def add(self, candidate: str) -> None:
        matcher = self._matcher
        matcher.set_seq1(candidate)
        if matcher.real_quick_ratio() < 0.5 or matcher.quick_ratio() < 0.5:
            return
        score = matcher.ratio()
        if score >= 0.5 and (score, candidate) not in self.best:
            self.best = sorted([*self.best, (score, candidate)], reverse=True)[: self._KEEP]

    def suggestion(self) -> str:
        if not self.best:
            return " (`judge-engine sessions SOURCE --list` lists the ids)"
        return "; did you mean " + " or ".join(repr(c) for _, c in self.best) + "?"


def _graded(out: Path, session_id: str) -> int:
    view = open_results(out, all_judges=True)
    records = [r for r in view.latest(first_sample=True) if r.session_id == session_id]
    kept = transcripts.find(out, session_id)
    if not records and kept is None:
        seen = _Nearest(session_id)
        for record in view.latest(first_sample=True):
            seen.add(record.session_id)
        raise UsageError(f"no session {session_id!r} in {out}{seen.suggestion()}")
    order = view.slot_order(r.slot for r in records)
    records.sort(key=lambda r: order.index(r.slot) if r.slot in order else len(order))
    print(describe_graded(kept, records, session_id))
    return 0
