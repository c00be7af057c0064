"""`judge-engine sessions`: what the sources hold, and how well their traces were read."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import orjson

from ..journal import OutLock
from ..sessions import Census, Rejection, expand
from ..sessions.fidelity import MEASURES, SplitRuns
from ..sinks import RejectLog
from ._common import add_options, build_config, read, writable_folder

#: Sources may follow the options.
TAKES_SOURCES = True
NAME = "sessions"
HELP = "count sessions by format, benchmark, harness and agent model, and how they were read"
DESCRIPTION = """\
Read every source and count its sessions by format, benchmark, harness and agent model;
how well each format's traces were read (parts of an unknown type, tool results whose
call is not shown, empty assistant turns, failed calls, side calls left out, binary
parts replaced, ...); and the rows that could not become sessions, by reason."""


def add(parser: argparse.ArgumentParser) -> None:
    add_options(parser, ["sources"])
    parser.add_argument(
        "--out", metavar="DIR", help="also add the rejected rows to DIR/rejected.jsonl"
    )
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")


def run(args: argparse.Namespace, argv: list[str]) -> int:
    config = build_config(args, ["sources"])
    options = config.sources
    counts: dict[str, Counter[str]] = {
        key: Counter() for key in ("format", "benchmark", "harness", "agent_model")
    }
    rejected: Counter[str] = Counter()
    fidelity = Census()
    split = SplitRuns()
    out = writable_folder(args.out, "--out") if args.out else None
    lock = OutLock(out) if out else None
    log = RejectLog(out) if out else None
    total = 0
    try:
        sources = expand(options.sources, exclude=(out,) if out else ())
        items = read(options, sources)
        for item in items:
            if isinstance(item, Rejection):
                rejected[item.reason] += 1
                if log:
                    log.add(item)
                continue
            total += 1
            fidelity.add(item)
            split.add(item)
            counts["format"][item.source.format] += 1
            counts["benchmark"][item.benchmark or "unknown"] += 1
            counts["harness"][item.harness or "unknown"] += 1
            for model in item.agent_models or ("unknown",):
                counts["agent_model"][model] += 1
    finally:
        if log:
            log.close()
        if lock:
            lock.release()
    if args.json:
        payload: dict[str, object] = {k: dict(v.most_common()) for k, v in counts.items()}
        payload.update(sessions=total, rejected=dict(rejected.most_common()))
        payload["fidelity"] = fidelity.to_dict()
        payload["split_runs"] = [{"file": f, "sessions": n} for f, n in split.suspects()]
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
    suspects = split.suspects()
    if suspects:
        print(
            f"\n{len(suspects):,} file(s) look like one agent run split into many sessions "
            "(one trace per LLM call, every one opening on the same task, the history "
            "growing): --session-by file, or --session-by ATTRIBUTE, makes each one session"
        )
        for name, count in suspects[:10]:
            print(f"  {count:>8,}  {name}")
    if rejected:
        where = f" (see {Path(log.path)})" if log else ""
        print(f"\nrejected rows by reason{where}:")
        for reason, count in rejected.most_common():
            print(f"  {count:>8,}  {reason}")
    return 0
