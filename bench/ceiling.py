"""The rate-limit ceiling: how close the engine runs to a server's limit, and the 429s.

The simulator answers in about 1 s (±20%) and accepts at most R requests in any 60 s.
Three runs of at least two minutes each:
  A. the engine told the limit: --rpm R;
  B. no --rpm: the simulator announces its limit in x-ratelimit-* headers (as OpenAI does);
  C. no --rpm and no headers: only 429s with Retry-After tell the engine anything.
Achieved = requests the simulator accepted in the two minutes from the first, per minute,
as a share of R. 429s are counted at the simulator, with the time of the last one.

    python bench/ceiling.py [--rpm 600] [--minutes 2]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _common import KEY, Sim, grade_command, machine, run, write_sessions


def measure(
    label: str, rpm: int, minutes: float, sim_args: list[str], engine_args: list[str], folder: Path
) -> str:
    sessions = int(rpm * (minutes + 0.75))
    source = write_sessions(folder / f"{label}.jsonl", sessions)
    with Sim("--latency-ms", "1000", "--rpm", str(rpm), *sim_args) as sim:
        child = run(
            grade_command([str(source)], sim.url, folder / f"out-{label}", *engine_args),
            env={"OPENAI_API_KEY": KEY},
        )
        stats = sim.stats(times=True)
    accepted = [t for t in stats["accepted_times"] if t < minutes * 60]
    achieved = len(accepted) / minutes
    throttled = stats["throttled_times"]
    last = f"{max(throttled):.1f} s" if throttled else "-"
    return (
        f"| {label} | {rpm} | {achieved:,.0f} | {achieved / rpm:.1%} | {len(throttled)} "
        f"| {last} | {stats['max_accepted_per_60s']} | {child.returncode} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rpm", type=int, default=600)
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--only", choices=("A", "B", "C"))
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print("| run | limit R (rpm) | accepted / min | of R | 429s | last 429 | max in 60 s | exit |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    runs = {
        "A: --rpm R": ([], ["--rpm", str(args.rpm)]),
        "B: limit from headers": ([], []),
        "C: 429s only": (["--no-rate-headers"], []),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for label, (sim_args, engine_args) in runs.items():
            if args.only and not label.startswith(args.only):
                continue
            print(
                measure(label, args.rpm, args.minutes, sim_args, engine_args, Path(tmp)), flush=True
            )


if __name__ == "__main__":
    main()
