"""`judge-engine sessions`: what the sources hold, and how well their traces were read."""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict
from pathlib import Path

import orjson

from ..journal import OutLock
from ..models import canonical_model
from ..rubrics import DEFAULT, RubricSet, normalize
from ..sessions import Census, Rejection, Session, expand
from ..sessions.fidelity import MEASURES, SplitRuns
from ..sessions.sources import DIGEST_HEX
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
parts replaced, ...); and the rows that could not become sessions, by reason.

A session counts once, under its main agent model: the canonical name (provider and
deployment prefixes removed: openai/azure/gpt-5.4 is gpt-5.4) of the model that made
most of the agent's calls; the other models it used are listed beside. --aliases shows
the names the traces spell each model with. --list prints one line per session."""
#: File names of the shape BENCHMARK-TASK-AGENT (a task number in the middle).
_NAMED_BY_FILE = re.compile(r"^(?P<benchmark>[A-Za-z][\w.]*?(?:-[A-Za-z][\w.]*?)*)-\d+-")
_SUGGESTED_PATTERN = r"file:^(?P<benchmark>.+?)-\d+-"


def add(parser: argparse.ArgumentParser) -> None:
    add_options(parser, ["sources"])
    parser.add_argument(
        "--out", metavar="DIR", help="also add the rejected rows to DIR/rejected.jsonl"
    )
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")
    parser.add_argument(
        "--list",
        action="store_true",
        help="one line per session: id, format, benchmark, harness, agent model, row size "
        "(with --json, one JSON object per line)",
    )
    parser.add_argument(
        "--aliases",
        action="store_true",
        help="the names each agent model is spelt with in the traces, with their counts",
    )


def run(args: argparse.Namespace, argv: list[str]) -> int:
    config = build_config(args, ["sources"])
    options = config.sources
    counts: dict[str, Counter[str]] = {
        key: Counter() for key in ("format", "benchmark", "harness", "agent_model")
    }
    also: dict[str, Counter[str]] = defaultdict(Counter)
    aliases: dict[str, Counter[str]] = defaultdict(Counter)
    rejected: Counter[str] = Counter()
    fidelity = Census()
    split = SplitRuns()
    unnamed: list[Session] = []
    out = writable_folder(args.out, "--out") if args.out else None
    lock = OutLock(out) if out else None
    log = RejectLog(out) if out else None
    total = 0
    try:
        sources = expand(options.sources, exclude=(out,) if out else ())
        for item in read(options, sources):
            if isinstance(item, Rejection):
                rejected[item.reason] += 1
                if log:
                    log.add(item)
                continue
            total += 1
            if args.list:
                _list_line(item, args.json)
                continue
            fidelity.add(item)
            split.add(item)
            counts["format"][item.source.format] += 1
            counts["benchmark"][item.benchmark or "unknown"] += 1
            counts["harness"][item.harness or "unknown"] += 1
            main = item.agent_model or "unknown"
            counts["agent_model"][main] += 1
            for other in item.other_models:
                also[main][other] += 1
            for raw in item.agent_models:
                aliases[canonical_model(raw) or "(names no model)"][raw] += 1
            if item.benchmark is None and len(unnamed) < 10_000:
                unnamed.append(item)
    finally:
        if log:
            log.close()
        if lock:
            lock.release()
    if args.list:
        return 0
    no_benchmark = counts["benchmark"].get("unknown", 0)
    if args.json:
        payload: dict[str, object] = {k: dict(v.most_common()) for k, v in counts.items()}
        payload.update(sessions=total, rejected=dict(rejected.most_common()))
        payload["agent_model_also"] = {k: dict(v.most_common()) for k, v in also.items()}
        payload["agent_model_aliases"] = {k: dict(v.most_common()) for k, v in aliases.items()}
        payload["no_benchmark"] = no_benchmark
        payload["fidelity"] = fidelity.to_dict()
        payload["split_runs"] = [{"file": f, "sessions": n} for f, n in split.suspects()]
        print(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())
        return 0
    print(f"{total:,} sessions, {sum(rejected.values()):,} rejected rows")
    for key, counter in counts.items():
        heading = {
            "agent_model": "agent model (each session once, under the model that made most "
            "of its calls; the others it used listed)",
        }.get(key, key.replace("_", " "))
        print(f"\nby {heading}:")
        for name, count in counter.most_common():
            line = f"  {count:>8,}  {name}"
            if key == "agent_model" and also.get(name):
                used = ", ".join(f"{m} in {n:,}" for m, n in also[name].most_common(4))
                line += f"  (also: {used})"
            print(line)
            if key == "agent_model" and args.aliases:
                for model in (name, *also.get(name, Counter())):
                    for raw, times in aliases.get(model, Counter()).most_common():
                        print(f"  {'':>8}    {model} spelt {raw!r} in {times:,}")
        if key == "agent_model" and args.aliases and aliases.get("(names no model)"):
            spelt = ", ".join(repr(r) for r in aliases["(names no model)"])
            print(f"  {'':>8}    left out as naming no model: {spelt}")
    if no_benchmark:
        _no_benchmark(no_benchmark, unnamed, config.request.rubrics)
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


def _list_line(session: Session, as_json: bool) -> None:
    size = int(session.source.fingerprint[DIGEST_HEX:] or "0", 16)
    fields = {
        "session_id": session.session_id,
        "format": session.source.format,
        "benchmark": session.benchmark,
        "harness": session.harness,
        "agent_model": session.agent_model,
        "other_models": list(session.other_models),
        "bytes": size,
        "source": session.source.source,
    }
    if as_json:
        print(orjson.dumps(fields).decode())
        return
    print(
        "\t".join(
            str(v)
            for v in (
                session.session_id,
                session.source.format,
                session.benchmark or "-",
                session.harness or "-",
                session.agent_model or "-",
                f"{size:,}",
            )
        )
    )


def _no_benchmark(count: int, sessions: list[Session], rubrics_dir: str | None) -> None:
    """How many sessions name no benchmark (graded by the default rubric), and what
    their file names or tasks suggest, as a suggestion only."""
    print(
        f"\n{count:,} sessions name no benchmark: `grade` gives them the {DEFAULT} rubric. "
        "Set it with --benchmark NAME, or read it with --benchmark-from FIELD (a row field "
        "or span attribute) or --benchmark-from 'file:REGEX'."
    )
    by_file = sum(1 for s in sessions if _NAMED_BY_FILE.match(Path(s.source.source).name))
    if by_file >= max(1, len(sessions) // 2):
        print(
            f"  suggestion: {by_file:,} of their file names look like BENCHMARK-TASK-AGENT; "
            f"try --benchmark-from '{_SUGGESTED_PATTERN}'"
        )
    try:
        rubrics = RubricSet.load(rubrics_dir)
    except Exception:  # a suggestion never fails the command
        return
    spellings = {
        normalize(s): r.name for r in rubrics if r.name != DEFAULT for s in (r.name, *r.aliases)
    }
    found: Counter[str] = Counter()
    for session in sessions:
        text = normalize(Path(session.source.source).name + " " + session.task[:2000])
        for spelling, name in spellings.items():
            if len(spelling) >= 4 and spelling in text:
                found[name] += 1
                break
    if found:
        named = ", ".join(f"{name} ({n:,})" for name, n in found.most_common(6))
        print(
            f"  suggestion: their file names or tasks mention benchmarks with a rubric: "
            f"{named}; nothing is set from a guess"
        )
