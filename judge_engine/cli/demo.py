"""`judge-engine demo`: the bundled samples, graded against the simulator, then resumed."""

from __future__ import annotations

import argparse
from pathlib import Path

import anyio

from ._common import writable_folder

NAME = "demo"
HELP = "grade the bundled samples against the local simulator, then resume (offline)"
DESCRIPTION = """\
Start the simulator on a free loopback port, grade the bundled sample sessions (every
format) with a two-judge panel and a fallback judge, print the summary and where the
score columns are, then run again to show that a finished run resumes with no request.
With --batch, the same through the simulator's Batch API at half price: the requests
submitted as batches with --no-wait, the batches listed, then collected by the same
command. No network, no key."""


def add(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", default="out/demo", metavar="DIR", help="results folder (default out/demo)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--batch", action="store_true", help="grade through the Batch API (see grade --batch)"
    )


def run(args: argparse.Namespace, argv: list[str]) -> int:
    from ..demo import run_demo  # imported here: other commands start faster

    out = writable_folder(args.out, "--out")
    return anyio.run(lambda: run_demo(Path(out), quiet=args.quiet, batch=args.batch))
