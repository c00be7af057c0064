"""`judge-engine preview`: the exact requests a run would send, and what they would cost."""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict

from ..asking import OUTPUT_ESTIMATE
from ..journal import SKIPPED, OutLock
from ..plan import Planner
from ..pricing import PriceTable
from ..rubrics import RubricSet
from ..sessions import Rejection, expand
from ..sinks import JsonlWriter, RejectLog
from ._common import add_options, build_config, read, warn_if_empty, writable_folder

#: Sources may follow the options.
TAKES_SOURCES = True
NAME = "preview"
HELP = "write the exact judge requests without sending them, and estimate their cost"
DESCRIPTION = """\
Plan and render every session exactly as `grade` would, with the same panel options
(--judge, --fallback-judge, --guard, --repeats, ...), without any network. Writes
OUT/requests.jsonl (one line per request: session_id, slot, judge_model, sample,
rubric, rubric_version, body) and adds the rows that could not become sessions to
OUT/rejected.jsonl. Ends with the estimated input tokens and cost per judge: what the
run would spend before any money is spent (output tokens are estimated at 200 a
verdict, or --max-output-tokens)."""

_GROUPS = ["sources", "panel", "request", "run"]


def add(parser: argparse.ArgumentParser) -> None:
    add_options(parser, ["sources", "panel", "request"])
    add_options(parser, ["run"], only=("out", "limit", "price"))
    parser.add_argument(
        "--config", metavar="FILE", help="read options from a TOML file or a run's run.json"
    )


def run(args: argparse.Namespace, argv: list[str]) -> int:
    config = build_config(args, _GROUPS, args.config, need_judge=True)
    out = writable_folder(config.run.out, "--out")
    options = config.sources
    planner = Planner(config.panel, config.request, RubricSet.load(config.request.rubrics))
    prices = PriceTable(config.run.prices())
    output_estimate = config.panel.max_output_tokens or OUTPUT_ESTIMATE
    sessions = 0
    prompt_tokens: defaultdict[str, int] = defaultdict(int)
    requests_by_judge: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    unrenderable: Counter[str] = Counter()
    omitted = redactions = 0
    sources = expand(options.sources, exclude=(out,))
    with OutLock(out), RejectLog(out) as log, JsonlWriter(out / "requests.jsonl") as requests:
        items = read(options, sources)
        for item in items:
            if isinstance(item, Rejection):
                log.add(item)
                continue
            rendered = planner.render(planner.plan(item))
            for record in rendered.records:
                if record.status == SKIPPED:
                    skipped[record.slot] += 1
                else:
                    unrenderable[(record.error or "").split(":", 1)[0]] += 1
            for ask in rendered.asks:
                request = ask.request
                line = request.preview_line()
                line["slot"] = ask.planned.assignment.slot
                line["sample"] = ask.planned.sample
                requests.write(line)
                prompt_tokens[request.judge_model] += request.prompt_tokens
                requests_by_judge[request.judge_model] += 1
                omitted += request.omitted_turns
                redactions += request.redactions
            sessions += 1
            if config.run.limit and sessions >= config.run.limit:
                break
    warn_if_empty(sessions, options.sources)
    print(f"{sessions:,} sessions -> {requests.count:,} requests in {requests.path}")
    if requests.count:
        print(f"turns omitted {omitted:,}; credentials redacted {redactions:,}")
    if skipped:
        slots = ", ".join(f"{slot} ({n:,})" for slot, n in skipped.items())
        print(
            f"skipped by the guard (the judge produced the session): {slots}; add "
            "--fallback-judge MODEL to grade them"
        )
    for reason, n in unrenderable.most_common():
        print(f"{n:,} requests cannot be made: {reason} (grade records them as failed)")
    print(f"{sum(log.reasons.values()):,} rejected rows (in {log.path})")
    if requests_by_judge:
        _estimate(requests_by_judge, prompt_tokens, output_estimate, prices)
    return 0


def _estimate(
    requests: Counter[str],
    prompt_tokens: dict[str, int],
    output_estimate: int,
    prices: PriceTable,
) -> None:
    """The run's estimated tokens and cost, per judge and in all."""
    print(f"\nestimate (input tokens as rendered; {output_estimate:,} output tokens a verdict):")
    print(f"  {'judge':<28} {'requests':>9} {'input tokens':>14} {'cost (USD)':>12}")
    total = 0.0
    unknown: list[str] = []
    for judge, n in requests.items():
        cost = prices.cost(judge, prompt_tokens[judge], n * output_estimate)
        if cost is None:
            unknown.append(judge)
            shown = "no price"
        else:
            total += cost
            shown = f"{cost:,.2f}"
        print(f"  {judge:<28} {n:>9,} {prompt_tokens[judge]:>14,} {shown:>12}")
    all_tokens = sum(prompt_tokens.values())
    print(f"  {'all':<28} {sum(requests.values()):>9,} {all_tokens:>14,} {total:>12,.2f}")
    if unknown:
        print(
            f"  no price known for {', '.join(unknown)}: add --price MODEL=IN,OUT (USD per "
            "million tokens) to include them"
        )
    print("  (built-in list prices unless --price says otherwise; retries not counted)")
