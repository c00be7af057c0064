"""Three speed figures, each measured side by side with its yardstick.

1. Sporadic faults: the same sessions graded at the same limits against a fault-free
   simulator and against one that answers 5% of requests with a 429 (Retry-After: 1)
   and 3% with a 5xx; verdicts/s with faults as a share of verdicts/s without. A
   random 429 is not a spent budget: the target is at least 90%.
2. Start to finish: 300 sessions, replies in 200 ms, 16 in flight, timed as whole
   processes: `judge-engine grade --concurrency 16` and bench/minimal_client.py
   (start-up, 16 in flight, exit) against the same simulator, alternating. Each as a
   share of the ideal n / (16 / 0.2 s) wall time; the target is the engine at 95% or
   more of the minimal client's share.
3. Resuming a finished run of 100,000 sessions: the wall time of running the same
   command again (nothing to ask). The target is under 5 s.

    python bench/speed.py [--faults 4000] [--first 300] [--rounds 3] [--resume 100000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from _common import KEY, Sim, grade_command, machine, run, summary, write_sessions

ENV = {"OPENAI_API_KEY": KEY}
MINIMAL = str(Path(__file__).with_name("minimal_client.py"))


def faults(folder: Path, sessions: int) -> None:
    source = str(write_sessions(folder / "faults.jsonl", sessions))
    rates = {}
    for label, extra in (
        ("fault-free", []),
        ("5% 429 + 3% 5xx", ["--throttle-rate", "0.05", "--fail-rate", "0.03", "--seed", "3"]),
    ):
        with Sim("--latency-ms", "200", *extra) as sim:
            out = folder / f"faults-{len(rates)}"
            child = run(grade_command([source], sim.url, out, "--concurrency", "32"), env=ENV)
            assert child.returncode == 0, child.stdout
            done = summary(out)
            rates[label] = sessions / done["wall_s"]
            print(
                f"| {label} | {rates[label]:,.1f} | {done['requests_sent']:,} "
                f"| {done['throttled']:,} | {done['retries']:,} |",
                flush=True,
            )
    values = list(rates.values())
    print(f"\nwith faults: {values[1] / values[0]:.1%} of the fault-free verdicts/s (target 90%)")


def first_requests(folder: Path, sessions: int, rounds: int) -> None:
    source = str(write_sessions(folder / "first.jsonl", sessions))
    ideal = sessions / (16 / 0.2)
    walls: dict[str, list[float]] = {"judge-engine": [], "minimal aiohttp client": []}
    with Sim("--latency-ms", "200", "--seed", "1") as sim:
        for round_ in range(rounds):
            out = folder / f"first-{round_}"
            engine = run(grade_command([source], sim.url, out, "--concurrency", "16"), env=ENV)
            assert engine.returncode == 0, engine.stdout
            walls["judge-engine"].append(engine.wall_s)
            minimal = run([sys.executable, MINIMAL, source, sim.url, "--concurrency", "16"])
            assert minimal.returncode == 0
            walls["minimal aiohttp client"].append(minimal.wall_s)
    shares = {}
    for name, values in walls.items():
        wall = statistics.median(values)
        shares[name] = ideal / wall
        print(f"| {name} | {wall:.2f} | {shares[name]:.1%} |")
    ratio = shares["judge-engine"] / shares["minimal aiohttp client"]
    print(
        f"\nideal {ideal:.2f} s; judge-engine reaches {ratio:.1%} of the minimal client's "
        f"share (target 95%), median of {rounds} rounds"
    )


def resume(folder: Path, sessions: int) -> None:
    source = str(write_sessions(folder / "resume.jsonl", sessions))
    out = folder / "resume"
    with Sim() as sim:
        first = run(grade_command([source], sim.url, out), env=ENV)
        assert first.returncode == 0, first.stdout
        again = run(grade_command([source], sim.url, out), env=ENV)
        assert again.returncode == 0, again.stdout
        sent = summary(out)["requests_sent"]
    print(
        f"finished run of {sessions:,} sessions, run again: {again.wall_s:.2f} s wall, "
        f"{again.cpu_s:.2f} s CPU, {sent} requests (target under 5 s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faults", type=int, default=4000, help="sessions of part 1")
    parser.add_argument("--first", type=int, default=300, help="sessions of part 2")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of part 2")
    parser.add_argument("--resume", type=int, default=100_000, help="sessions of part 3")
    parser.add_argument("--only", choices=("faults", "first", "resume"))
    args = parser.parse_args()
    print(f"machine: {machine()}\n")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.only in (None, "faults"):
            print("| simulator | verdicts/s | requests | 429s | retries |")
            print("|---|---:|---:|---:|---:|")
            faults(folder, args.faults)
        if args.only in (None, "first"):
            print("\n| client | wall s | share of ideal |")
            print("|---|---:|---:|")
            first_requests(folder, args.first, args.rounds)
        if args.only in (None, "resume"):
            print()
            resume(folder, args.resume)


if __name__ == "__main__":
    main()
