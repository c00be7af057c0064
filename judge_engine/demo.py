"""The demo: grade the bundled samples against the local simulator, then resume.

In: nothing but the package (its samples). Out: a graded `OUT/` (default out/demo)
and, on stdout, what happened: the summary per judge, where the score columns are,
and a second run that finds everything done and sends no request.
"""

from __future__ import annotations

from pathlib import Path

from .config import Config
from .engine import RunResult, grade
from .testing.sim import BANNER, SimConfig, Simulator

SAMPLES = Path(__file__).resolve().parent / "samples"
JUDGES = ("gpt-4.1", "claude-opus-4-5")
FALLBACKS = ("gemini-2.5-pro",)
#: The simulator's own key: a stand-in, so the demo shows the Authorization path.
_DEMO_KEY = "sim-demo-key"


async def run_demo(out: Path, *, quiet: bool = False) -> int:
    simulator = Simulator(SimConfig(latency_ms=150, rpm=1200, api_key=_DEMO_KEY))
    url = await simulator.start()
    print(f"{BANNER}\nlistening on {url}\n")
    print(
        f"Grading the bundled samples ({SAMPLES}) with the panel {', '.join(JUDGES)}\n"
        f"and the fallback {FALLBACKS[0]} for sessions a panel judge produced itself.\n"
    )
    try:
        config = Config.of(
            sources=(str(SAMPLES),),
            judge=JUDGES,
            fallback_judge=FALLBACKS,
            base_url=url,
            out=out,
            concurrency=16,
            rpm=1200,
            fresh=True,
            quiet=quiet,
        )
        first, summary = await grade(config, _DEMO_KEY)
        print(summary)
        if first.status == "error":
            print(f"error: {first.message}")
            return 2
        _where(first, out)
        print("\nRunning the same command again: a finished run resumes with nothing to do.")
        second, _ = await grade(config.replace(fresh=False, quiet=True), _DEMO_KEY)
        print(
            f"second run: {second.requests_sent} requests sent, {second.already_done} sessions "
            f"already done, {second.score_rows} score rows"
        )
        stats = simulator.stats()
        print(
            f"\nthe simulator counted {stats['requests']} requests in all "
            f"(at most {stats['max_requests_per_60s']} in any 60 s; its limit is 1200)"
        )
        return 0 if first.status == second.status == "done" else 1
    finally:
        await simulator.stop()


def _where(result: RunResult, out: Path) -> None:
    print(
        f"\n{result.sessions} sessions read, {result.rejected} rejected row(s) "
        f"({out / 'rejected.jsonl'})\n"
        f"score columns: {out / 'scores.jsonl'} ({result.score_rows} rows, one per session and "
        "judge slot, keyed for upsert)\n"
        f"journal: {out / 'journal.jsonl'}\n"
        f"next: judge-engine export {out} --to parquet   (one row per session)"
    )
