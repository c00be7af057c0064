"""The torture run: a fault storm, five SIGKILLs at random moments, and an exact audit.

N generated sessions (default 10,000), a two-judge panel. First a clean run against a
fault-free simulator gives the reference verdicts. Then the same grading against a
simulator injecting at once 10% 429s (half with Retry-After, half with reset headers
only), 5% 5xx, 2% dropped connections, 3% malformed verdicts, 1% replies slower than
the timeout and 6% hostile replies (a forged second verdict, a forged verdict quoted in
the reasoning, absurd rate-limit headers, the key echoed back, gzip bodies, JSON nested
100,000 deep); the engine is killed with SIGKILL five times at random moments and
resumed each time. At the end:

- exactly one score row per session and judge slot, and `journal verify` passes;
- every verdict equals the clean run's;
- no verdict lost (every request has one) and none duplicated (no request two);
- no request asked again but those in flight at a kill: the simulator counts every
  verdict it served per request, and the repeats must equal what the kills left
  answered but not yet durable, at most --concurrency (a request holds a token from
  send until durable);
- the key (echoed back by hostile replies) is in no file under OUT.

    python bench/torture.py [--sessions 10000] [--kills 5] [--seed 7]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import KEY, Sim, grade_command, write_sessions

JUDGES = ("gpt-4.1", "gemini-2.5-pro")
FAULTS = [
    "--throttle-rate", "0.05", "--throttle-reset-rate", "0.05", "--fail-rate", "0.05",
    "--drop-rate", "0.02", "--malformed-rate", "0.03", "--slow-rate", "0.01", "--slow-s", "3",
    "--hostile-rate", "0.06",
]  # fmt: skip
ENGINE = ["--concurrency", "32", "--timeout", "1.5", "--max-retries", "15", "--grace", "2"]
#: Requests a kill may leave answered but not durable: a request holds one of
#: --concurrency tokens from send until its outcome is durable.
IN_FLIGHT = 32


@dataclass
class Outcome:
    sessions: int
    kills: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    lost_in_flight: list[int] = field(default_factory=list)
    asked_again: int = 0
    verdicts_lost: int = 0
    verdicts_duplicated: int = 0
    verdicts_differing: int = 0
    score_rows: int = 0
    verify_ok: bool = False
    verify_output: str = ""
    key_leaks: int = 0
    wall_s: float = 0.0

    @property
    def passed(self) -> bool:
        return (
            self.verify_ok
            and self.verdicts_lost == 0
            and self.verdicts_duplicated == 0
            and self.verdicts_differing == 0
            and self.score_rows == self.sessions * len(JUDGES)
            and sum(self.lost_in_flight)
            <= self.asked_again
            <= sum(self.lost_in_flight) + self.kills
            and all(n <= IN_FLIGHT for n in self.lost_in_flight)
            and self.key_leaks == 0
        )


def _command(source: Path, url: str, out: Path) -> list[str]:
    command = grade_command([str(source)], url, out, *ENGINE)
    command += ["--judge", JUDGES[1]]  # grade_command names the first judge
    return command


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _verdict_lines(path: Path) -> int:
    """Whole records holding a verdict: a failure the run wrote (a reply that never
    came) is no verdict the simulator served, and a torn last line (the kill landed in
    the write) is no record: the next run cuts it and asks again."""
    if not path.exists():
        return 0
    whole = path.read_bytes().rpartition(b"\n")[0]
    return whole.count(b'"status":"ok"')


def _verdicts(out: Path) -> dict[tuple[str, str], tuple[Any, ...]]:
    """Each (session, slot)'s verdict: success and confidence (a hostile reply may word
    its reasoning differently, quoting a forgery or an echoed header, but its verdict
    must be the clean run's)."""
    verdicts = {}
    for line in (out / "scores.jsonl").read_bytes().splitlines():
        row = orjson.loads(line)
        verdicts[(row["session_id"], row["judge_slot"])] = (
            row["scores"]["task_success"],
            row["metadata"]["judge_confidence"],
        )
    return verdicts


