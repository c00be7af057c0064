"""`judge-engine grade`: grade sessions with a panel of judges, resumably, at the rate limit."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import anyio

from ..config import GROUPS, Config, ConfigError
from ..endpoints import Keys, resolve_judges
from ..engine import RunResult, grade, resume_command
from ..gateway import safe_url
from ..redact import Secrets
from ._common import (
    RefuseKeyFlag,
    UsageError,
    add_options,
    api_key,
    build_config,
    writable_folder,
)

#: Sources may follow the options.
TAKES_SOURCES = True
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
EXIT_CODES = {
    "done": 0,
    "incomplete": 1,
    "max_cost": 1,
    "submitted": 0,
    "interrupted": 130,
    "error": 2,
}


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
    judges = resolve_judges(config)
    try:
        keys = Keys.of(judges, key, config.gateway.api_key_env)
    except ConfigError as exc:
        gateway = config.gateway.api_key_env
        local = f"${gateway}" in str(exc)
        hint = " (for a local gateway without keys, any value will do)" if local else ""
        raise UsageError(f"{exc}{hint}") from None
    for name, judge in judges.items():
        if "says its vendor" in judge.chosen:
            print(
                f"judge-engine: judge {name} goes to {judge.provider.name} "
                f"({safe_url(judge.base_url)}, key ${judge.provider.api_key_env}): its name "
                "says its vendor and no --base-url names a gateway",
                file=sys.stderr,
            )
    panel = config.panel
    if panel.repeats > 1 and panel.temperature == 0:
        print(
            "judge-engine: note: --repeats with temperature 0 measures only the provider's "
            "nondeterminism; set --temperature to sample",
            file=sys.stderr,
        )
    every_key = [k for k in (key, *keys.values()) if k]
    resume = resume_command(argv, Secrets(every_key, [url, *(j.base_url for j in judges.values())]))
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
    if _nothing_done(result):
        for source in result.empty_sources:
            print(f"judge-engine: warning: no session in {source}", file=sys.stderr)
        rejected = f", {result.rejected:,} rejected rows" if result.rejected else ""
        print(
            f"nothing to do: the {result.already_done:,} sessions of the sources already have "
            f"their verdicts in {config.run.out}{rejected} (score columns: "
            f"{Path(config.run.out) / 'scores.jsonl'}, {result.score_rows:,} rows)"
        )
        if result.changed and not config.run.regrade_changed:
            print(f"note: {result.changed:,} of them changed since; --regrade-changed asks again")
        for line in result.canary_lines:
            print(line)
        return EXIT_CODES[result.status]
    print(summary)
    _closing(result, config, resume)
    return EXIT_CODES[result.status]


def _nothing_done(result: RunResult) -> bool:
    """A run that found every session done before and asked nothing."""
    return (
        result.status == "done"
        and result.requests_sent == 0
        and not (result.verdicts or result.failed or result.skipped or result.graded)
        and not (result.sessions_failed or result.not_reached or result.failed_before)
        and result.already_done > 0
    )


def _closing(result: RunResult, config: Config, resume: str) -> None:
    """What the run did, and what to run next: on stdout, after the summary."""
    out = Path(config.run.out)
    for source in result.empty_sources:
        print(f"judge-engine: warning: no session in {source}", file=sys.stderr)
    if result.sources_not_read:
        print(f"judge-engine: {result.sources_not_read:,} sources not read yet", file=sys.stderr)
    if result.moved_aside:
        print(f"\n--fresh: the earlier journal was moved to {result.moved_aside} (kept, not read)")
    counts = [
        f"{result.graded:,} graded",
        f"{result.sessions_skipped:,} skipped by the guard" if result.sessions_skipped else "",
        f"{result.already_done:,} already done",
        f"{result.sessions_failed:,} failed",
        f"{result.sessions_submitted:,} submitted (in batches at the server)"
        if result.sessions_submitted
        else "",
        f"{result.not_reached:,} not reached",
    ]
    print(
        f"\nsessions: {', '.join(c for c in counts if c)}; "
        f"{result.rejected:,} rejected rows ({out / 'rejected.jsonl'})\n"
        f"score columns: {out / 'scores.jsonl'} ({result.score_rows:,} rows)"
    )
    if result.conflicting:
        print(
            f"\n{result.conflicting:,} requests were answered twice, differently, in a batch's "
            "files (conflicting_answers): neither answer was taken, and they were asked again"
        )
    for slot, count in result.skipped_slots.items():
        reason = result.skip_reasons.get(slot, "")
        why = reason[reason.find("left (") + 6 : -1] if "left (" in reason else ""
        excluded = f" ({why})" if why and "no --fallback-judge" not in why else ""
        print(
            f"\nthe guard skipped slot {slot} on {count:,} sessions its own model produced"
            f"{excluded}; add --fallback-judge MODEL (a model that made none of them) to "
            "grade them"
        )
    if result.submitted:
        print(
            f"\n{result.submitted:,} requests wait in batches at the server (see them with "
            f"judge-engine batches {out}); collect their answers with the same command:\n"
            f"  {_without(resume, '--no-wait')}"
        )
    elif result.stopped == "signal" and config.batch.batch:
        _stopped(
            "stopped by a signal (the batches already submitted go on at the server)",
            result,
            resume,
        )
    elif result.stopped == "signal":
        _stopped("stopped by a signal", result, resume)
    elif result.stopped == "max_cost":
        spent = result.spent_before + (result.cost_usd or 0.0)
        _stopped(
            f"stopped before passing --max-cost ${config.run.max_cost:,.4f}, the cap of "
            f"everything runs on {out} spend: they have spent ${spent:,.4f} "
            f"(${result.spent_before:,.4f} before this run); raise it to go on",
            result,
            resume,
        )
    elif result.lacking and not result.submitted:
        _lacking(result, resume)
    if result.changed and not config.run.regrade_changed:
        print(
            f"\nnote: {result.changed:,} sessions graded before have changed since (their "
            f"rows differ); their verdicts are kept. Grade them again with:\n  "
            f"{_with(resume, '--regrade-changed')}"
        )


def _stopped(why: str, result: RunResult, resume: str) -> None:
    left = f"{result.not_reached:,} sessions taken were not finished"
    if result.sources_left:
        left += " and the rest of the sources was not read"
    print(f"\n{why}: {left}; every answer received is saved. Resume with:\n  {resume}")


def _lacking(result: RunResult, resume: str) -> None:
    """How many sessions lack a verdict, why, and the command for each kind."""
    print(f"\n{result.lacking:,} sessions lack a verdict.")
    if result.failed_transient:
        print(
            f"{result.failed_transient:,} requests failed in a way another try may pass "
            "(connection, timeout, 5xx, 429); run the same command again to ask them:\n"
            f"  {resume}"
        )
    permanent = result.failed - result.failed_transient + result.failed_before
    if permanent:
        earlier = f" ({result.failed_before:,} in an earlier run)" if result.failed_before else ""
        print(
            f"{permanent:,} requests failed for good{earlier} (a 4xx, a verdict never "
            "parsed: see the reasons above and in the journal); ask them again with:\n"
            f"  {_with(resume, '--retry-failed')}"
        )
    if result.not_reached:
        print(f"{result.not_reached:,} sessions were not reached; resume with:\n  {resume}")


def _without(command: str, flag: str) -> str:
    return " ".join(part for part in command.split(" ") if part != flag)


def _with(command: str, flag: str) -> str:
    return command if flag in command.split() else f"{command} {flag}"
