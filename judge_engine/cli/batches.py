"""`judge-engine batches`: a batch run's batches at the server, and cancelling them."""

from __future__ import annotations

import argparse
from pathlib import Path

import anyio

from ..gateway.batch import LOG, batch_states, forget
from ..gateway.client import GatewayError
from ..journal import OutLock
from ..redact import Secrets
from ._common import UsageError, api_key, build_config, read_config_file

NAME = "batches"
HELP = "list a --batch run's batches with their states at the server; --cancel them"
DESCRIPTION = """\
List the batches a `grade --batch` run submitted (from OUT/batches.jsonl), newest
first, each with its state at the server now: status (validating, in_progress,
finalizing, completed, failed, expired, cancelling, cancelled) and its request counts.
The gateway and the key's variable are the run's own (OUT/run.json); the key is read
from the environment. With --cancel, the batches still running are cancelled: what they
finished is kept and the next `grade` collects it; the rest is submitted again. With
--forget BATCH, a batch whose answers cannot be collected (its output file cannot be
read) is given up: the next `grade` submits its requests anew, and pays for them
again."""


def add(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", metavar="OUT", help="the results folder of a --batch run")
    parser.add_argument(
        "--cancel", action="store_true", help="cancel the batches that have not ended"
    )
    parser.add_argument(
        "--forget",
        metavar="BATCH",
        help="give up a batch whose output cannot be read: the next grade submits its "
        "requests anew (and pays for them again)",
    )
    parser.add_argument(
        "--base-url", metavar="URL", help="the gateway, if not the one OUT/run.json names"
    )


def run(args: argparse.Namespace, argv: list[str]) -> int:
    out = Path(args.out)
    if not (out / LOG).is_file():
        raise UsageError(f"{out} holds no {LOG}: no --batch run wrote there")
    if args.forget:
        with OutLock(out):
            try:
                held = forget(out, args.forget)
            except KeyError:
                raise UsageError(f"{out / LOG} names no batch {args.forget}") from None
        print(f"batch {args.forget} given up: the next grade submits its {held:,} requests anew")
        return 0
    values = read_config_file(str(out / "run.json")) if (out / "run.json").is_file() else {}
    if args.base_url:
        values["base_url"] = args.base_url
    namespace = argparse.Namespace(**values)
    config = build_config(namespace, ["gateway"], need_sources=False)
    key = api_key(config)
    url = config.gateway.url
    try:
        states = anyio.run(lambda: batch_states(out, url, key, cancel=args.cancel))
    except GatewayError as error:
        raise UsageError(Secrets(key, url).scrub(str(error))) from None
    if not states:
        print(f"no batch in {out / LOG}")
        return 0
    print(f"{'batch':<34} {'status':<14} {'requests':>9} {'done':>9} {'failed':>8}")
    for state in states:
        done = state.counts.get("completed", 0)
        failed = state.counts.get("failed", 0)
        status = "cancelling now" if state.cancelled else state.status
        print(
            f"{state.batch_id or state.tag:<34} {status:<14} {state.requests:>9,} "
            f"{done:>9,} {failed:>8,}"
        )
        if state.problem:
            print(f"{'':<35}{state.problem}")
    running = sum(s.status in ("validating", "in_progress", "finalizing") for s in states)
    if running and not args.cancel:
        print(f"\n{running} still running; collect with the run's grade command")
    return 0