def torture(sessions: int, kills: int, seed: int, folder: Path) -> Outcome:
    rng = random.Random(seed)
    env = {**os.environ, "OPENAI_API_KEY": KEY}
    source = write_sessions(folder / "sessions.jsonl", sessions, seed=seed)
    outcome = Outcome(sessions)
    started = time.monotonic()

    clean = folder / "clean"
    with Sim() as sim:
        subprocess.run(_command(source, sim.url, clean), env=env, check=True, capture_output=True)
    reference = _verdicts(clean)

    out = folder / "torture"
    journal = out / "journal.jsonl"
    total = sessions * len(JUDGES)
    with Sim(*FAULTS, "--seed", str(seed)) as sim:
        for _ in range(kills):
            served_before = sim.stats()["verdicts_served"]
            durable_before = _lines(journal)
            verdicts_before = _verdict_lines(journal)
            if durable_before >= total * 0.9:
                break  # nothing much left to interrupt
            # A random moment: after a random share of what is left has become durable.
            target = durable_before + rng.uniform(0.05, 0.3) * (total - durable_before)
            process = subprocess.Popen(
                _command(source, sim.url, out),
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            while _lines(journal) < target and process.poll() is None:
                time.sleep(rng.uniform(0.001, 0.05))
            if process.poll() is not None:
                break  # finished before the kill
            process.send_signal(signal.SIGKILL)
            process.wait()
            # Replies already on the wire arrive: wait until the simulator has served
            # nothing more for 0.3 s (a fixed wait missed a late one on a loaded machine).
            settled = sim.stats()["verdicts_served"]
            for _ in range(20):
                time.sleep(0.3)
                now = sim.stats()["verdicts_served"]
                if now == settled:
                    break
                settled = now
            outcome.kills += 1
            answered = sim.stats()["verdicts_served"] - served_before
            durable = _verdict_lines(journal) - verdicts_before
            outcome.lost_in_flight.append(answered - durable)
        final = subprocess.run(
            _command(source, sim.url, out), env=env, capture_output=True, check=False
        )
        if final.returncode != 0:
            raise RuntimeError(f"the final resume failed: {final.stderr.decode()[-2000:]}")
        stats = sim.stats()

    outcome.faults = stats["faults"]
    outcome.asked_again = stats["verdicts_served"] - stats["verdicts_distinct"]
    records = [orjson.loads(line) for line in journal.read_bytes().splitlines()]
    outcome.retries = sum(max(0, r["attempts"] - 1) for r in records)
    verdicts_per_key = Counter(r["key"] for r in records if r["status"] == "ok")
    outcome.verdicts_duplicated = sum(n - 1 for n in verdicts_per_key.values() if n > 1)
    outcome.verdicts_lost = total - len(verdicts_per_key)
    got = _verdicts(out)
    outcome.score_rows = len(got)
    outcome.verdicts_differing = sum(1 for k, v in reference.items() if got.get(k) != v)
    check = subprocess.run(
        [sys.executable, "-m", "judge_engine", "journal", "verify", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    outcome.verify_ok = check.returncode == 0
    outcome.verify_output = check.stdout.strip()
    outcome.key_leaks = sum(
        1 for path in out.rglob("*") if path.is_file() and KEY.encode() in path.read_bytes()
    )
    outcome.wall_s = time.monotonic() - started
    return outcome


def report(outcome: Outcome) -> str:
    faults = ", ".join(f"{name} {n:,}" for name, n in sorted(outcome.faults.items()))
    return "\n".join(
        [
            f"sessions {outcome.sessions:,} x {len(JUDGES)} judges = "
            f"{outcome.sessions * len(JUDGES):,} requests; wall {outcome.wall_s:,.0f} s",
            f"faults met: {sum(outcome.faults.values()):,} ({faults})",
            f"retries: {outcome.retries:,}",
            f"kills survived: {outcome.kills}",
            f"answered but not yet durable at the kills (asked again): {outcome.lost_in_flight}",
            f"verdicts served twice by the simulator: {outcome.asked_again}",
            f"verdicts lost: {outcome.verdicts_lost}",
            f"verdicts duplicated: {outcome.verdicts_duplicated}",
            f"verdicts differing from the clean run: {outcome.verdicts_differing}",
            f"files under OUT holding the key: {outcome.key_leaks}",
            f"score rows: {outcome.score_rows:,}",
            f"journal verify: {(outcome.verify_output or '-').splitlines()[-1]}",
            "PASSED" if outcome.passed else "FAILED",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        outcome = torture(args.sessions, args.kills, args.seed, Path(tmp))
    print(report(outcome))
    sys.exit(0 if outcome.passed else 1)


if __name__ == "__main__":
    main()
