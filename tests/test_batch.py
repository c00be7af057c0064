"""Grading through the Batch API, against the simulator's implementation of the
documented endpoints: the same verdicts as live, exactly once across kills, failures by
the live rules, --no-wait, Ctrl-C, costs at batch prices."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

from judge_engine.config import Config
from judge_engine.engine import grade
from judge_engine.gateway.batch import BatchOptions, BatchTransport
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
    # 12 requests a model, one model a batch (the simulator refuses mixed files), 10 a batch
    assert stats["batches"] == {"completed": 4}
    log = read_jsonl(tmp_path / "batch" / "batches.jsonl")
    assert [e["event"] for e in log].count("created") == 4
    planned = [e for e in log if e["event"] == "planned"]
    assert sorted(e["model"] for e in planned) == ["gpt-4.1", "gpt-4.1", "o3", "o3"]
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


async def _graded(tmp_path: Path, sim_config: SimConfig, **changes: Any) -> tuple[Any, Any]:
    source = _source(tmp_path, 8)
    async with Simulator(sim_config) as sim:
        result, _ = await grade(_config(source, sim.url, tmp_path / "out", **changes), KEY)
        return result, sim.stats()


async def test_an_expired_batch_gives_what_it_finished_and_the_rest_goes_again(
    tmp_path: Path,
) -> None:
    sim = SimConfig(batch_delay_s=0.2, batch_expire_after=0.5, batch_expire_first_only=True)
    result, stats = await _graded(tmp_path, sim)
    assert result.status == "done", result.message
    assert len(_verdicts(tmp_path / "out")) == 16
    assert stats["batches"]["expired"] == 1
    # half the first batch (8 requests of one model) expired and was submitted again:
    # none twice answered
    assert stats["submitted_requests"] == 16 + 4 and stats["answered_twice"] == 0


async def test_a_failed_batch_is_a_permanent_failure_with_its_reason(tmp_path: Path) -> None:
    source = _source(tmp_path, 8)
    out = tmp_path / "out"
    async with Simulator(SimConfig(batch_delay_s=0.2, batch_fail_code="invalid_request")) as sim:
        result, _ = await grade(_config(source, sim.url, out), KEY)
        stats = sim.stats()
        assert result.status == "incomplete", result.message
        # the first batch (8 requests, one model) failed; the other model's completed
        assert result.failed == 8 and result.failed_transient == 0
        failures = [r for r in read_jsonl(out / "journal.jsonl") if r.get("error")]
        assert len(failures) == 8 and len({r["judge"] for r in failures}) == 1
        assert all("injected failure: invalid_request" in str(r["error"]) for r in failures)
        assert stats["batches"] == {"failed": 1, "completed": 1}
        # the same command leaves them; --retry-failed submits them again
        again, _ = await grade(_config(source, sim.url, out), KEY)
        assert again.failed_before == 8 and sim.stats()["submitted_requests"] == 8
        again, _ = await grade(_config(source, sim.url, out, retry_failed=True), KEY)
        assert sim.stats()["submitted_requests"] == 16
    assert again.status == "done" and len(_verdicts(out)) == 16


async def test_a_batch_refused_for_the_enqueued_token_limit_waits_and_goes_again(
    tmp_path: Path,
) -> None:
    # room for one batch of a model at a time (the limit is per model): a model's second
    # batch is refused until its first ends, while the other model's go on
    source = _source(tmp_path, 16)
    async with Simulator(SimConfig(batch_delay_s=0.1)) as sim:
        await grade(_config(source, sim.url, tmp_path / "measure", batch_size=4), KEY)
        largest = max(b.tokens for b in sim.batches.batches.values())
    sim_config = SimConfig(batch_delay_s=2.0, batch_token_limit=largest * 3 // 2)
    async with Simulator(sim_config) as sim:
        result, _ = await grade(_config(source, sim.url, tmp_path / "out", batch_size=4), KEY)
        stats = sim.stats()
    assert result.status == "done", result.message
    assert len(_verdicts(tmp_path / "out")) == 32
    assert stats["batches"]["failed"] >= 1  # refused at least once
    assert stats["submitted_twice"] == 0


async def test_a_batch_that_never_fits_the_token_limit_fails_with_a_clear_reason(
    tmp_path: Path,
) -> None:
    source = _source(tmp_path, 8)
    out = tmp_path / "out"
    out.mkdir()
    quick = BatchOptions(batch_size=10, linger_s=0.2, poll_min_s=0.05, token_wait_s=0.2)
    sim_config = SimConfig(batch_delay_s=0.05, batch_token_limit=1)
    async with Simulator(sim_config) as sim, BatchTransport(sim.url, KEY, out, quick) as batches:
        result, _ = await grade(_config(source, sim.url, out), KEY, transport=batches)
    assert result.status == "incomplete" and result.failed == 16
    failures = [r for r in read_jsonl(out / "journal.jsonl") if r.get("error")]
    assert failures and all("lower --batch-size" in str(r["error"]) for r in failures)


async def test_failed_lines_go_again_and_malformed_verdicts_are_asked_again(
    tmp_path: Path,
) -> None:
    sim = SimConfig(batch_delay_s=0.2, batch_fail_rate=0.25, batch_malformed_rate=0.25, seed=3)
    result, stats = await _graded(tmp_path, sim)
    assert result.status == "done", result.message
    assert len(_verdicts(tmp_path / "out")) == 16
    assert stats["submitted_requests"] > 16  # failed and malformed lines went again
    assert stats["answered_twice"] == 0


async def test_with_live_fallback_a_failed_line_is_asked_live(tmp_path: Path) -> None:
    sim = SimConfig(batch_delay_s=0.2, batch_fail_rate=0.3, seed=5)
    result, stats = await _graded(tmp_path, sim, batch_fallback="live")
    assert result.status == "done", result.message
    assert len(_verdicts(tmp_path / "out")) == 16
    assert stats["submitted_requests"] == 16  # the failures went live, not in a batch
    assert stats["requests"] >= 1


async def test_batch_costs_are_half_the_live_costs(tmp_path: Path) -> None:
    source = _source(tmp_path)
    async with Simulator(SimConfig(batch_delay_s=0.1)) as sim:
        live, _ = await grade(_config(source, sim.url, tmp_path / "live", batch=False), KEY)
        batched, text = await grade(_config(source, sim.url, tmp_path / "batch"), KEY)
        priced, _ = await grade(
            _config(source, sim.url, tmp_path / "priced", batch_price=("gpt-4.1=1,1", "o3=1,1")),
            KEY,
        )
    assert live.cost_usd and batched.cost_usd and priced.cost_usd
    assert batched.cost_usd == pytest.approx(live.cost_usd / 2)
    assert priced.tokens == batched.tokens
    assert priced.cost_usd == pytest.approx(priced.tokens / 1_000_000)
    assert "batch prices" in text


async def test_no_wait_submits_and_exits_then_the_same_command_collects(tmp_path: Path) -> None:
    source = _source(tmp_path, 8)
    out = tmp_path / "out"
    async with Simulator(SimConfig(batch_delay_s=1.5)) as sim:
        first = await _run(_command(source, sim.url, out, "--no-wait"))
        text = first.stdout.decode() + first.stderr.decode()
        assert first.returncode == 0, text
        assert "16 requests wait in batches" in text and f"judge-engine batches {out}" in text
        assert not (out / "scores.jsonl").exists() or not read_jsonl(out / "scores.jsonl")
        listed = await _run([sys.executable, "-m", "judge_engine", "batches", str(out)])
        assert listed.returncode == 0 and listed.stdout.decode().count("batch_") == 2
        second = await _run(_command(source, sim.url, out))
        stats = sim.stats()
    assert second.returncode == 0, second.stdout.decode() + second.stderr.decode()
    assert stats["submitted_requests"] == 16 and stats["submitted_twice"] == 0
    assert len(_verdicts(out)) == 16


async def test_ctrl_c_leaves_the_batches_running_and_the_same_command_collects(
    tmp_path: Path,
) -> None:
    source = _source(tmp_path, 8)
    out = tmp_path / "out"
    async with Simulator(SimConfig(batch_delay_s=3.0)) as sim:
        process = await anyio.open_process(
            _command(source, sim.url, out), env={**os.environ, "OPENAI_API_KEY": KEY}
        )
        with anyio.fail_after(60):
            while sim.batches.calls["poll"] < 2:  # noqa: ASYNC110 - another task's counter
                await anyio.sleep(0.02)
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(30):
            await process.wait()
        assert process.stderr is not None and process.stdout is not None
        said = b""
        with contextlib.suppress(anyio.EndOfStream):
            while True:
                said += await process.stdout.receive()
        assert process.returncode == 130, said
        assert b"the batches already submitted go on at the server" in said
        assert sim.batches.calls["cancel"] == 0
        assert all(b.status != "cancelled" for b in sim.batches.batches.values())
        resumed = await _run(_command(source, sim.url, out))
        stats = sim.stats()
    assert resumed.returncode == 0
    assert stats["submitted_requests"] == 16 and stats["submitted_twice"] == 0
    assert len(_verdicts(out)) == 16


async def test_batches_lists_a_runs_batches_and_cancels_them(tmp_path: Path) -> None:
    source = _source(tmp_path, 8)
    out = tmp_path / "out"
    async with Simulator(SimConfig(batch_delay_s=30.0)) as sim:
        first = await _run(_command(source, sim.url, out, "--no-wait"))
        assert first.returncode == 0
        cancel = await _run([sys.executable, "-m", "judge_engine", "batches", str(out), "--cancel"])
        said = cancel.stdout.decode()
        assert cancel.returncode == 0, said + cancel.stderr.decode()
        assert sim.batches.calls["cancel"] == 2
        assert KEY not in said
        listed = await _run([sys.executable, "-m", "judge_engine", "batches", str(out)])
        assert listed.stdout.decode().count("cancel") >= 2


async def test_preview_shows_batch_prices_beside_live_ones(tmp_path: Path) -> None:
    source = _source(tmp_path, 4)
    command = [
        sys.executable, "-m", "judge_engine", "preview", source, "--judge", "gpt-4.1",
        "--out", str(tmp_path / "p"), "--batch",
    ]  # fmt: skip
    shown = await _run(command)
    text = shown.stdout.decode()
    assert shown.returncode == 0, text + shown.stderr.decode()
    assert "live (USD)" in text and "batch (USD)" in text
    estimate = text.split("estimate", 1)[1]
    row = next(line for line in estimate.splitlines() if line.strip().startswith("gpt-4.1"))
    live, batch = (float(x) for x in row.split()[-2:])
    assert batch == pytest.approx(live / 2, abs=0.011)


def test_the_demo_shows_batch_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from judge_engine.cli import main

    assert main(["demo", "--batch", "--out", str(tmp_path / "demo"), "--quiet"]) == 0
    said = capsys.readouterr().out
    assert "requests wait in batches at the server" in said
    assert "at batch prices" in said and "(0 submitted twice)" in said
    assert "answered 0 live requests" in said
    assert len(read_jsonl(tmp_path / "demo" / "scores.jsonl")) == 50


async def test_batches_unknown_to_the_gateway_fail_clearly_and_fresh_sets_them_aside(
    tmp_path: Path,
) -> None:
    from judge_engine.gateway.batch import LOG
    from judge_engine.journal import SUBMISSIONS

    assert LOG == SUBMISSIONS
    source = _source(tmp_path, 4)
    out = tmp_path / "out"
    async with Simulator(SimConfig(batch_delay_s=30.0)) as sim:
        submitted, _ = await grade(_config(source, sim.url, out, no_wait=True), KEY)
    assert submitted.status == "submitted" and submitted.submitted == 8
    # Another gateway: its 404s are taken for a batch not visible yet for `not_found_s`
    # (two minutes by default; one second here), then its listing is consulted.
    patient = BatchOptions(batch_size=10, linger_s=0.2, poll_min_s=0.05, not_found_s=1.0)
    async with Simulator(SimConfig(batch_delay_s=0.1)) as other:
        async with BatchTransport(other.url, KEY, out, patient) as batches:
            lost, _ = await grade(_config(source, other.url, out), KEY, transport=batches)
        assert lost.status == "incomplete" and lost.failed == 8 and lost.failed_transient == 0
        errors = {str(r["error"]) for r in read_jsonl(out / "journal.jsonl") if r.get("error")}
        assert all("unknown to" in e and "--retry-failed" in e for e in errors), errors
        assert all("answered 404 for 1 s" in e and "listing" in e for e in errors), errors
        assert other.batches.calls["list_batches"] >= 1
        again, _ = await grade(_config(source, other.url, out, retry_failed=True), KEY)
        assert again.status == "done" and other.stats()["submitted_requests"] == 8
        fresh, _ = await grade(_config(source, other.url, out, fresh=True), KEY)
        assert fresh.status == "done" and other.stats()["submitted_requests"] == 16
    assert len(list(out.glob("batches-*.jsonl"))) == 1


async def test_max_cost_holds_in_batch_mode_at_batch_prices(tmp_path: Path) -> None:
    source = _source(tmp_path)
    async with Simulator(SimConfig(batch_delay_s=0.1)) as sim:
        full, _ = await grade(_config(source, sim.url, tmp_path / "full"), KEY)
        assert full.cost_usd
        cap = full.cost_usd / 3
        capped, _ = await grade(_config(source, sim.url, tmp_path / "capped", max_cost=cap), KEY)
    assert capped.status == "max_cost"
    assert capped.cost_usd is not None and 0 < capped.cost_usd <= cap
    assert 0 < len(_verdicts(tmp_path / "capped")) < 24
