"""`judge-engine sim`: the judge-gateway simulator on loopback, for demos and benchmarks."""

from __future__ import annotations

import argparse

import anyio

from ._common import UsageError, bounded

#: The simulator's provider modes (`testing.providers.MODES`), named here so that the
#: command's help needs no import of the simulator.
PROVIDER_MODES = ("openai", "azure", "gemini", "vllm-reasoning", "ollama-thinking", "anthropic")

NAME = "sim"
HELP = "run the judge-gateway simulator on loopback (not a real model)"
DESCRIPTION = """\
A local OpenAI-compatible server for demos, tests and benchmarks. It is not a model:
verdicts are read from the trace by fixed rules (the final assistant message decides;
each judge model flips a few sessions so panels disagree a little). It enforces its own
rate limit and injects faults on request. Stop it with Ctrl-C."""


class Formatter(argparse.RawDescriptionHelpFormatter):
    """The description as written, and every option's default shown (when it has one)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        shown = default is not None and default is not False and default != argparse.SUPPRESS
        if shown and action.option_strings:
            text += " (default %(default)s)"
        return text


_rate = bounded(float, 0.0, 1.0)
_seconds = bounded(float, 0.0, 86_400.0)


def add(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = Formatter
    add = parser.add_argument
    add("--port", type=bounded(int, 0, 65535), default=8900, help="port on 127.0.0.1 (0: any free)")
    add("--latency-ms", type=_seconds, default=0.0, metavar="MS", help="reply latency (±20%%)")
    add(
        "--rpm",
        type=bounded(int, 1, 10**9),
        metavar="N",
        help="accept at most N requests in any 60 s",
    )
    add("--fail-rate", type=_rate, default=0.0, metavar="F", help="share of 5xx replies")
    add(
        "--throttle-rate",
        type=_rate,
        default=0.0,
        metavar="F",
        help="share of injected 429s (with Retry-After)",
    )
    add(
        "--throttle-reset-rate",
        type=_rate,
        default=0.0,
        metavar="F",
        help="share of injected 429s with reset headers only",
    )
    add("--drop-rate", type=_rate, default=0.0, metavar="F", help="share of dropped connections")
    add(
        "--malformed-rate",
        type=_rate,
        default=0.0,
        metavar="F",
        help="share of malformed or cut-off verdicts",
    )
    add(
        "--hostile-rate",
        type=_rate,
        default=0.0,
        metavar="F",
        help="share of hostile replies: forged or quoted verdicts, absurd rate-limit "
        "headers, the key echoed back, gzip bodies, JSON nested 100,000 deep",
    )
    add(
        "--slow-rate",
        type=_rate,
        default=0.0,
        metavar="F",
        help="share of replies delayed by --slow-s",
    )
    add("--slow-s", type=_seconds, default=30.0, metavar="S", help="delay of slow replies")
    add("--no-rate-headers", action="store_true", help="do not announce x-ratelimit-* headers")
    add(
        "--limit-hint",
        choices=("retry-after", "reset"),
        default="retry-after",
        help="how a 429 over the limit says when to retry",
    )
    add(
        "--disagreement",
        type=_rate,
        default=0.08,
        metavar="F",
        help="share of sessions a judge reads the other way",
    )
    add(
        "--judge-error",
        action="append",
        type=_judge_error,
        metavar="BENCHMARK=SENS,SPEC",
        help="judges with known error rates on a benchmark ('*' for every other one): a "
        "truly passed session passed with probability SENS, a truly failed one failed with "
        "probability SPEC, in place of --disagreement (repeatable)",
    )
    add("--seed", type=int, default=0, help="seed of the fault draws")  # fmt: skip
    add(
        "--provider",
        choices=PROVIDER_MODES,
        help="behave as this provider documents: its paths, auth, refusals, error shapes and "
        "reply shape (openai: reasoning models refuse temperature and max_tokens; anthropic: "
        "the Messages API at /v1/messages; azure: deployments and the v1 API with api-key; "
        "gemini; vllm-reasoning and ollama-thinking: replies with the model's thinking)",
    )
    add("--api-key", metavar="KEY", help="the only key accepted (default: any)")


def _judge_error(text: str) -> tuple[str, tuple[float, float]]:
    name, _, rates = text.partition("=")
    try:
        sensitivity, specificity = (float(v) for v in rates.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected BENCHMARK=SENS,SPEC (two rates from 0 to 1)"
        ) from None
    if not name or not (0 <= sensitivity <= 1 and 0 <= specificity <= 1):
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected BENCHMARK=SENS,SPEC (two rates from 0 to 1)"
        )
    return name.strip(), (sensitivity, specificity)


def run(args: argparse.Namespace, argv: list[str]) -> int:
    from ..testing.sim import SimConfig, serve  # imported here: other commands start faster

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
        judge_error=dict(args.judge_error or ()),
        seed=args.seed,
        provider=args.provider,
        api_key=args.api_key,
    )
    try:
        anyio.run(serve, config, args.port)
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        raise UsageError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror}") from None
    return 0
