"""Side by side: the usual ways to grade sessions, against the same simulator.

The same sessions (small OTel rows), one judge, the simulator answering in --latency-ms:
(a) a sequential `requests` loop, (b) a thread pool of `requests`, (c) the official
AsyncOpenAI client under an asyncio semaphore, (d) judge-engine. Verdicts/s and CPU ms
per verdict (process user+system time from wait4), and the ratios to judge-engine.
Every client renders identical request bodies with judge-engine's own code.

    python bench/side_by_side.py [--sessions 1000] [--latency-ms 100]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _common import KEY, Sim, grade_command, machine, run, write_sessions

CLIENTS = str(Path(__file__).with_name("clients.py"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    args = parser.parse_args()
    n = args.sessions
    print(f"machine: {machine()}; {n:,} sessions, simulator latency {args.latency_ms:g} ms")
    print("| client | verdicts/s | CPU ms/verdict | judge-engine's speed-up | its CPU saving |")
    print("|---|---:|---:|---:|---:|")
    rows = []
    with tempfile.TemporaryDirectory() as tmp, Sim("--latency-ms", str(args.latency_ms)) as sim:
        source = str(write_sessions(Path(tmp) / "sessions.jsonl", n))
        for name, command in (
            ("(a) sequential requests", [sys.executable, CLIENTS, "sequential"]),
            ("(b) requests thread pool (64)", [sys.executable, CLIENTS, "threads"]),
            ("(c) AsyncOpenAI + semaphore (64)", [sys.executable, CLIENTS, "openai"]),
        ):
            out = Path(tmp) / f"{name[1]}.jsonl"
            child = run([*command, source, sim.url, str(out)])
            assert child.returncode == 0, child.stdout
            assert out.read_bytes().count(b"\n") == n
            rows.append((name, n / child.wall_s, child.cpu_s * 1000 / n))
        child = run(
            grade_command([source], sim.url, Path(tmp) / "engine", "--concurrency", "64"),
            env={"OPENAI_API_KEY": KEY},
        )
        assert child.returncode == 0, child.stdout
        engine = ("(d) judge-engine (64)", n / child.wall_s, child.cpu_s * 1000 / n)
    for name, rate, cpu in [*rows, engine]:
        print(
            f"| {name} | {rate:,.1f} | {cpu:.2f} | {engine[1] / rate:.2f}x "
            f"| {cpu / engine[2]:.2f}x |"
        )


if __name__ == "__main__":
    main()
