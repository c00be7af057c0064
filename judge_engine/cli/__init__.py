"""The command line: one module per command; each parses its options, calls the stages
and prints. Nothing else lives here.

In: argv. Out: text on stdout, one-line errors on stderr, and an exit code:
0 done; 1 a run ended with sessions lacking a verdict (failed, not reached, or stopped
at --max-cost), or a check failed; 2 a user's mistake (usage, configuration, a source,
the gateway refusing the key or unreachable); 130 interrupted (resumable); 70 an
internal error, a bug in judge-engine (one scrubbed line; finished work stays in the
journal).
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import traceback
from collections.abc import Sequence
from types import ModuleType

from .. import __version__, terminal
from ..config import ConfigError
from ..files import UnsafePath
from ..journal import JournalError
from ..prompt import BudgetError
from ..redact import Secrets
from ..rubrics import RubricError
from ..sessions import SourceError
from . import (
    agree,
    batches,
    demo,
    export,
    grade,
    journal,
    labels,
    preview,
    report,
    rubrics,
    sessions,
    show,
    sim,
    topics,
)  # fmt: skip
from ._common import Parser, UsageError

#: The commands, in the order help lists them: what a newcomer does first, first.
COMMANDS: tuple[ModuleType, ...] = (
    demo, sessions, preview, show, grade, batches, export, agree, report, labels, topics,
    journal, rubrics, sim,
)  # fmt: skip

DESCRIPTION = """\
Grade AI-agent traces with LLM judges through any OpenAI-compatible gateway.

Sources are .jsonl, .json or .parquet files, folders or globs of them, - for stdin,
or hf://OWNER/NAME?config=C&split=S (streamed). Five trace formats are detected per
row: raw OTLP/JSON (an OpenTelemetry Collector's file exporter), OTel GenAI spans
(Exgentic agent-llm-traces), AgentTrace, Hermes ShareGPT and generic OpenAI chat."""

EPILOG = """\
examples:
  judge-engine demo
  judge-engine sessions traces/*.parquet
  judge-engine preview traces/ --judge gpt-4.1-mini --limit 5 --out out/preview
  OPENAI_API_KEY=... judge-engine grade traces/ --judge gpt-4.1 --judge claude-sonnet-4-5 \\
      --fallback-judge gemini-2.5-pro --rpm 500 --out out/run1
  judge-engine report out/run1
  judge-engine labels sample out/run1 --n 100 --per benchmark --to sheet.csv
  judge-engine report out/run1 --labels sheet.csv --json report.json
  judge-engine export out/run1 --to parquet

exit codes: 0 done; 1 sessions lack a verdict (failed, not reached, --max-cost) or a
check failed; 2 a mistake in the command, its options, sources or key, or a gateway
that cannot be reached; 130 interrupted (resumable); 70 a bug in judge-engine."""

#: A user's mistakes, reported as one line with exit 2.
_USER_ERRORS = (
    UsageError, ConfigError, SourceError, RubricError, BudgetError, JournalError, UnsafePath,
)  # fmt: skip


def build_parser() -> Parser:
    parser = Parser(prog="judge-engine", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"judge-engine {__version__}")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", title="commands", parser_class=Parser
    )
    for module in COMMANDS:
        sub = commands.add_parser(module.NAME, help=module.HELP, description=module.DESCRIPTION)
        module.add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args, rest = parser.parse_known_args(arguments)
        if rest:
            # Sources may follow options too (`grade --judge m a.jsonl b.jsonl`), which
            # argparse leaves over once the positionals were taken.
            trailing = getattr(_command(args.command), "TRAILING", None)
            if _takes_sources(args.command) and not any(item.startswith("-") for item in rest):
                args.sources = [*getattr(args, "sources", []), *rest]
            elif (
                trailing
                and len(rest) == 1
                and not rest[0].startswith("-")
                and getattr(args, trailing) is None
            ):
                # A positional after the options (`export OUT --to rows FILE`).
                setattr(args, trailing, rest[0])
            else:
                sub = _subparser(parser, args.command)
                (sub or parser).error(
                    f"unrecognized arguments: {' '.join(rest)}{_did_you_mean(rest, sub)}"
                )
    except SystemExit as done:  # --help, --version, or a usage error already printed
        return done.code if isinstance(done.code, int) else 2
    if args.command is None:
        parser.print_help()
        return 0
    command = next(m for m in COMMANDS if args.command == m.NAME)
    try:
        with terminal.install():  # nothing from a trace or a server moves the cursor
            code: int = command.run(args, arguments)
            sys.stdout.flush()
        return code
    except _USER_ERRORS as exc:
        print(f"judge-engine: error: {_line(str(exc), args)}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return _closed_pipe()
    except KeyboardInterrupt:
        print("judge-engine: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: one scrubbed line, never the key
        print(
            f"judge-engine: internal error: {type(exc).__name__}: {_line(str(exc), args)}",
            file=sys.stderr,
        )
        if os.environ.get("JUDGE_ENGINE_DEBUG"):
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            print(terminal.escape(_scrub(text, args)), file=sys.stderr)
        else:
            print(
                "judge-engine: set JUDGE_ENGINE_DEBUG=1 for the traceback; finished work "
                "is in the journal and a re-run resumes",
                file=sys.stderr,
            )
        return 70


def _subparser(parser: argparse.ArgumentParser, name: str | None) -> Parser | None:
    """The parser of a subcommand, by its name."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and name in action.choices:
            sub = action.choices[name]
            return sub if isinstance(sub, Parser) else None
    return None


def _did_you_mean(rest: Sequence[str], sub: argparse.ArgumentParser | None) -> str:
    """A suggestion for a misspelt option, from the command's own options."""
    if sub is None:
        return ""
    known = [o for o in sub._option_string_actions if o.startswith("--")]
    for item in rest:
        if item.startswith("--"):
            close = difflib.get_close_matches(item.split("=", 1)[0], known, n=2, cutoff=0.6)
            if close:
                return f"; did you mean {' or '.join(close)}?"
    return ""


def _command(name: str | None) -> ModuleType | None:
    return next((m for m in COMMANDS if name == m.NAME), None)


def _takes_sources(name: str | None) -> bool:
    return bool(getattr(_command(name), "TAKES_SOURCES", False))


def _closed_pipe() -> int:
    """The reader went away (`report | head`): end quietly, as a Unix tool does.

    Python would print an error flushing stdout at exit; point stdout at /dev/null so
    that flush has nowhere to fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 0


def _line(text: str, args: argparse.Namespace) -> str:
    """An error's text as one inert line: scrubbed, its controls and newlines escaped."""
    return terminal.escape_field(_scrub(text, args))


def _scrub(text: str, args: argparse.Namespace) -> str:
    """Text fit to print: credential shapes, the key and the base URL's credentials
    removed."""
    key = os.environ.get(getattr(args, "api_key_env", None) or "OPENAI_API_KEY")
    base_url = getattr(args, "base_url", None) or os.environ.get("OPENAI_BASE_URL")
    return Secrets(key, base_url).scrub(text)


__all__ = ["COMMANDS", "UsageError", "build_parser", "main"]
