"""The demo: grade the bundled samples against the local simulator, then resume.

In: nothing but the package (its samples). Out: a graded `OUT/` (default out/demo)
and, on stdout, what happened: the summary per judge, where the score columns are,
and a second run that finds everything done and sends no request. With `batch`, the
same through the simulator's Batch API: submitted with --no-wait, listed, then
collected by the same command, at batch prices.
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


async def run_demo(out: Path, *, quiet: bool = False, batch: bool = False) -> int:
    simulator = Simulator(SimConfig(latency_ms=150, rpm=1200, api_key=_DEMO_KEY, batch_delay_s=4.0))
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
        if batch:
            return await _batch_demo(config, simulator, out)
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
        _html(out)
        _measured(out)
        await _why(out, config)
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


async def _batch_demo(config: Config, simulator: Simulator, out: Path) -> int:
    """Submit as batches and exit, list them, collect them with the same command."""
    from .gateway.batch import batch_states  # imported here: the live demo needs none

    config = config.replace(batch=True, batch_size=20, no_wait=True, concurrency=None)
    print("judge-engine grade ... --batch --no-wait: submit the requests as batches, exit")
    first, _ = await grade(config, _DEMO_KEY)
    if first.status == "error":
        print(f"error: {first.message}")
        return 2
    print(f"{first.submitted} requests wait in batches at the server\n")
    print(f"judge-engine batches {out}:")
    for state in await batch_states(out, simulator.url, _DEMO_KEY):
        print(f"  {state.batch_id}  {state.status:<12} {state.requests} requests")
    print("\nThe same command without --no-wait: it polls until the batches end, collects")
    second, summary = await grade(config.replace(no_wait=False, fresh=False), _DEMO_KEY)
    print(summary)
    _where(second, out)
    _html(out)
    stats = simulator.stats()
    print(
        f"\nthe simulator made {sum(stats['batches'].values())} batches of "
        f"{stats['submitted_requests']} requests ({stats['submitted_twice']} submitted twice) "
        f"and answered {stats['requests']} live requests"
    )
    return 0 if second.status == "done" else 1


def _measured(out: Path) -> None:
    """The judge's rates corrected for its error, from the labels the samples carry and
    the small labels file shipped beside them."""
    from .measure import read_labels
    from .measure.render import corrected_by_benchmark
    from .report import build

    labels = SAMPLES / "labels.csv"
    report = build(out, labels=read_labels(labels), min_n=3)
    print(f"\nThe judge measured against labels (judge-engine report {out} --labels {labels}):\n")
    print("\n".join(corrected_by_benchmark(report["measured"])))


async def _why(out: Path, config: Config) -> None:
    """Why the sessions failed: the modes the judges named, then the failures grouped
    and named (`topics`)."""
    from .measure.render import modes_markdown
    from .report import build
    from .topics import failures, group, name_topics, write

    print(f"\nWhy the sessions failed (judge-engine report {out}):\n")
    print("\n".join(modes_markdown(build(out, min_n=3)["measured"])[:12]))
    topics, unassigned = group(failures(out, "all"), min_size=2, max_topics=4)
    naming = await name_topics(out, topics, config.replace(quiet=True), _DEMO_KEY)
    write(out, topics, unassigned, "all")
    print(f"\nThe failures grouped and named (judge-engine topics {out} --mode all --min-size 2):")
    for topic in topics:
        print(f"  {topic.id}  {topic.name}: {len(topic.sessions)} sessions, e.g. "
              f"{', '.join(topic.sessions[:3])}")  # fmt: skip
    print(f"  ({len(unassigned)} unassigned; {naming.asked} naming requests)")


def _html(out: Path) -> None:
    from .html import write_html

    path = out / "report.html"
    size = write_html(out, path)
    print(
        f"\nHTML report: {path} ({size / 1024:,.0f} KB): open it in a browser "
        f"({path.resolve().as_uri()}), or: judge-engine report {out} --html FILE"
    )
