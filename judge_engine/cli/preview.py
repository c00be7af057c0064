"""`judge-engine preview`: the exact requests a run would send, and what they would cost."""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict

import orjson

from ..asking import OUTPUT_ESTIMATE
from ..endpoints import Keys, profiles, resolve_judges
from ..gateway import safe_url
from ..gateway.protocols import Profile, encode
from ..gateway.providers import Judge
from ..journal import SKIPPED, OutLock
from ..plan import Planner
from ..pricing import PriceTable
from ..rubrics import RubricSet
from ..sessions import Rejection, expand
from ..sinks import JsonlWriter, RejectLog
from ._common import add_options, api_key, build_config, read, warn_if_empty, writable_folder

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
verdict, or --max-output-tokens); with --batch, at batch prices beside live ones."""

_GROUPS = ["sources", "panel", "request", "gateway", "run", "batch"]


def add(parser: argparse.ArgumentParser) -> None:
    add_options(parser, ["sources", "panel", "request"])
    add_options(parser, ["gateway"], only=("base_url", "api_key_env", "provider"))
    add_options(parser, ["run"], only=("out", "limit", "price"))
    add_options(parser, ["batch"], only=("batch", "batch_price"))
    parser.add_argument(
        "--config", metavar="FILE", help="read options from a TOML file or a run's run.json"
    )


def run(args: argparse.Namespace, argv: list[str]) -> int:
    config = build_config(args, _GROUPS, args.config, need_judge=True)
    out = writable_folder(config.run.out, "--out")
    judges = resolve_judges(config)
    keys = Keys.of(judges, api_key(config), config.gateway.api_key_env, require=False)
    starting = profiles(config, judges, {})
    _judges(judges, keys, starting)
    options = config.sources
    planner = Planner(config.panel, config.request, RubricSet.load(config.request.rubrics))
    prices = PriceTable(config.run.prices())
    batch_prices = config.price_table() if config.batch.batch else None
    max_output = config.panel.max_output_tokens
    output_estimate = max_output or OUTPUT_ESTIMATE
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
                name = request.judge_model
                line["body"] = orjson.loads(
                    encode(
                        request.body, judges[name], starting[name], config.panel.max_output_tokens
                    )
                )  # what grade sends: the judge's protocol and profile
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
        _estimate(requests_by_judge, prompt_tokens, output_estimate, prices, batch_prices)
    return 0


def _judges(judges: dict[str, Judge], keys: Keys, starting: dict[str, Profile]) -> None:
    """Who serves each judge: provider, URL, key variable (never the key), protocol, and
    the request profile it starts with."""
    print("judges:")
    for name, judge in judges.items():
        provider = judge.provider
        variable = provider.api_key_env
        key = (
            "no key"
            if variable is None or provider.auth == "none"
            else f"${variable} ({'set' if keys.by_judge.get(name) else 'NOT SET'})"
        )
        profile = starting[name]
        shape = [profile.family]
        shape.append("temperature" if profile.temperature else "no temperature")
        shape.append(profile.tokens_field)
        if profile.reasoning_effort:
            shape.append(f"reasoning_effort {profile.reasoning_effort}")
        shape.append({"json_schema": "strict JSON Schema", "json_object": "JSON mode",
                      "tool": "forced verdict tool"}[profile.structured])  # fmt: skip
        print(
            f"  {name}: {provider.name} at {safe_url(judge.base_url)}, key {key}, "
            f"{provider.protocol}; {', '.join(shape)} ({judge.chosen})"
        )
    print()


def _estimate(
    requests: Counter[str],
    prompt_tokens: dict[str, int],
    output_estimate: int,
    prices: PriceTable,
    batch_prices: PriceTable | None = None,
) -> None:
    """The run's estimated tokens and cost, per judge and in all (and at batch prices)."""
    print(f"\nestimate (input tokens as rendered; {output_estimate:,} output tokens a verdict):")
    tables = [("cost (USD)", prices)]
    if batch_prices is not None:
        tables = [("live (USD)", prices), ("batch (USD)", batch_prices)]
    heads = "".join(f" {title:>12}" for title, _ in tables)
    print(f"  {'judge':<28} {'requests':>9} {'input tokens':>14}{heads}")
    totals = [0.0] * len(tables)
    unknown: list[str] = []
    for judge, n in requests.items():
        shown = ""
        for index, (_, table) in enumerate(tables):
            cost = table.cost(judge, prompt_tokens[judge], n * output_estimate)
            if cost is None:
                shown += f" {'no price':>12}"
            else:
                totals[index] += cost
                shown += f" {cost:>12,.2f}"
        if "no price" in shown:
            unknown.append(judge)
        print(f"  {judge:<28} {n:>9,} {prompt_tokens[judge]:>14,}{shown}")
    all_tokens = sum(prompt_tokens.values())
    shown = "".join(f" {total:>12,.2f}" for total in totals)
    print(f"  {'all':<28} {sum(requests.values()):>9,} {all_tokens:>14,}{shown}")
    if unknown:
        print(
            f"  no price known for {', '.join(unknown)}: add --price MODEL=IN,OUT (USD per "
            "million tokens) to include them"
        )
    print("  (built-in list prices unless --price says otherwise; retries not counted)")
