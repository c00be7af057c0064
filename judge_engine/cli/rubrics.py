"""`judge-engine rubrics`: the rubrics, their versions and the benchmarks they answer to."""

from __future__ import annotations

import argparse

from ..rubrics import RubricSet

NAME = "rubrics"
HELP = "list the rubrics with their versions and aliases"
DESCRIPTION = """\
List every rubric (built in, or from --rubrics DIR) with its version (a hash of its
file) and the benchmark spellings it answers to."""


def add(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rubrics", metavar="DIR", help="a folder of your own rubric .toml files")


def run(args: argparse.Namespace, argv: list[str]) -> int:
    for rubric in RubricSet.load(args.rubrics):
        aliases = ", ".join(rubric.aliases) or "-"
        print(f"{rubric.name:<16} {rubric.version}  {rubric.title}")
        print(f"{'':<16} aliases: {aliases}")
        print(f"{'':<16} file: {rubric.path}")
    return 0
