"""What the engine costs: verdicts/s and CPU per verdict, against the bare minimum.

A zero-latency simulator with no limits (in its own process), one judge, and two kinds
of sessions: large (Exgentic-style OTel rows of 30 calls, about 1.4 MB) and small (4
calls, about 8 KB). Each is graded by `judge-engine grade` and by bench/minimal_client.py
(parse each row once, one HTTP request of about the same size). CPU is the process's
user+system time (from wait4), not wall time; the engine's own per-stage split comes
from its summary.json (read: sources, adapters, guard, resume check; render; parse:
verdicts; journal: durable writes and score rows; the rest: HTTP, loop, limits).

    python bench/engine_cost.py [--large 300] [--small 5000]
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
    parser.add_argument("--large", type=int, default=300)
    parser.add_argument("--small", type=int, default=5000)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print("| rows | sessions | program | verdicts/s | CPU ms/verdict | engine / minimal |")
    print("|---|---:|---|---:|---:|---:|")
    splits = []
    with tempfile.TemporaryDirectory() as tmp, Sim() as sim:
        for size, count in (("large", args.large), ("small", args.small)):
            source = write_sessions(Path(tmp) / f"{size}.jsonl", count, size=size)
            minimal = run([sys.executable, MINIMAL, str(source), sim.url])
            assert minimal.returncode == 0, minimal.stdout
            out = Path(tmp) / f"out-{size}"
            engine = run(
                grade_command([str(source)], sim.url, out, "--concurrency", "64"),
                env={"OPENAI_API_KEY": KEY},
            )
            assert engine.returncode == 0, engine.stdout
            base = minimal.cpu_s * 1000 / count
            cost = engine.cpu_s * 1000 / count
            print(
                f"| {size} | {count:,} | minimal | {count / minimal.wall_s:,.0f} | {base:.2f} | |"
            )
            print(
                f"| {size} | {count:,} | judge-engine | {count / engine.wall_s:,.0f} "
                f"| {cost:.2f} | {cost / base:.2f}x |",
                flush=True,
            )
            stages = summary(out)["cpu_s"]
            splits.append((size, count, stages, engine.cpu_s))
    print(
        "\nengine CPU ms per verdict by stage (in-process measure; 'start-up' is the rest:"
        " interpreter and imports)"
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
