"""Grading through the Batch API, against the simulator's implementation of the
documented endpoints: the same verdicts as live, exactly once across kills, failures by
the live rules, --no-wait, Ctrl-C, costs at batch prices."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

from judge_engine.config import Config
from judge_engine.engine import grade
from judge_engine.testing import synth
from judge_engine.testing.sim import SimConfig, Simulator

from .conftest import read_jsonl, write_jsonl

KEY = "sk-batch-" + "b" * 24
JUDGES = ("gpt-4.1", "o3")


def _source(tmp_path: Path, count: int = 12) -> str:
    rows = [
        synth.otel_row(f"s{i:03d}", "swebench", seed=i, success=i % 3 > 0) for i in range(count)
    ]
    return str(write_jsonl(tmp_path / "sessions.jsonl", rows))


def _config(source: str, url: str, out: Path, **changes: Any) -> Config:
    return Config.of(
        sources=(source,),
        judge=JUDGES,
        base_url=url,
        out=out,
        quiet=True,
        backoff_base=0.01,
        batch=True,
        batch_size=10,
    ).replace(**changes)


def _verdicts(out: Path) -> dict[tuple[str, str], tuple[int, str]]:
    return {
        (r["session_id"], r["judge_slot"]): (
            r["scores"]["task_success"],
            r["metadata"]["judge_confidence"],
        )
        for r in read_jsonl(out / "scores.jsonl")
    }


async def test_a_batch_run_gives_the_verdicts_a_live_run_gives(tmp_path: Path) -> None:
    source = _source(tmp_path)
    async with Simulator(SimConfig(batch_delay_s=0.2)) as sim:
        live, _ = await grade(_config(source, sim.url, tmp_path / "live", batch=False), KEY)
        batched, _ = await grade(_config(source, sim.url, tmp_path / "batch"), KEY)
        stats = sim.stats()
    assert live.status == batched.status == "done", batched.message
    assert _verdicts(tmp_path / "live") == _verdicts(tmp_path / "batch")
    assert len(_verdicts(tmp_path / "batch")) == 24
    assert stats["submitted_requests"] == 24 and stats["submitted_twice"] == 0
    assert stats["batches"] == {"completed": 3}  # 24 requests, 10 a batch
    log = read_jsonl(tmp_path / "batch" / "batches.jsonl")
    assert [e["event"] for e in log].count("created") == 3
    assert (
        await anyio.run_process(
            [sys.executable, "-m", "judge_engine", "journal", "verify", str(tmp_path / "batch")],
            check=False,
        )
    ).returncode == 0


def _command(source: str, url: str, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "judge_engine", "grade", source, "--judge", JUDGES[0],
        "--judge", JUDGES[1], "--base-url", url, "--out", str(out), "--batch",
        "--batch-size", "10", "--quiet", *extra,
    ]  # fmt: skip


async def _run(command: list[str]) -> subprocess.CompletedProcess[bytes]:
    return await anyio.run_process(command, env={**os.environ, "OPENAI_API_KEY": KEY}, check=False)


@pytest.mark.parametrize("step", ["upload", "uploaded", "created", "polling", "content"])
async def test_a_kill_at_any_step_submits_nothing_twice_and_loses_nothing(
    tmp_path: Path, step: str
) -> None:
    source = _source(tmp_path, 8)  # 16 requests: two batches of 10 and 6
    out = tmp_path / "out"
    hold = None if step == "polling" else step
    config = SimConfig(batch_delay_s=3.0 if step == "polling" else 0.3, batch_hold=hold)
    async with Simulator(config) as sim:
        process = await anyio.open_process(
            _command(source, sim.url, out), env={**os.environ, "OPENAI_API_KEY": KEY}
        )
        with anyio.fail_after(60):
            if step == "polling":
                while sim.batches.calls["poll"] < 2:  # noqa: ASYNC110 - another task's counter
                    await anyio.sleep(0.02)
            else:
                await sim.batches.holding.wait()
        process.kill()  # SIGKILL, at that very step
        await process.wait()
        resumed = await _run(_command(source, sim.url, out))
        stats = sim.stats()
    assert resumed.returncode == 0, resumed.stdout.decode() + resumed.stderr.decode()
    assert stats["submitted_twice"] == 0, stats
    assert stats["submitted_requests"] == 16
    assert len(_verdicts(out)) == 16 and all(v[0] in (0, 1) for v in _verdicts(out).values())
    keys = Counter(r["key"] for r in read_jsonl(out / "journal.jsonl"))
    assert len(keys) == 16 and max(keys.values()) == 1
    verify = await _run([sys.executable, "-m", "judge_engine", "journal", "verify", str(out)])
    assert verify.returncode == 0, verify.stdout.decode()
