"""`judge-engine batches`: a batch run's batches at the server, and cancelling them."""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path

import anyio
import orjson

from ..gateway.anthropic_batch import LOG as ANTHROPIC_LOG
from ..gateway.batch import LOG, BatchState, batch_states, forget
from ..gateway.errors import GatewayError
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
    logs = [name for name in (LOG, ANTHROPIC_LOG) if (out / name).is_file()]
    if not logs:
        raise UsageError(f"{out} holds no {LOG}: no --batch run wrote there")
    if args.forget:
        with OutLock(out):
            for name in logs:
                with contextlib.suppress(KeyError):
                    held = forget(out, args.forget, name)
                    break
            else:
                raise UsageError(f"{out} names no batch {args.forget}") from None
        print(f"batch {args.forget} given up: the next grade submits its {held:,} requests anew")
        return 0
    run_file = out / "run.json"
    values = read_config_file(str(run_file)) if run_file.is_file() else {}
    if args.base_url:
        values["base_url"] = args.base_url
    config = build_config(argparse.Namespace(**values), ["gateway"], need_sources=False)
    key = api_key(config)
    url = config.gateway.url
    states: list[BatchState] = []
    try:
        if LOG in logs:
            states += anyio.run(lambda: batch_states(out, url, key, cancel=args.cancel))
        if ANTHROPIC_LOG in logs:
            base, anthropic_key, auth = _anthropic(run_file)
            states += anyio.run(
                lambda: batch_states(
                    out, base, anthropic_key, cancel=args.cancel, log_name=ANTHROPIC_LOG,
                    batches_path="/messages/batches", auth=auth,
                )
            )  # fmt: skip
    except GatewayError as error:
        raise UsageError(Secrets(key, url).scrub(str(error))) from None
    if not states:
        print(f"no batch in {', '.join(str(out / name) for name in logs)}")
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


def _anthropic(run_file: Path) -> tuple[str, str | None, dict[str, str]]:
    """Anthropic's base URL, key and headers, as the run's judges name them (run.json)."""
    judges: dict[str, object] = {}
    with contextlib.suppress(OSError, orjson.JSONDecodeError, AttributeError):
        judges = orjson.loads(run_file.read_bytes()).get("judges") or {}
    for entry in judges.values():
        if isinstance(entry, dict) and entry.get("protocol") == "anthropic_messages":
            variable = str(entry.get("key") or "ANTHROPIC_API_KEY")
            key = os.environ.get(variable)
            base = str(entry.get("url") or "https://api.anthropic.com/v1")
            return base, key, {"x-api-key": key or "", "anthropic-version": "2023-06-01"}
    key = os.environ.get("ANTHROPIC_API_KEY")
    return (
        "https://api.anthropic.com/v1",
        key,
        {"x-api-key": key or "", "anthropic-version": "2023-06-01"},
    )
