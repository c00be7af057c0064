"""`report --labels --json` at scale: 100,000 graded sessions and 1,000 labels.

Writes a journal as a two-judge grade run writes it (six benchmarks, four harnesses,
eight agent models, tokens, LLM calls and cost on every session; each judge errs at a
known rate per benchmark), a labels file of 1,000 sessions drawn at random (with the
drawn column `labels sample` writes, so `auto` picks PPI++), then times `judge-engine
report OUT --labels FILE --json FILE` as a subprocess and reads its peak memory
(ru_maxrss of the child), once with each method.

    python bench/measure_report.py [--sessions 100000] [--labels 1000]
"""

from __future__ import annotations

import argparse
import csv
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine

from judge_engine.journal import Record, request_key

BENCHMARKS = ["swebench", "appworld", "browsecompplus", "tau2_airline", "tau2_retail", "mbpp"]
HARNESSES = ["tool_calling", "smolagents_code", "claude_code", "openai_solo"]
MODELS = ["gpt-4.1", "gpt-5.2", "claude-opus-4-5", "kimi-k2.5", "qwen3-8b", "deepseek-v3.2",
          "gemini-3-pro-preview", "claude-sonnet-4-5"]  # fmt: skip


def write_run(out: Path, sessions: int, seed: int = 0) -> dict[str, int]:
    """The journal of a graded run; returns each session's truth."""
    rng = random.Random(seed)
    out.mkdir(parents=True)
    truth: dict[str, int] = {}
    with open(out / "journal.jsonl", "wb") as journal:
        for i in range(sessions):
            session = f"s{i:07d}"
            benchmark = BENCHMARKS[i % len(BENCHMARKS)]
            harness, model = rng.choice(HARNESSES), rng.choice(MODELS)
            rate = 0.2 + 0.1 * BENCHMARKS.index(benchmark) + 0.05 * MODELS.index(model) / 2
            real = int(rng.random() < min(0.95, rate))
            truth[session] = real
            tokens = rng.randint(2000, 40000) * (2 if not real else 1)
            for slot, (sensitivity, specificity) in (("gpt-4.1-mini", (0.92, 0.7)),
                                                     ("o3", (0.8, 0.93))):  # fmt: skip
                verdict = (
                    int(rng.random() < sensitivity) if real else int(rng.random() >= specificity)
                )
                record = Record(
                    key=request_key(session, slot, slot, "r", "p", 0),
                    session_id=session, slot=slot, judge=slot, sample=0, status="ok",
                    rubric=benchmark, rubric_version="r", prompt_version="p", success=verdict,
                    confidence="high", reasoning="bench", benchmark=benchmark, harness=harness,
                    agent_models=(model,), agent_model=model,
                    agent_usage={"input_tokens": tokens - 500, "output_tokens": 500,
                                 "total_tokens": tokens},
                    agent_cost_usd=tokens * 2e-6, agent_cost_from="spans",
                    agent_calls=tokens // 1500,
                )  # fmt: skip
                journal.write(record.to_json())
    return truth


def write_labels(path: Path, truth: dict[str, int], n: int, seed: int = 1) -> None:
    chosen = random.Random(seed).sample(sorted(truth), n)
    drawn = f"judge-engine labels sample: {n} of {len(truth)} graded sessions, simple random"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["session_id", "label", "drawn"])
        for session in chosen:
            writer.writerow([session, truth[session], drawn])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--labels", type=int, default=1_000)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        started = time.perf_counter()
        truth = write_run(out, args.sessions)
        labels = Path(tmp) / "labels.csv"
        write_labels(labels, truth, args.labels)
        print(f"wrote {args.sessions:,} sessions x 2 judges and {args.labels:,} labels "
              f"in {time.perf_counter() - started:.1f} s")  # fmt: skip
        print(f"{'method':>14} {'wall':>8} {'peak RSS':>10}")
        for method in ("ppi++", "rogan-gladen"):
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "judge_engine", "report", str(out), "--labels",
                 str(labels), "--method", method, "--json", str(Path(tmp) / "r.json")],
                check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            wall = time.perf_counter() - started
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            shown = f"{peak / 1024:,.0f} MB" if peak > before else "(as before)"
            print(f"{method:>14} {wall:>7.1f}s {shown:>10}")


if __name__ == "__main__":
    main()
