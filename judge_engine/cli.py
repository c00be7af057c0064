"""The command line: parses arguments and calls into the stages. Nothing else lives here.

Exit codes: 0 all good; 1 some sessions could not be graded; 2 usage, configuration,
source or authentication errors (one clear line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import orjson

from . import __version__
from .prompt import DEFAULT_MAX_PROMPT_TOKENS, MIN_PROMPT_TOKENS, BudgetError, render_request
from .rubrics import RubricError, RubricSet
from .sessions import FORMATS, Rejection, Session, SourceError, read_sessions
from .sinks import JsonlWriter, RejectLog

_DESCRIPTION = """\
Grade AI-agent traces with LLM judges through any OpenAI-compatible gateway.

Sources are .jsonl, .json or .parquet files, folders or globs of them, - for stdin,
or hf://OWNER/NAME?config=C&split=S (streamed). Four trace formats are detected per
row: OTel GenAI spans (Exgentic agent-llm-traces), AgentTrace, Hermes ShareGPT and
generic OpenAI chat rows.
"""

_EPILOG = """\
examples:
  judge-engine demo
  judge-engine sessions traces/*.parquet
  judge-engine preview traces/ --judge gpt-4.1-mini --limit 5 --out out/preview
  judge-engine rubrics
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

    rubrics = commands.add_parser(
        "rubrics",
        help="list the rubrics with their versions and aliases",
        description="List every rubric (built in, or from --rubrics DIR) with its version "
        "(a hash of its file) and the benchmark spellings it answers to.",
    )
    rubrics.add_argument("--rubrics", metavar="DIR", help="a folder of your own rubric .toml files")
    return parser


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
    except (UsageError, SourceError, RubricError, BudgetError) as exc:
        print(f"judge-engine: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("judge-engine: interrupted", file=sys.stderr)
        return 130
    parser.error(f"unknown command {args.command}")  # exits


def _sessions(args: argparse.Namespace) -> int:
    counts: dict[str, Counter[str]] = {
        key: Counter() for key in ("format", "benchmark", "harness", "agent_model")
    }
    rejected: Counter[str] = Counter()
    log = RejectLog(Path(args.out)) if args.out else None
    total = 0
    for item in read_sessions(args.sources, fmt=args.format, agent_model=args.agent_model):
        if isinstance(item, Rejection):
            rejected[item.reason] += 1
            if log:
                log.add(item)
            continue
        total += 1
        counts["format"][item.source.format] += 1
        counts["benchmark"][item.benchmark or "unknown"] += 1
        counts["harness"][item.harness or "unknown"] += 1
        for model in item.agent_models or ("unknown",):
            counts["agent_model"][model] += 1
    if log:
        log.close()
    if args.json:
        payload: dict[str, object] = {k: dict(v.most_common()) for k, v in counts.items()}
        payload.update(sessions=total, rejected=dict(rejected.most_common()))
        print(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())
        return 0
    print(f"{total:,} sessions, {sum(rejected.values()):,} rejected rows")
    for key, counter in counts.items():
        print(f"\nby {key.replace('_', ' ')}:")
        for name, count in counter.most_common():
            print(f"  {count:>8,}  {name}")
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
    log = RejectLog(out)
    with log, JsonlWriter(out / "requests.jsonl") as requests:
        for item in read_sessions(args.sources, fmt=args.format, agent_model=args.agent_model):
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
    print(f"{log.count:,} rejected rows in {log.path}")
    return 0


def _rubrics(args: argparse.Namespace) -> int:
    for rubric in RubricSet.load(args.rubrics):
        aliases = ", ".join(rubric.aliases) or "-"
        print(f"{rubric.name:<16} {rubric.version}  {rubric.title}")
        print(f"{'':<16} aliases: {aliases}")
        print(f"{'':<16} file: {rubric.path}")
    return 0
