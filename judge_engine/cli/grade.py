"""`judge-engine grade`: grade sessions with a panel of judges, resumably, at the rate limit."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import anyio

from ..config import GROUPS, Config, ConfigError
from ..engine import RunResult, grade, resume_command
from ..redact import Secrets
from ._common import (
    RefuseKeyFlag,
    UsageError,
    add_options,
    api_key,
    build_config,
    writable_folder,
)

NAME = "grade"
HELP = "grade sessions with one or more LLM judges, resumably, at the rate limit"
DESCRIPTION = """\
Grade every session with every judge (several --judge make a panel) through an
OpenAI-compatible gateway, within --rpm/--tpm and the limits the server announces.
A judge never grades a session its own model produced: that slot goes to the first
--fallback-judge that did not, or is skipped ("self-grading").

Every answer is made durable in OUT/journal.jsonl before its worker takes more work,
so a run killed at any moment resumes where it stopped when the same command runs
again; a finished run re-run sends nothing. Verdicts stream to OUT/scores.jsonl, one
row per session and judge slot, keyed for upsert onto the sessions' root spans.

The API key is read from $OPENAI_API_KEY (or the variable --api-key-env names), never
from a flag or a file. Options may also come from --config FILE: TOML with keys named
as the long options (judge = ["gpt-4.1"], rpm = 500), grouped in tables or not, or a
run's own OUT/run.json; flags win."""

#: Exit codes by how a run ended (`engine.STATUSES`).
EXIT_CODES = {"done": 0, "incomplete": 1, "max_cost": 1, "interrupted": 130, "error": 2}


def add(parser: argparse.ArgumentParser) -> None:
    add_options(parser, list(GROUPS))
    parser.add_argument("--api-key", nargs="?", action=RefuseKeyFlag, help=argparse.SUPPRESS)
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="read options from a TOML file, or a run's run.json (flags win)",
    )


def config_from(args: argparse.Namespace) -> Config:
    config = build_config(args, list(GROUPS), args.config, need_sources=False)
    try:
        config.check_gradable()
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    writable_folder(config.run.out, "--out")
    return config


def run(args: argparse.Namespace, argv: list[str]) -> int:
    config = config_from(args)
    key = api_key(config)
    url = config.gateway.url
    if key is None and "@" not in url.split("//", 1)[-1].split("/", 1)[0]:
        raise UsageError(
            f"no API key: set ${config.gateway.api_key_env} (for a local gateway without "
            "keys, any value will do)"
        )
    panel = config.panel
    if panel.repeats > 1 and panel.temperature == 0:
        print(
            "judge-engine: note: --repeats with temperature 0 measures only the provider's "
            "nondeterminism; set --temperature to sample",
            file=sys.stderr,
        )
    resume = resume_command(argv, Secrets(key, url))
    result, summary = anyio.run(lambda: grade(config, key, resume_command=resume))
    if result.status == "error":
        print(f"judge-engine: error: {result.message}", file=sys.stderr)
        if result.verdicts:
            print(
                f"{result.verdicts:,} verdicts were made durable before the error; "
                f"resume with: {resume}",
                file=sys.stderr,
            )
        return EXIT_CODES["error"]
    print(summary)
    _closing(result, config, resume)
    return EXIT_CODES[result.status]


def _closing(result: RunResult, config: Config, resume: str) -> None:
    out = Path(config.run.out)
    print(
        f"\n{result.sessions:,} sessions ({result.already_done:,} already done), "
        f"{result.rejected:,} rejected rows ({out / 'rejected.jsonl'})\n"
        f"score columns: {out / 'scores.jsonl'} ({result.score_rows:,} rows)"
    )
    if result.stopped == "signal":
        print(f"\nstopped by a signal; everything finished is saved. Resume with:\n  {resume}")
    elif result.stopped == "max_cost":
        print(
            f"\nstopped before passing --max-cost; resume (with a higher limit) with:\n  {resume}"
        )
    elif result.failed:
        print(
            f"\n{result.failed:,} requests failed for good; ask them again with:\n  "
            f"{resume} --retry-failed"
        )
    if result.changed and not config.run.regrade_changed:
        print(
            f"\nnote: {result.changed:,} sessions graded before have changed since (their "
            f"rows differ); their verdicts are kept. Grade them again with:\n  "
            f"{resume} --regrade-changed"
        )
