"""What the engine costs: verdicts/s and CPU per verdict, against the bare minimum.

A zero-latency simulator with no limits (in its own process), one judge, and two kinds
of sessions: large (Exgentic-style OTel rows of 30 calls, about 1.4 MB) and small (4
calls, about 8 KB). Each is graded by `judge-engine grade` and by bench/minimal_client.py
(parse each row once, one HTTP request of about the same size). CPU is the process's
user+system time (from wait4), not wall time; the engine's own per-stage split comes
from its summary.json (read: sources, adapters, guard, resume check; render; parse:
verdicts; journal: durable writes and score rows; the rest: HTTP, loop, limits).

    python bench/engine_cost.py [--large 500] [--small 5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _common import KEY, Sim, grade_command, machine, run, summary, write_sessions

MINIMAL = str(Path(__file__).with_name("minimal_client.py"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--large", type=int, default=500)
    parser.add_argument("--small", type=int, default=5000)
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="alternate the two programs this many times; medians reported",
    )
    args = parser.parse_args()
    print(f"machine: {machine()}; medians of {args.rounds} alternating rounds")
    print("| rows | sessions | program | verdicts/s | CPU ms/verdict | engine / minimal |")
    print("|---|---:|---|---:|---:|---:|")
    splits = []
    with tempfile.TemporaryDirectory() as tmp, Sim() as sim:
        for size, count in (("large", args.large), ("small", args.small)):
            source = write_sessions(Path(tmp) / f"{size}.jsonl", count, size=size)
            minimal_runs, engine_runs, stage_runs = [], [], []
            for round_ in range(args.rounds):
                minimal = run([sys.executable, MINIMAL, str(source), sim.url])
                assert minimal.returncode == 0, minimal.stdout
                minimal_runs.append(minimal)
                out = Path(tmp) / f"out-{size}-{round_}"
                engine = run(
                    grade_command([str(source)], sim.url, out, "--concurrency", "64"),
                    env={"OPENAI_API_KEY": KEY},
                )
                assert engine.returncode == 0, engine.stdout
                engine_runs.append(engine)
                stage_runs.append((summary(out)["cpu_s"], engine.cpu_s))
            minimal = sorted(minimal_runs, key=lambda c: c.cpu_s)[len(minimal_runs) // 2]
            engine = sorted(engine_runs, key=lambda c: c.cpu_s)[len(engine_runs) // 2]
            base = minimal.cpu_s * 1000 / count
            cost = engine.cpu_s * 1000 / count
            spread = ", ".join(f"{c.cpu_s * 1000 / count:.2f}" for c in minimal_runs)
            print(
                f"| {size} | {count:,} | minimal | {count / minimal.wall_s:,.0f} "
                f"| {base:.2f} ({spread}) | |"
            )
            spread = ", ".join(f"{c.cpu_s * 1000 / count:.2f}" for c in engine_runs)
            print(
                f"| {size} | {count:,} | judge-engine | {count / engine.wall_s:,.0f} "
                f"| {cost:.2f} ({spread}) | {cost / base:.2f}x |",
                flush=True,
            )
            stages, process_cpu = sorted(stage_runs, key=lambda s: s[1])[len(stage_runs) // 2]
            splits.append((size, count, stages, process_cpu))
    print(
        "\nengine CPU ms per verdict by stage (median round; in-process measure; 'start-up' is"
        " the rest: interpreter and imports)"
    )
    print("| rows | read+normalize | render | HTTP+loop | parse | journal | start-up | total |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for size, count, stages, process_cpu in splits:
        cells = [
            f"{stages.get(k, 0.0) * 1000 / count:.3f}"
            for k in ("read", "render", "http_and_loop", "parse", "journal")
        ]
        startup = (process_cpu - stages["total"]) * 1000 / count
        print(
            f"| {size} | {' | '.join(cells)} | {startup:.3f} | {process_cpu * 1000 / count:.3f} |"
        )


if __name__ == "__main__":
    main()
