"""Scale: peak memory as sessions grow, and how fast a large run resumes.

Generated small OTel sessions (about 8 KB each) graded by one judge against a
zero-latency simulator:
1. peak RSS of `judge-engine grade` for 1,000, 10,000 and 100,000 sessions;
2. the finished 100,000-session run, run again: time to find nothing to do;
3. a half-finished 100,000-session run (graded with --limit 50000), run again: time
   until its first new request, and in all.

    python bench/scale.py [--sizes 1000,10000,100000] [--workers N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import KEY, Sim, grade_command, machine, run, summary, write_sessions

ENV = {"OPENAI_API_KEY": KEY}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--workers", help="grade's --workers (default: grade's own)")
    args = parser.parse_args()
    extra = ("--workers", args.workers) if args.workers else ()
    sizes = [int(n) for n in args.sizes.split(",")]
    print(f"machine: {machine()}")
    print("| sessions | verdicts/s | wall s | peak RSS MB | journal MB |")
    print("|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        biggest = max(sizes)
        source = write_sessions(folder / "sessions.jsonl", biggest)
        with Sim() as sim:
            for n in sizes:
                out = folder / f"out-{n}"
                child = run(
                    grade_command([str(source)], sim.url, out, "--limit", str(n), *extra), env=ENV
                )
                assert child.returncode == 0, child.stdout
                journal = (out / "journal.jsonl").stat().st_size / 1e6
                print(
                    f"| {n:,} | {n / child.wall_s:,.0f} | {child.wall_s:,.1f} "
                    f"| {child.peak_rss_mb:,.0f} | {journal:,.1f} |",
                    flush=True,
                )

            out = folder / f"out-{biggest}"
            again = run(
                grade_command([str(source)], sim.url, out, "--limit", str(biggest), *extra), env=ENV
            )
            done = summary(out)
            print(
                f"\nfinished run of {biggest:,} sessions, run again: {again.wall_s:.1f} s wall, "
                f"{again.cpu_s:.1f} s CPU, {done['requests_sent']} requests, "
                f"peak RSS {again.peak_rss_mb:,.0f} MB"
            )

        half = folder / "out-half"
        with Sim() as sim:
            first = run(
                grade_command([str(source)], sim.url, half, "--limit", str(biggest // 2), *extra),
                env=ENV,
            )
            assert first.returncode == 0
        with Sim() as sim:
            started = time.time()
            rest = run(grade_command([str(source)], sim.url, half, *extra), env=ENV)
            first_request = sim.stats()["first_arrival_epoch"] - started
            sent = summary(half)["requests_sent"]
        print(
            f"half-finished run ({biggest // 2:,} of {biggest:,} done), run again: first new "
            f"request after {first_request:.1f} s; finished in {rest.wall_s:.1f} s with "
            f"{sent:,} requests"
        )


if __name__ == "__main__":
    main()
