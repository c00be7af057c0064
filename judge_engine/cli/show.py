"""`judge-engine show`: what the judge reads for one session, and how its trace was read."""

from __future__ import annotations

import argparse

from ..plan import Planner
from ..rubrics import RubricSet
from ..sessions import Session
from ..show import describe
from ._common import UsageError, add_options, build_config, read

#: Sources may follow the options.
TAKES_SOURCES = True
NAME = "show"
HELP = "print what the judge will read for one session, and how its trace was read"
DESCRIPTION = """\
Read the sources until the session with this id, and print the user message the judge
would receive for it (no network), which message was taken as the task, which calls
were left out as side calls and why, and what was replaced (binary parts) or counted
(failed calls, empty messages)."""


def add(parser: argparse.ArgumentParser) -> None:
    add_options(parser, ["sources", "request"])
    parser.add_argument("--session", required=True, metavar="ID", help="the session id to show")
    parser.add_argument(
        "--judge", action="append", metavar="MODEL",
        help="the judge of the body shown (default gpt-4.1)",
    )  # fmt: skip
    parser.add_argument("--system", action="store_true", help="print the system message too")


def run(args: argparse.Namespace, argv: list[str]) -> int:
    config = build_config(args, ["sources", "request"]).replace(
        judge=tuple(args.judge or ("gpt-4.1",)), guard="off"
    )
    options = config.sources
    planner = Planner(config.panel, config.request, RubricSet.load(config.request.rubrics))
    for item in read(options, options.sources):
        if isinstance(item, Session) and item.session_id == args.session:
            rendered = planner.render(planner.plan(item))
            if not rendered.asks:
                reason = rendered.records[0].error if rendered.records else "nothing to send"
                raise UsageError(f"session {args.session!r} cannot be rendered: {reason}")
            print(describe(item, rendered.asks[0].request, system=args.system))
            return 0
    raise UsageError(f"no session {args.session!r} in {', '.join(options.sources)}")
