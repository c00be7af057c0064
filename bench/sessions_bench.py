"""Sessions in, measured: stream realistic OTel rows through the adapters and rendering.

Generates Exgentic-style rows (30 LLM calls, turns of about 2 KB, so rows of about
1 MB: every call's input repeats the conversation so far) into a JSONL or Parquet
file, then streams them through `read_sessions` and `render_request` and prints
sessions/s, MB/s, the time per KB of row spent reading and rendering, and peak RSS.
Each size runs in a fresh process, so peak memory can be compared across sizes:
flat means streaming works.

    python bench/sessions_bench.py                 # sizes 100, 400, 1600
    python bench/sessions_bench.py --sizes 50,200 --format parquet
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from _common import write_sessions

from judge_engine.prompt import render_request
from judge_engine.rubrics import RubricSet
from judge_engine.sessions import Session, read_sessions


def run_one(path: Path, judge: str) -> dict[str, float]:
    rubrics = RubricSet.load()
    size = path.stat().st_size
    sessions = 0
    render_s = 0.0
    started = time.perf_counter()
    cpu_started = time.process_time()
    for item in read_sessions([str(path)]):
        if not isinstance(item, Session):
            raise SystemExit(f"unexpected rejection: {item}")
        t0 = time.perf_counter()
        request = render_request(item, rubrics.for_benchmark(item.benchmark), judge)
        render_s += time.perf_counter() - t0
        assert request.prompt_tokens <= 32_000
        sessions += 1
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    kib = size / 1024
    return {
        "sessions": sessions,
        "mb": size / 1e6,
        "wall_s": wall,
        "cpu_s": cpu,
        "read_ms_per_kb": (wall - render_s) * 1000 / kib,
        "render_ms_per_kb": render_s * 1000 / kib,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,400,1600", help="session counts, comma separated")
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--turn-bytes", type=int, default=2000)
    parser.add_argument("--format", choices=("jsonl", "parquet"), default="jsonl")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one file
    args = parser.parse_args()
    if args.one:
        print(orjson.dumps(run_one(Path(args.one), "gpt-4.1-mini")).decode())
        return

    print(
        f"OTel rows: {args.calls} calls, turns of {args.turn_bytes} B, {args.format}; "
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores"
    )
    header = (
        f"{'sessions':>9} {'MB':>8} {'MB/row':>7} {'sessions/s':>11} {'MB/s':>7} "
        f"{'read ms/KB':>11} {'render ms/KB':>13} {'peak RSS MB':>12}"
    )
    print(header)
    with tempfile.TemporaryDirectory() as tmp:
        for count in (int(n) for n in args.sizes.split(",")):
            path = Path(tmp) / f"rows.{args.format}"
            write_sessions(
                path, count, calls=args.calls, turn_bytes=args.turn_bytes, fmt=args.format
            )
            out = subprocess.run(
                [sys.executable, __file__, "--one", str(path)],
                capture_output=True,
                text=True,
                check=True,
            )
            r = orjson.loads(out.stdout)
            print(
                f"{r['sessions']:>9,} {r['mb']:>8,.0f} {r['mb'] / r['sessions']:>7.2f} "
                f"{r['sessions'] / r['wall_s']:>11,.1f} {r['mb'] / r['wall_s']:>7,.0f} "
                f"{r['read_ms_per_kb']:>11.4f} {r['render_ms_per_kb']:>13.4f} "
                f"{r['peak_rss_mb']:>12,.0f}"
            )
            path.unlink()


if __name__ == "__main__":
    main()
