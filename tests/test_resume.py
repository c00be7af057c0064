"""Kill a real `judge-engine grade` process mid-run and resume it."""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from pathlib import Path

import anyio
import pytest

from judge_engine.testing import synth
from judge_engine.testing.sim import SimConfig, Simulator

from .conftest import grade_argv, read_jsonl, write_jsonl

KEY = "sk-resume-" + "x" * 30
SESSIONS = 60
JUDGES = ("gpt-4.1", "gemini-2.5-pro")
CONCURRENCY = 4


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _command(source: str, url: str, out: Path) -> list[str]:
    extra = ["--judge", JUDGES[1], "--concurrency", str(CONCURRENCY), "--quiet", "--grace", "2"]
    return grade_argv(source, url, out, *extra)


async def _run_until(command: list[str], journal: Path, lines: int) -> anyio.abc.Process:
    env = {**os.environ, "OPENAI_API_KEY": KEY}
    process = await anyio.open_process(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    with anyio.fail_after(60):
        while _lines(journal) < lines:
            assert process.returncode is None, "the run ended before it could be stopped"
            await anyio.sleep(0.02)
    return process


@pytest.fixture
def source(tmp_path: Path) -> str:
    rows = [
        synth.otel_row(f"s{i:03d}", "tau2_retail", seed=i, success=i % 3 > 0)
        for i in range(SESSIONS)
    ]
    return str(write_jsonl(tmp_path / "sessions.jsonl", rows))


async def test_sigkill_mid_run_then_resume_loses_and_repeats_nothing(
    tmp_path: Path, source: str
) -> None:
    total = SESSIONS * len(JUDGES)
    async with Simulator(SimConfig(latency_ms=120)) as simulator:
        for stop_at in (25, 70):  # killed early, and late
            out = tmp_path / f"out-{stop_at}"
            journal = out / "journal.jsonl"
            command = _command(source, simulator.url, out)
            before = len(simulator.arrivals)
            process = await _run_until(command, journal, stop_at)
            process.send_signal(signal.SIGKILL)
            await process.wait()
            await anyio.sleep(0.3)  # requests already on the wire arrive
            durable = _lines(journal)
            arrived = len(simulator.arrivals) - before
            # Only requests in flight at the kill can be lost, and there were few.
            assert arrived - durable <= CONCURRENCY * 5

            resumed = await anyio.run_process(
                command, env={**os.environ, "OPENAI_API_KEY": KEY}, check=False
            )
            assert resumed.returncode == 0, resumed.stderr.decode()
            # The resumed run asked exactly what was not yet durable: nothing twice.
            assert len(simulator.arrivals) - before - arrived == total - durable

            keys = Counter(r["key"] for r in read_jsonl(journal))
            assert len(keys) == total and max(keys.values()) == 1
            rows = read_jsonl(out / "scores.jsonl")
            pairs = Counter((r["session_id"], r["judge_slot"]) for r in rows)
            assert len(pairs) == total and max(pairs.values()) == 1
            for path in out.rglob("*"):
                if path.is_file():
                    assert KEY.encode() not in path.read_bytes()


async def test_sigint_stops_cleanly_and_prints_the_resume_command(
    tmp_path: Path, source: str
) -> None:
    out = tmp_path / "out"
    journal = out / "journal.jsonl"
    async with Simulator(SimConfig(latency_ms=120)) as simulator:
        command = _command(source, simulator.url, out)
        process = await _run_until(command, journal, 20)
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(30):
            await process.wait()
        assert process.stdout is not None
        stdout = (await process.stdout.receive()).decode()
        assert process.returncode == 130
        assert "Resume with" in stdout and "judge-engine grade" in stdout
        durable = _lines(journal)
        # Everything that finished was made durable and is in the score columns.
        assert len(read_jsonl(out / "scores.jsonl")) == durable
        arrived = len(simulator.arrivals)
        resumed = await anyio.run_process(
            command, env={**os.environ, "OPENAI_API_KEY": KEY}, check=False
        )
        assert resumed.returncode == 0
        assert len(simulator.arrivals) - arrived == SESSIONS * len(JUDGES) - durable
