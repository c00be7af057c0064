"""The command line: parses arguments and calls into the stages. Nothing else lives here.

Exit codes: 0 all good; 1 some sessions could not be graded; 2 usage, configuration,
source or authentication errors (one clear line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import orjson

from . import __version__
from .gateway import DEFAULT_BASE_URL
from .guard import MODES
from .journal import JournalError, OutLock
from .pricing import parse_price
from .prompt import DEFAULT_MAX_PROMPT_TOKENS, MIN_PROMPT_TOKENS, BudgetError, render_request
from .redact import Secrets
from .rubrics import RubricError, RubricSet
from .sessions import (
    DEFAULT_MAX_ROW_MB,
    FORMATS,
    Census,
    Rejection,
    Session,
    SourceError,
    expand,
    read_sessions,
)
from .sessions.fidelity import MEASURES
from .sinks import EXPORT_FORMATS, JsonlWriter, RejectLog

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

_DESCRIPTION = """\
Grade AI-agent traces with LLM judges through any OpenAI-compatible gateway.

Sources are .jsonl, .json or .parquet files, folders or globs of them, - for stdin,
or hf://OWNER/NAME?config=C&split=S (streamed). Five trace formats are detected per
row: raw OTLP/JSON (an OpenTelemetry Collector's file exporter), OTel GenAI spans
(Exgentic agent-llm-traces), AgentTrace, Hermes ShareGPT and generic OpenAI chat.
"""

_EPILOG = """\
examples:
  judge-engine demo
  judge-engine sessions traces/*.parquet
  judge-engine preview traces/ --judge gpt-4.1-mini --limit 5 --out out/preview
  OPENAI_API_KEY=... judge-engine grade traces/ --judge gpt-4.1 --judge claude-sonnet-4-5 \\
      --fallback-judge gemini-2.5-pro --rpm 500 --out out/run1
  judge-engine export out/run1 --to parquet
  judge-engine rubrics

exit codes: 0 done; 1 some sessions could not be graded (or a stop at --max-cost);
2 usage, configuration, source or authentication errors; 130 interrupted (resumable).
"""


class UsageError(Exception):
    """Bad arguments or configuration: exit 2 with one line."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be positive")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must not be negative")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be positive")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} must be between 0 and 1")
    return value


class _RefuseKeyFlag(argparse.Action):
    """--api-key exists only to say why there is no such flag."""

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        parser.error(
            "the API key is never taken as a flag (it would land in shell history and "
            "process lists): set $OPENAI_API_KEY, or name another variable with --api-key-env"
        )


def _add_source_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "sources", nargs="+", metavar="SOURCE", help="files, folders, globs, - or hf://"
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="force one trace format instead of detecting it per row",
    )
    parser.add_argument(
        "--agent-model",
        metavar="MODEL",
        help="the agent model for rows that name none (e.g. Hermes files read locally)",
    )
    parser.add_argument(
        "--max-row-mb",
        type=_positive_int,
        default=DEFAULT_MAX_ROW_MB,
        metavar="MB",
        help=f"reject rows larger than this, without holding them (default {DEFAULT_MAX_ROW_MB})",
    )


def _add_request_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-prompt-tokens",
        type=_positive_int,
        default=DEFAULT_MAX_PROMPT_TOKENS,
        metavar="N",
        help=f"estimated prompt-token budget per request (default {DEFAULT_MAX_PROMPT_TOKENS:,})",
    )
    parser.add_argument("--rubrics", metavar="DIR", help="a folder of your own rubric .toml files")
    parser.add_argument(
        "--no-redact",
        action="store_true",
        help="send credential shapes found in traces as they are (redacted by default)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="judge-engine",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"judge-engine {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    sessions = commands.add_parser(
        "sessions",
        help="count sessions by format, benchmark, harness and agent model",
        description="Read every source and count its sessions by format, benchmark, harness "
        "and agent model, and the rows that could not become sessions, by reason.",
    )
    _add_source_options(sessions)
    sessions.add_argument("--out", metavar="DIR", help="also write DIR/rejected.jsonl")
    sessions.add_argument("--json", action="store_true", help="print the counts as JSON")

    preview = commands.add_parser(
        "preview",
        help="render the exact judge requests without sending them (no network)",
        description="Render the exact request body every judge would be sent for every "
        "session, without any network. Writes DIR/requests.jsonl (one line per session "
        "and judge: session_id, judge_model, rubric, rubric_version, body) and "
        "DIR/rejected.jsonl.",
    )
    _add_source_options(preview)
    preview.add_argument(
        "--judge", action="append", required=True, metavar="MODEL", help="judge model (repeatable)"
    )
    _add_request_options(preview)
    preview.add_argument(
        "--limit", type=_positive_int, metavar="N", help="only the first N sessions"
    )
    preview.add_argument("--out", default="out", metavar="DIR", help="results folder (default out)")

    show = commands.add_parser(
        "show",
        help="print what the judge will read for one session, and how its trace was read",
        description="Read the sources until the session with this id, and print the user "
        "message the judge would receive for it (no network), which message was taken "
        "as the task, which calls were left out as side calls and why, and what was "
        "replaced (binary parts) or counted (failed calls, empty messages).",
    )
    _add_source_options(show)
    show.add_argument("--session", required=True, metavar="ID", help="the session id to show")
    show.add_argument("--judge", default="gpt-4.1", metavar="MODEL", help="judge model of the body")
    show.add_argument("--system", action="store_true", help="print the system message too")
    _add_request_options(show)

    rubrics = commands.add_parser(
        "rubrics",
        help="list the rubrics with their versions and aliases",
        description="List every rubric (built in, or from --rubrics DIR) with its version "
        "(a hash of its file) and the benchmark spellings it answers to.",
    )
    rubrics.add_argument("--rubrics", metavar="DIR", help="a folder of your own rubric .toml files")

    _add_grade(commands)

    demo = commands.add_parser(
        "demo",
        help="grade the bundled samples against the local simulator, then resume (offline)",
        description="Start the simulator on a free loopback port, grade the bundled sample "
        "sessions (every format) with a two-judge panel and a fallback judge, print the "
        "summary and where the score columns are, then run again to show that a finished "
        "run resumes with no request. No network, no key.",
    )
    demo.add_argument(
        "--out", default="out/demo", metavar="DIR", help="results folder (default out/demo)"
    )
    demo.add_argument("--quiet", action="store_true", help="no progress bar")

    export = commands.add_parser(
        "export",
        help="write the score columns, one row per session, as Parquet, CSV, JSONL or Braintrust",
        description="Write one row per session from OUT's journal: for each judge slot its "
        "success, confidence, reasoning, judge model and status, and task_success (the first "
        "slot), keyed by session_id: ready to join onto the source dataset (datasets' "
        "add_column, a SQL join) or, with --to braintrust, to merge-upsert onto the sessions' "
        "root spans (every slot under its own score name).",
    )
    export.add_argument("out", metavar="OUT", help="a results folder a grade run wrote")
    export.add_argument(
        "--to", choices=EXPORT_FORMATS, default="parquet", help="format (default parquet)"
    )
    export.add_argument(
        "--file", metavar="PATH", help="where to write (default OUT/scores-by-session.*)"
    )

    journal = commands.add_parser(
        "journal",
        help="check a results folder: the journal's integrity and its score columns",
        description="Work on a results folder's journal.",
    )
    journal_commands = journal.add_subparsers(
        dest="journal_command", metavar="ACTION", required=True
    )
    verify = journal_commands.add_parser(
        "verify",
        help="check the journal's integrity and its agreement with scores.jsonl",
        description="Check that every journal line parses, carries valid fields and the key "
        "its own fields hash to; that no request holds two verdicts; and that scores.jsonl "
        "holds exactly one row per (session, judge slot), each equal to what the journal's "
        "latest record gives. Exit 0 when all holds, 1 otherwise.",
    )
    verify.add_argument("out", metavar="OUT", help="a results folder a grade run wrote")

    agree = commands.add_parser(
        "agree",
        help="how far the judges agree: kappa with intervals, majority, labels, calibration",
        description="Agreement over the verdicts in OUT, by the model that actually judged "
        "(a fallback counts as itself): per pair of judges n, percent agreement, Cohen's "
        "kappa with a 95%% bootstrap interval and the confusion matrix; Fleiss' kappa and "
        "Krippendorff's alpha across all judges; the majority verdict and how often each "
        "judge sides with it; repeat stability (grade --repeats); accuracy, precision, "
        "recall, F1 and kappa against labels (--labels FILE, or a label column the source "
        "carries); agreement by stated confidence.",
    )
    agree.add_argument("out", metavar="OUT", help="a results folder a grade run wrote")
    agree.add_argument(
        "--by",
        choices=("benchmark", "harness", "none"),
        default="none",
        help="repeat everything per benchmark or harness",
    )
    agree.add_argument(
        "--labels",
        metavar="FILE",
        help="JSONL ({session_id, label}) or CSV (session_id,label) of 0/1 labels",
    )
    agree.add_argument("--json", metavar="FILE", help="also write the figures as JSON")

    report = commands.add_parser(
        "report",
        help="success rates by benchmark, harness and agent model, with intervals and cost",
        description="Success rate per benchmark x harness x agent model with n and Wilson 95%% "
        "intervals (cells under --min-n marked); per configuration the pooled rate beside the "
        "benchmark-balanced rate; the agents' tokens and cost per task and per success; "
        "optionally PNG charts.",
    )
    report.add_argument("out", metavar="OUT", help="a results folder a grade run wrote")
    which = report.add_mutually_exclusive_group()
    which.add_argument(
        "--judge",
        metavar="SLOT",
        help="the judge slot whose verdicts count "
        "(default: the first slot, the task_success column)",
    )
    which.add_argument(
        "--majority",
        action="store_true",
        help="count the majority verdict of the judge models (ties left out)",
    )
    report.add_argument(
        "--min-n",
        type=_positive_int,
        default=10,
        metavar="N",
        help="mark cells with fewer sessions (default 10)",
    )
    report.add_argument("--format", choices=("md", "csv"), default="md", help="output format")
    report.add_argument(
        "--plots", metavar="DIR", help="write PNG charts into DIR (needs matplotlib)"
    )
    report.add_argument(
        "--price",
        action="append",
        metavar="MODEL=IN,OUT",
        help="agent-model price in USD per million tokens (repeatable)",
    )

    sim = commands.add_parser(
        "sim",
        help="run the judge-gateway simulator on loopback (not a real model)",
        description="A local OpenAI-compatible server for demos, tests and benchmarks. It is "
        "not a model: verdicts are read from the trace by fixed rules (the final assistant "
        "message decides; each judge model flips a few sessions so panels disagree a "
        "little). It enforces its own rate limit and injects faults on request.",
    )
    sim.add_argument(
        "--port", type=_non_negative_int, default=8900, help="port on 127.0.0.1 (default 8900)"
    )
    sim.add_argument(
        "--latency-ms", type=float, default=0.0, metavar="MS", help="reply latency (±20%%)"
    )
    sim.add_argument(
        "--rpm", type=_positive_int, metavar="N", help="accept at most N requests in any 60 s"
    )
    sim.add_argument(
        "--fail-rate", type=_rate, default=0.0, metavar="F", help="share of 5xx replies"
    )
    sim.add_argument(
        "--throttle-rate",
        type=_rate,
        default=0.0,
        metavar="F",
        help="share of injected 429s (Retry-After)",
    )
    sim.add_argument(
        "--throttle-reset-rate",
        type=_rate,
        default=0.0,
        metavar="F",
        help="share of injected 429s with reset headers only",
    )
    sim.add_argument(
        "--drop-rate", type=_rate, default=0.0, metavar="F", help="share of dropped connections"
    )
    sim.add_argument(
        "--malformed-rate",
        type=_rate,
        default=0.0,
        metavar="F",
        help="share of malformed or cut-off verdicts",
    )
    sim.add_argument(
        "--hostile-rate",
        type=_rate,
        default=0.0,
        metavar="F",
        help="share of hostile replies: forged or quoted verdicts, absurd rate-limit "
        "headers, the key echoed back, gzip bodies, JSON nested 100,000 deep",
    )
    sim.add_argument(
        "--slow-rate",
        type=_rate,
        default=0.0,
        metavar="F",
        help="share of replies delayed by --slow-s",
    )
    sim.add_argument(
        "--slow-s", type=float, default=30.0, metavar="S", help="delay of slow replies (default 30)"
    )
    sim.add_argument(
        "--no-rate-headers", action="store_true", help="do not announce x-ratelimit-* headers"
    )
    sim.add_argument(
        "--limit-hint",
        choices=("retry-after", "reset"),
        default="retry-after",
        help="how a 429 over the limit says when to retry",
    )
    sim.add_argument(
        "--disagreement",
        type=_rate,
        default=0.08,
        metavar="F",
        help="share of sessions a judge reads the other way",
    )
    sim.add_argument("--seed", type=int, default=0, help="seed of the fault draws")
    _no_abbreviations(parser)
    return parser


def _no_abbreviations(parser: argparse.ArgumentParser) -> None:
    """Refuse abbreviated long options in every command: `--fre` must not pass for
    `--fresh` (or vanish from a resume command that drops `--fresh`)."""
    parser.allow_abbrev = False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _no_abbreviations(sub)


#: grade options that may also come from --config FILE, and their converters.
_CONFIG_OPTIONS: dict[str, Callable[[Any], Any]] = {
    "sources": list,
    "judge": list,
    "fallback_judge": list,
    "base_url": str,
    "api_key_env": str,
    "out": str,
    "concurrency": int,
    "rpm": float,
    "tpm": int,
    "max_retries": int,
    "timeout": float,
    "max_prompt_tokens": int,
    "guard": str,
    "max_cost": float,
    "price": list,
    "limit": int,
    "retry_failed": bool,
    "regrade_changed": bool,
    "quiet": bool,
    "format": str,
    "agent_model": str,
    "max_row_mb": int,
    "rubrics": str,
    "no_redact": bool,
    "repeats": int,
    "temperature": float,
    "max_output_tokens": int,
    "allow_model_mismatch": bool,
    "grace": float,
}


def _add_grade(commands: Any) -> None:
    grade = commands.add_parser(
        "grade",
        help="grade sessions with one or more LLM judges, resumably, at the rate limit",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Grade every session with every judge (several --judge make a panel) through an
OpenAI-compatible gateway, within --rpm/--tpm and the limits the server announces.
A judge never grades a session its own model produced: that slot goes to the first
--fallback-judge that did not, or is skipped ("self-grading").

Every finished request is made durable in OUT/journal.jsonl before it counts, so a
run killed at any moment resumes where it stopped when the same command runs again;
a finished run re-run sends nothing. Verdicts stream to OUT/scores.jsonl, one row per
session and judge slot, keyed for upsert onto the sessions' root spans.

The API key is read from $OPENAI_API_KEY (or the variable --api-key-env names), never
from a flag or a file. Options may also come from --config FILE (TOML, keys named as
the long options, e.g. judge = ["gpt-4.1"], rpm = 500); flags win.""",
    )
    grade.add_argument(
        "sources", nargs="*", metavar="SOURCE", help="files, folders, globs, - or hf://"
    )
    judges = grade.add_argument_group("judges")
    judges.add_argument(
        "--judge", action="append", metavar="MODEL", help="judge model (repeat for a panel)"
    )
    judges.add_argument(
        "--fallback-judge",
        action="append",
        metavar="MODEL",
        help="takes a slot whose judge produced the session (repeatable, in order)",
    )
    judges.add_argument(
        "--guard",
        choices=MODES,
        help="self-grading guard: model (default), vendor (no vendor grades its own "
        "vendor's runs) or off",
    )
    judges.add_argument(
        "--repeats",
        type=_positive_int,
        metavar="K",
        help="ask each judge K times per session (needs --temperature > 0 or a "
        "nondeterministic provider)",
    )
    judges.add_argument(
        "--temperature", type=float, metavar="T", help="judge sampling temperature (default 0)"
    )
    judges.add_argument(
        "--max-output-tokens",
        type=_positive_int,
        metavar="N",
        help="max_tokens for each verdict (default: the provider's)",
    )
    gateway = grade.add_argument_group("gateway and limits")
    gateway.add_argument(
        "--base-url",
        metavar="URL",
        help=f"OpenAI-compatible endpoint (default $OPENAI_BASE_URL, else {DEFAULT_BASE_URL})",
    )
    gateway.add_argument(
        "--api-key-env",
        metavar="NAME",
        help="the environment variable holding the key (default OPENAI_API_KEY)",
    )
    gateway.add_argument("--api-key", nargs="?", action=_RefuseKeyFlag, help=argparse.SUPPRESS)
    gateway.add_argument(
        "--concurrency",
        type=_positive_int,
        metavar="N",
        help="requests in flight at most (default 64)",
    )
    gateway.add_argument(
        "--rpm", type=_positive_float, metavar="N", help="requests per minute, never exceeded"
    )
    gateway.add_argument(
        "--tpm",
        type=_positive_int,
        metavar="N",
        help="tokens per minute, never exceeded (estimated, corrected by usage)",
    )
    gateway.add_argument(
        "--max-retries",
        type=_non_negative_int,
        metavar="N",
        help="retries per request for 408/409/429/5xx, timeouts, drops and unparseable "
        "verdicts (default 6)",
    )
    gateway.add_argument(
        "--timeout", type=_positive_float, metavar="S", help="seconds per request (default 120)"
    )
    gateway.add_argument(
        "--allow-model-mismatch",
        action="store_true",
        default=None,
        help="accept replies that name another model than asked (e.g. Azure deployment "
        "names); the served model is recorded",
    )
    requests = grade.add_argument_group("requests")
    requests.add_argument(
        "--max-prompt-tokens",
        type=_positive_int,
        metavar="N",
        help=f"estimated prompt-token budget per request (default {DEFAULT_MAX_PROMPT_TOKENS:,})",
    )
    requests.add_argument(
        "--rubrics", metavar="DIR", help="a folder of your own rubric .toml files"
    )
    requests.add_argument(
        "--no-redact",
        action="store_true",
        default=None,
        help="send credential shapes found in traces as they are",
    )
    requests.add_argument("--format", choices=FORMATS, help="force one trace format")
    requests.add_argument(
        "--agent-model", metavar="MODEL", help="the agent model for rows that name none"
    )
    requests.add_argument(
        "--max-row-mb",
        type=_positive_int,
        metavar="MB",
        help=f"reject rows larger than this, without holding them (default {DEFAULT_MAX_ROW_MB})",
    )
    run = grade.add_argument_group("the run")
    run.add_argument("--out", metavar="DIR", help="results folder (default out)")
    run.add_argument("--limit", type=_positive_int, metavar="N", help="only the first N sessions")
    run.add_argument(
        "--fresh", action="store_true", default=None, help="start over: forget the journal in OUT"
    )
    run.add_argument(
        "--retry-failed",
        action="store_true",
        default=None,
        help="ask again the requests that failed for good last time",
    )
    run.add_argument(
        "--regrade-changed",
        action="store_true",
        default=None,
        help="ask again the sessions graded before whose row has changed since (by "
        "default their verdicts are kept, and the run says how many changed)",
    )
    run.add_argument(
        "--max-cost",
        type=_positive_float,
        metavar="USD",
        help="stop taking sessions before the spend would pass USD (resumable)",
    )
    run.add_argument(
        "--price",
        action="append",
        metavar="MODEL=IN,OUT",
        help="USD per million input/output tokens, overriding the built-in table",
    )
    run.add_argument(
        "--grace",
        type=_positive_float,
        metavar="S",
        help="seconds requests in flight get to finish after Ctrl-C (default 10)",
    )
    run.add_argument("--quiet", action="store_true", default=None, help="no progress bar")
    run.add_argument("--config", metavar="FILE", help="read options from a TOML file (flags win)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "sessions":
            return _sessions(args)
        if args.command == "preview":
            return _preview(args)
        if args.command == "rubrics":
            return _rubrics(args)
        if args.command == "show":
            return _show(args)
        if args.command == "grade":
            return _grade(args, list(argv) if argv is not None else sys.argv[1:])
        if args.command == "demo":
            return _demo(args)
        if args.command == "export":
            return _export(args)
        if args.command == "sim":
            return _sim(args)
        if args.command == "agree":
            return _agree(args)
        if args.command == "journal":
            return _journal_verify(args)
        if args.command == "report":
            return _report(args)
    except (UsageError, SourceError, RubricError, BudgetError, JournalError) as exc:
        print(f"judge-engine: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("judge-engine: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: one scrubbed line, never the key
        print(
            f"judge-engine: internal error: {type(exc).__name__}: {_scrub(str(exc), args)}",
            file=sys.stderr,
        )
        if os.environ.get("JUDGE_ENGINE_DEBUG"):
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            print(_scrub(text, args), file=sys.stderr)
        else:
            print(
                "judge-engine: set JUDGE_ENGINE_DEBUG=1 for the traceback; finished work "
                "is in the journal and a re-run resumes",
                file=sys.stderr,
            )
        return 70
    parser.error(f"unknown command {args.command}")  # exits


def _scrub(text: str, args: argparse.Namespace) -> str:
    """Text fit to print: credential shapes, the key and the base URL's credentials
    removed."""
    key = os.environ.get(getattr(args, "api_key_env", None) or "OPENAI_API_KEY")
    base_url = getattr(args, "base_url", None) or os.environ.get("OPENAI_BASE_URL")
    return Secrets(key, base_url).scrub(text)


def _sessions(args: argparse.Namespace) -> int:
    counts: dict[str, Counter[str]] = {
        key: Counter() for key in ("format", "benchmark", "harness", "agent_model")
    }
    rejected: Counter[str] = Counter()
    fidelity = Census()
    lock = OutLock(Path(args.out)) if args.out else None
    log = RejectLog(Path(args.out)) if args.out else None
    total = 0
    sources = expand(args.sources, exclude=(Path(args.out),) if args.out else ())
    for item in read_sessions(
        sources, fmt=args.format, agent_model=args.agent_model, max_row_mb=args.max_row_mb
    ):
        if isinstance(item, Rejection):
            rejected[item.reason] += 1
            if log:
                log.add(item)
            continue
        total += 1
        fidelity.add(item)
        counts["format"][item.source.format] += 1
        counts["benchmark"][item.benchmark or "unknown"] += 1
        counts["harness"][item.harness or "unknown"] += 1
        for model in item.agent_models or ("unknown",):
            counts["agent_model"][model] += 1
    if log:
        log.close()
    if lock:
        lock.release()
    if args.json:
        payload: dict[str, object] = {k: dict(v.most_common()) for k, v in counts.items()}
        payload.update(sessions=total, rejected=dict(rejected.most_common()))
        payload["fidelity"] = fidelity.to_dict()
        print(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())
        return 0
    print(f"{total:,} sessions, {sum(rejected.values()):,} rejected rows")
    for key, counter in counts.items():
        print(f"\nby {key.replace('_', ' ')}:")
        for name, count in counter.most_common():
            print(f"  {count:>8,}  {name}")
    if total:
        print("\nhow the traces were read (total, and in how many sessions):")
        formats = list(fidelity.sessions)
        print(f"  {'':<52}" + "".join(f"{fmt:>20}" for fmt in formats))
        for name, meaning in MEASURES.items():
            cells = "".join(
                f"{fidelity.totals[fmt][name]:>11,} ({fidelity.affected[fmt][name]:>5,})"
                for fmt in formats
            )
            print(f"  {meaning:<52}{cells}")
    if rejected:
        print("\nrejected rows by reason" + (f" (see {log.path})" if log else "") + ":")
        for reason, count in rejected.most_common():
            print(f"  {count:>8,}  {reason}")
    return 0


def _check_budget(max_prompt_tokens: int) -> None:
    if max_prompt_tokens < MIN_PROMPT_TOKENS:
        raise UsageError(f"--max-prompt-tokens must be at least {MIN_PROMPT_TOKENS:,}")


def _preview(args: argparse.Namespace) -> int:
    _check_budget(args.max_prompt_tokens)
    if len(set(args.judge)) != len(args.judge):
        raise UsageError("each --judge may be given once")
    rubrics = RubricSet.load(args.rubrics)
    out = Path(args.out)
    sessions = 0
    tokens: list[int] = []
    omitted = redactions = 0
    sources = expand(args.sources, exclude=(out,))
    with OutLock(out), RejectLog(out) as log, JsonlWriter(out / "requests.jsonl") as requests:
        for item in read_sessions(
            sources, fmt=args.format, agent_model=args.agent_model, max_row_mb=args.max_row_mb
        ):
            if isinstance(item, Rejection):
                log.add(item)
                continue
            assert isinstance(item, Session)
            rubric = rubrics.for_benchmark(item.benchmark)
            for judge in args.judge:
                request = render_request(
                    item,
                    rubric,
                    judge,
                    max_prompt_tokens=args.max_prompt_tokens,
                    redact=not args.no_redact,
                )
                requests.write(request.preview_line())
                tokens.append(request.prompt_tokens)
                omitted += request.omitted_turns
                redactions += request.redactions
            sessions += 1
            if args.limit and sessions >= args.limit:
                break
    print(f"{sessions:,} sessions -> {requests.count:,} requests in {requests.path}")
    if tokens:
        print(
            f"estimated prompt tokens: mean {sum(tokens) / len(tokens):,.0f}, "
            f"max {max(tokens):,} (budget {args.max_prompt_tokens:,}); "
            f"turns omitted {omitted:,}; credentials redacted {redactions:,}"
        )
    print(f"{sum(log.reasons.values()):,} rejected rows (in {log.path})")
    return 0


def _show(args: argparse.Namespace) -> int:
    from .show import describe

    _check_budget(args.max_prompt_tokens)
    rubrics = RubricSet.load(args.rubrics)
    found = read_sessions(
        args.sources, fmt=args.format, agent_model=args.agent_model, max_row_mb=args.max_row_mb
    )
    for item in found:
        if isinstance(item, Session) and item.session_id == args.session:
            request = render_request(
                item,
                rubrics.for_benchmark(item.benchmark),
                args.judge,
                max_prompt_tokens=args.max_prompt_tokens,
                redact=not args.no_redact,
            )
            print(describe(item, request, system=args.system))
            return 0
    raise UsageError(f"no session {args.session!r} in {', '.join(args.sources)}")


def _rubrics(args: argparse.Namespace) -> int:
    for rubric in RubricSet.load(args.rubrics):
        aliases = ", ".join(rubric.aliases) or "-"
        print(f"{rubric.name:<16} {rubric.version}  {rubric.title}")
        print(f"{'':<16} aliases: {aliases}")
        print(f"{'':<16} file: {rubric.path}")
    return 0


def _apply_config(args: argparse.Namespace) -> None:
    """Fill options not given as flags from --config FILE (flags win)."""
    if not args.config:
        return
    path = Path(args.config)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read --config {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"--config {path} is not valid TOML: {exc}") from None
    aliases = {"judges": "judge", "fallback_judges": "fallback_judge", "prices": "price"}
    for key, value in data.items():
        dest = key.replace("-", "_")
        dest = aliases.get(dest, dest)
        if dest in ("api_key", "key"):
            raise UsageError(
                f"--config {path}: the API key never goes in a file; use the environment"
            )
        if dest == "fresh":
            raise UsageError(
                f"--config {path}: fresh is an action for one run, not a setting (a config "
                "that held it would start over on every resume): pass --fresh as a flag"
            )
        convert = _CONFIG_OPTIONS.get(dest)
        if convert is None:
            raise UsageError(f"--config {path}: unknown option {key!r}")
        current = getattr(args, dest, None)
        if current is None or current == []:
            try:
                if convert is list and not isinstance(value, list):
                    value = [value]
                setattr(args, dest, convert(value))
            except (TypeError, ValueError):
                raise UsageError(f"--config {path}: bad value for {key!r}: {value!r}") from None


def grade_config(args: argparse.Namespace, argv: Sequence[str]) -> tuple[Any, str | None]:
    """The engine's configuration from parsed arguments, and the API key."""
    from .engine import GradeConfig, resume_command

    _apply_config(args)
    if not args.sources:
        raise UsageError("grade needs at least one SOURCE (or sources = [...] in --config)")
    if not args.judge:
        raise UsageError("grade needs at least one --judge MODEL")
    judges = tuple(args.judge)
    if len(set(judges)) != len(judges):
        raise UsageError("each --judge may be given once (use --repeats to ask a judge again)")
    max_prompt_tokens = args.max_prompt_tokens or DEFAULT_MAX_PROMPT_TOKENS
    _check_budget(max_prompt_tokens)
    guard = args.guard or "model"
    if guard not in MODES:
        raise UsageError(f"--guard must be one of {', '.join(MODES)}")
    prices = _prices(args.price)
    key_env = args.api_key_env or "OPENAI_API_KEY"
    api_key = os.environ.get(key_env) or None
    base_url = args.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
    if api_key is None and "@" not in base_url.split("//", 1)[-1].split("/", 1)[0]:
        raise UsageError(
            f"no API key: set ${key_env} (for a local gateway without keys, any value will do)"
        )
    repeats = args.repeats or 1
    temperature = 0.0 if args.temperature is None else args.temperature
    if repeats > 1 and temperature == 0:
        print(
            "judge-engine: note: --repeats with temperature 0 measures only the provider's "
            "nondeterminism; set --temperature to sample",
            file=sys.stderr,
        )
    if args.max_cost is not None:
        unpriced = [j for j in (*judges, *(args.fallback_judge or [])) if not _priced(j, prices)]
        if unpriced:
            raise UsageError(
                f"--max-cost needs a price for {', '.join(unpriced)}: add --price MODEL=IN,OUT"
            )
    config = GradeConfig(
        sources=tuple(args.sources),
        judges=judges,
        fallbacks=tuple(args.fallback_judge or ()),
        base_url=base_url,
        out=Path(args.out or "out"),
        concurrency=args.concurrency or 64,
        rpm=args.rpm,
        tpm=args.tpm,
        max_retries=6 if args.max_retries is None else args.max_retries,
        timeout_s=args.timeout or 120.0,
        max_prompt_tokens=max_prompt_tokens,
        guard=guard,
        max_cost=args.max_cost,
        limit=args.limit,
        fresh=bool(args.fresh),
        retry_failed=bool(args.retry_failed),
        regrade_changed=bool(args.regrade_changed),
        quiet=bool(args.quiet),
        fmt=args.format,
        agent_model=args.agent_model,
        max_row_mb=args.max_row_mb or DEFAULT_MAX_ROW_MB,
        rubrics_dir=args.rubrics,
        redact=not args.no_redact,
        prices=prices,
        repeats=repeats,
        temperature=temperature,
        max_output_tokens=args.max_output_tokens,
        allow_model_mismatch=bool(args.allow_model_mismatch),
        grace_s=args.grace or 10.0,
        resume_command=resume_command(argv, Secrets(api_key, base_url)),
    )
    return config, api_key


def _prices(texts: Sequence[str] | None) -> dict[str, tuple[float, float]]:
    """--price MODEL=IN,OUT options as a table (USD per million tokens)."""
    prices: dict[str, tuple[float, float]] = {}
    for text in texts or []:
        try:
            model, pair = parse_price(text)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        prices[model] = pair
    return prices


def _priced(model: str, overrides: dict[str, tuple[float, float]]) -> bool:
    from .pricing import PriceTable

    return PriceTable(overrides).price(model) is not None


def _grade(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from .engine import grade

    config, api_key = grade_config(args, argv)
    try:
        result, summary = anyio.run(grade, config, api_key)
    except ValueError as exc:  # a base URL or limit the gateway cannot use
        raise UsageError(str(exc)) from None
    if result.exit_code == 2:
        print(f"judge-engine: error: {result.message}", file=sys.stderr)
        if result.verdicts:
            print(
                f"{result.verdicts:,} verdicts were made durable before the error; "
                f"resume with: {config.resume_command}",
                file=sys.stderr,
            )
        return 2
    print(summary)
    print(
        f"\n{result.sessions:,} sessions ({result.already_done:,} already done), "
        f"{result.rejected:,} rejected rows ({config.out / 'rejected.jsonl'})\n"
        f"score columns: {config.out / 'scores.jsonl'} ({result.score_rows:,} rows)"
    )
    if result.stopped == "signal":
        print(
            "\nstopped by a signal; everything finished is saved. Resume with:\n  "
            f"{config.resume_command}"
        )
    elif result.stopped == "max_cost":
        print(
            "\nstopped before passing --max-cost; resume (with a higher limit) with:\n  "
            f"{config.resume_command}"
        )
    elif result.failed:
        print(
            f"\n{result.failed:,} requests failed for good; ask them again with:\n  "
            f"{config.resume_command} --retry-failed"
        )
    if result.changed and not config.regrade_changed:
        print(
            f"\nnote: {result.changed:,} sessions graded before have changed since (their "
            "rows differ); their verdicts are kept. Grade them again with:\n  "
            f"{config.resume_command} --regrade-changed"
        )
    return result.exit_code


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return anyio.run(lambda: run_demo(Path(args.out), quiet=args.quiet))


def _export(args: argparse.Namespace) -> int:
    from .sinks import export

    try:
        path, rows = export(Path(args.out), args.to, Path(args.file) if args.file else None)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    print(f"{rows:,} sessions -> {path}")
    return 0


def _sim(args: argparse.Namespace) -> int:
    from .testing.sim import SimConfig, serve

    config = SimConfig(
        latency_ms=args.latency_ms,
        rpm=args.rpm,
        rate_headers=not args.no_rate_headers,
        limit_hint=args.limit_hint,
        fail_rate=args.fail_rate,
        throttle_rate=args.throttle_rate,
        throttle_reset_rate=args.throttle_reset_rate,
        drop_rate=args.drop_rate,
        malformed_rate=args.malformed_rate,
        hostile_rate=args.hostile_rate,
        slow_rate=args.slow_rate,
        slow_s=args.slow_s,
        disagreement=args.disagreement,
        seed=args.seed,
    )
    try:
        anyio.run(serve, config, args.port)
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        raise UsageError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror}") from None
    return 0


def _agree(args: argparse.Namespace) -> int:
    from .agreement import agree, render

    try:
        result = agree(
            Path(args.out), by=args.by, labels_file=Path(args.labels) if args.labels else None
        )
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise UsageError(str(exc)) from None
    print(render(result))
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
        print(f"\nfigures as JSON: {args.json}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from .report import build, plots, to_csv, to_markdown

    prices = _prices(args.price)
    out = Path(args.out)
    try:
        report = build(
            out, slot=args.judge, majority=args.majority, min_n=args.min_n, prices=prices
        )
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    print(to_markdown(report) if args.format == "md" else to_csv(report), end="")
    print()
    if args.plots:
        from .agreement import agree

        try:
            written = plots(report, agree(out), Path(args.plots))
        except RuntimeError as exc:
            raise UsageError(str(exc)) from None
        for path in written:
            print(f"plot: {path}", file=sys.stderr)
    return 0


def _journal_verify(args: argparse.Namespace) -> int:
    from .sinks import verify

    report = verify(Path(args.out))
    print(
        f"{report.records:,} journal records for {report.keys:,} requests: {report.verdicts:,} "
        f"verdicts, {report.failures:,} failures, {report.skips:,} guard skips; "
        f"{report.score_rows:,} score rows"
    )
    if report.torn_tail:
        print("the last line is torn (a run was killed mid-write); the next run cuts it")
    for problem in report.problems:
        print(f"problem: {problem}")
    print("journal verified: OK" if report.ok else "journal verification FAILED")
    return 0 if report.ok else 1
