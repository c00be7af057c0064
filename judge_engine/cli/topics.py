"""`judge-engine topics`: group the failures the taxonomy misses, and name the groups."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import anyio

from ..config import ConfigError
from ._common import UsageError, add_options, api_key, bounded, build_config, writable_file

NAME = "topics"
HELP = "group failed sessions by what their judges wrote, and have the judge name each group"
DESCRIPTION = """\
The failure modes say why sessions failed, as far as the taxonomy goes. `topics`
groups the failed sessions of one mode (`other` by default, what the taxonomy missed;
--mode CODE for one mode, --mode all for every failure) by what their judges wrote
(the failure note and the reasoning of the counted verdict), offline and
deterministically: TF-IDF and k-means (seeded), the number of groups chosen by
silhouette up to --max-topics, groups under --min-size left unassigned. Then it asks
the judge model to name each group, one request per group, through the run's own
gateway and limits (its judge, base URL and options from OUT/run.json; flags win), a
strict JSON reply of a name and a description. Names are journaled in
OUT/topics-journal.jsonl: the same inputs make the same groups and ask nothing again.
Their cost counts against --max-cost with everything the folder spent.

Each topic is printed with its size, share, name, description and three example
sessions; OUT/topics.json keeps them all (`export --where topic=ID` reads it), and
--json FILE writes the same object elsewhere."""


def add(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", metavar="OUT", help="a results folder a grade run wrote")
    parser.add_argument(
        "--mode",
        default="other",
        metavar="CODE",
        help="the failure mode whose sessions are grouped (default other; all: every failure)",
    )
    parser.add_argument(
        "--min-size", type=bounded(int, 1, 10**6), default=3, metavar="N",
        help="smallest group kept (default 3)",
    )  # fmt: skip
    parser.add_argument(
        "--max-topics", type=bounded(int, 2, 100), default=8, metavar="K",
        help="most groups (default 8)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="the clustering's seed (default 0)")
    parser.add_argument("--json", metavar="FILE", help="also write the topics as JSON to FILE")
    parser.add_argument(
        "--max-cost",
        type=float,
        metavar="USD",
        help="the cap of everything the folder spends (verdicts and names)",
    )
    add_options(parser, ["panel", "gateway", "retry"])


def run(args: argparse.Namespace, argv: list[str]) -> int:
    from ..results import RUN_FILE
    from ..topics import TopicsError, failures, group, name_topics, write

    out = Path(args.out)
    if not (out / "journal.jsonl").is_file():
        raise UsageError(f"{out} holds no journal: grade into it first")
    json_path = writable_file(args.json, "--json", out) if args.json else None
    run_file = out / RUN_FILE
    config = build_config(
        args, ["panel", "gateway", "retry"], str(run_file) if run_file.is_file() else None,
        need_sources=False, need_judge=True,
    )  # fmt: skip
    try:
        config = config.replace(out=str(out), fresh=False, quiet=True)
        if args.max_cost is not None:
            config = config.replace(max_cost=args.max_cost)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    items = failures(out, args.mode)
    if not items:
        print(f"no failed session of mode {args.mode} in {out}: nothing to group")
        return 0
    topics, unassigned = group(
        items, min_size=args.min_size, max_topics=args.max_topics, seed=args.seed
    )
    if topics:
        try:
            naming = anyio.run(lambda: name_topics(out, topics, config, api_key(config)))
        except (TopicsError, ConfigError) as exc:
            raise UsageError(str(exc)) from None
    data = write(out, topics, unassigned, args.mode)
    if json_path is not None:
        json_path.write_bytes(data + b"\n")
    grouped = len(items)
    print(
        f"{grouped:,} failed sessions of mode {args.mode}: {len(topics)} topics, "
        f"{len(unassigned):,} unassigned"
    )
    for topic in topics:
        examples = ", ".join(topic.sessions[:3])
        print(
            f"\n{topic.id}  {topic.name or '(not named)'}  {len(topic.sessions):,} sessions "
            f"({topic.share:.0%})\n    {topic.description}\n    e.g. {examples}"
        )
    if topics:
        cost = "unknown" if naming.cost_usd is None else f"${naming.cost_usd:,.4f}"
        print(
            f"\nnames: {naming.asked:,} requests, {naming.known:,} known from before "
            f"({out / 'topics-journal.jsonl'}), cost {cost}"
        )
        for line in naming.failed:
            print(f"judge-engine: topic {line}", file=sys.stderr)
        return 1 if naming.failed else 0
    return 0
