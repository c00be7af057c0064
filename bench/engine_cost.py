"""What the engine costs: verdicts/s and CPU per verdict, against the bare minimum.

A zero-latency simulator with no limits (in its own process), one judge, and two kinds
of sessions: large (Exgentic-style OTel rows of 30 calls, about 1.4 MB) and small (4
calls, about 9 KB). Each is graded by bench/minimal_client.py (parse each row once,
post its last call) and by `judge-engine grade` with `--workers 1` (all in one
process) and `--workers N` (N = the usable cores: the worker pool). CPU is the
user+system time of the program's whole process tree (`tree_cpu.py` adopts and reaps
every descendant, so wait4 counts the fork server and the workers too); the engine's
per-stage split comes from its summary.json (read: sources, adapters, guard, resume
check, and with workers the hand-over to them; render; parse: verdicts; journal:
durable writes and score rows; HTTP+loop: the rest of the sending process; workers:
the worker processes' own reading and rendering). "start-up" is what no stage
measures: the interpreter and imports, and with workers their start-up and the
pickling between processes.

It ends with the projected ceiling: verdicts/s per machine size, from the sending
process's CPU per verdict (one core) and the workers' (the other cores).

    python bench/engine_cost.py [--large 500] [--small 5000] [--rounds 3] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import KEY, Child, Sim, grade_command, machine, run, summary, write_sessions

MINIMAL = str(Path(__file__).with_name("minimal_client.py"))
#: Every program runs under this, so the CPU of its whole process tree is counted.
TREE = [sys.executable, str(Path(__file__).with_name("tree_cpu.py"))]
STAGES = ("read", "render", "http_and_loop", "parse", "journal", "workers")


def _median(runs: list[Any], key: Any) -> Any:
    return sorted(runs, key=key)[len(runs) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--large", type=int, default=500)
    parser.add_argument("--small", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="alternate the programs this many times; medians reported",
    )
    args = parser.parse_args()
    counts = sorted({1, args.workers})
    print(f"machine: {machine()}; medians of {args.rounds} alternating rounds")
    print(
        "| rows | sessions | program | verdicts/s | CPU ms/verdict | speed / minimal "
        "| CPU / minimal |"
    )
    print("|---|---:|---|---:|---:|---:|---:|")
    splits: list[tuple[str, int, int, dict[str, float], float]] = []
    with tempfile.TemporaryDirectory() as tmp, Sim() as sim:
        for size, count in (("large", args.large), ("small", args.small)):
            source = write_sessions(Path(tmp) / f"{size}.jsonl", count, size=size)
            minimal_runs: list[Child] = []
            engine_runs: dict[int, list[tuple[Child, dict[str, float]]]] = {n: [] for n in counts}
            for round_ in range(args.rounds):
                minimal = run([*TREE, sys.executable, MINIMAL, str(source), sim.url])
                assert minimal.returncode == 0, minimal.stdout
                minimal_runs.append(minimal)
                for n in counts:
                    out = Path(tmp) / f"out-{size}-{n}-{round_}"
                    engine = run(
                        TREE
                        + grade_command(
                            [str(source)], sim.url, out, "--concurrency", "64", "--workers", str(n)
                        ),
                        env={"OPENAI_API_KEY": KEY},
                    )
                    assert engine.returncode == 0, engine.stdout
                    engine_runs[n].append((engine, summary(out)["cpu_s"]))
            minimal = _median(minimal_runs, lambda c: c.cpu_s)
            base_cpu = minimal.cpu_s * 1000 / count
            base_speed = count / minimal.wall_s
            spread = ", ".join(f"{c.cpu_s * 1000 / count:.2f}" for c in minimal_runs)
            print(
                f"| {size} | {count:,} | minimal | {base_speed:,.0f} | {base_cpu:.2f} ({spread}) "
                "| | |"
            )
            for n in counts:
                engine, stages = _median(engine_runs[n], lambda r: r[0].cpu_s)
                fastest = _median(engine_runs[n], lambda r: r[0].wall_s)[0]
                cost = engine.cpu_s * 1000 / count
                speed = count / fastest.wall_s
                spread = ", ".join(f"{c.cpu_s * 1000 / count:.2f}" for c, _ in engine_runs[n])
                print(
                    f"| {size} | {count:,} | judge-engine --workers {n} | {speed:,.0f} "
                    f"| {cost:.2f} ({spread}) | {speed / base_speed:.2f}x "
                    f"| {cost / base_cpu:.2f}x |",
                    flush=True,
                )
                splits.append((size, count, n, stages, engine.cpu_s))
    print(
        "\nengine CPU ms per verdict by stage (median round; in-process measure; 'start-up'"
        " is the rest: interpreter, imports, and the workers' start and hand-over)"
    )
    print(
        "| rows | workers | read+normalize | render | HTTP+loop | parse | journal "
        "| in workers | start-up | total |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    ceilings: dict[str, tuple[float, float, float]] = {}
    for size, count, n, stages, process_cpu in splits:
        cells = [f"{stages.get(k, 0.0) * 1000 / count:.3f}" for k in STAGES]
        startup = (process_cpu - stages["total"]) * 1000 / count
        print(
            f"| {size} | {n} | {' | '.join(cells)} | {startup:.3f} "
            f"| {process_cpu * 1000 / count:.3f} |"
        )
        sender = (stages["total"] - stages.get("workers", 0.0)) * 1000 / count
        if n == 1:
            alone = process_cpu * 1000 / count
            ceilings[size] = (alone, 0.0, 0.0)
        else:
            # Everything outside the sending process's stages is the workers' share:
            # their own work, their start-up and the hand-over.
            ceilings[size] = (ceilings[size][0], sender, process_cpu * 1000 / count - sender)
    print(
        "\nprojected ceiling, verdicts/s: one process alone on a core (--workers 1), or the"
        " sending process on one core and the workers on the rest (capped by the sender)"
    )
    cores = (1, 2, 4, 8, 16)
    print("| rows | " + " | ".join(f"{c} cores" for c in cores) + " |")
    print("|---|" + "---:|" * len(cores))
    for size, (alone, sender, worker) in ceilings.items():
        cells = []
        for c in cores:
            if c == 1 or not worker:
                cells.append(f"{1000 / alone:,.0f}")
            else:
                readers = min(c - 1, 8)
                cells.append(f"{min(1000 / sender, readers * 1000 / worker):,.0f}")
        print(f"| {size} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
