"""Batch mode against what real providers do and a hostile gateway may: a panel with a
fallback judge and repeats (one model per input file, as the simulator enforces),
downloads that drop, come short or stall, 404s of a batch or a file not visible yet,
an output file that cannot be read, and output files that answer one request twice."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import orjson
from aiohttp import web

from judge_engine.config import Config
from judge_engine.engine import grade
from judge_engine.gateway.batch import BatchOptions, BatchTransport, forget
from judge_engine.sinks import verify
from judge_engine.testing import synth
from judge_engine.testing.sim import SimConfig, Simulator

from .conftest import read_jsonl, write_jsonl
from .servers import HostileProxy, Upstream

KEY = "sk-batch-hostile-" + "h" * 24
QUICK = BatchOptions(
    batch_size=10, linger_s=0.2, poll_min_s=0.05, poll_max_s=0.2, not_found_s=1.5,
    download_idle_s=0.5, retry_base_s=0.05,
)  # fmt: skip


def _source(tmp_path: Path, count: int = 6, models: tuple[str, ...] = ("qwen3",)) -> str:
    rows = [synth.otel_row(f"s{i:03d}", "swebench", seed=i, models=models) for i in range(count)]
    return str(write_jsonl(tmp_path / "sessions.jsonl", rows))


def _config(source: str, url: str, out: Path, **changes: Any) -> Config:
    return Config.of(
        sources=(source,), judge=("gpt-4.1", "o3"), base_url=url, out=out, quiet=True,
        backoff_base=0.01, batch=True, batch_size=10,
    ).replace(**changes)  # fmt: skip


def _verdicts(out: Path) -> dict[tuple[str, str], int]:
    return {
        (r["session_id"], r["judge_slot"]): r["scores"]["task_success"]
        for r in read_jsonl(out / "scores.jsonl")
    }


async def _grade(config: Config, url: str, out: Path, options: BatchOptions = QUICK) -> Any:
    await anyio.Path(out).mkdir(parents=True, exist_ok=True)
    async with BatchTransport(url, KEY, out, options) as transport:
        result, _ = await grade(config, KEY, transport=transport)
    return result


async def test_a_panel_with_a_fallback_and_repeats_sends_one_model_per_file(
    tmp_path: Path,
) -> None:
    """Sessions made by gpt-4.1: its slot goes to the fallback; every judge asked twice;
    --no-wait, then the same command collects. The simulator refuses any file that
    mixes models, so a run that passes sent none."""
    source = _source(tmp_path, 6, models=("gpt-4.1",))
    out = tmp_path / "out"
    changes = {"fallback_judge": ("gemini-2.5-pro",), "repeats": 2, "temperature": 0.5}
    async with Simulator(SimConfig(batch_delay_s=0.3)) as sim:
        submitted, _ = await grade(_config(source, sim.url, out, no_wait=True, **changes), KEY)
        assert submitted.status == "submitted", submitted.message
        collected, _ = await grade(_config(source, sim.url, out, **changes), KEY)
        stats = sim.stats()
    assert collected.status == "done", collected.message
    assert stats["submitted_twice"] == 0 and stats["submitted_requests"] == 6 * 2 * 2
    # 12 requests a model, 10 a batch, one model a batch: 10 + 2 of each
    assert stats["batches"] == {"completed": 4}
    log = read_jsonl(out / "batches.jsonl")
    planned = [e["model"] for e in log if e["event"] == "planned"]
    assert sorted(planned) == ["gemini-2.5-pro"] * 2 + ["o3"] * 2
    judges = Counter(r["judge"] for r in read_jsonl(out / "journal.jsonl"))
    assert judges == {"gemini-2.5-pro": 12, "o3": 12}
    assert verify(out).ok


async def test_downloads_that_drop_come_short_or_stall_are_tried_again(tmp_path: Path) -> None:
    source = _source(tmp_path)
    out = tmp_path / "out"
    faults = ["drop", "short", "stall"]

    async def sabotage(request: web.Request, upstream: Upstream) -> web.StreamResponse | None:
        if not faults or upstream.status != 200:
            return None
        fault = faults.pop(0)
        response = web.StreamResponse(headers={"Content-Length": str(len(upstream.body))})
        await response.prepare(request)
        half = upstream.body[: len(upstream.body) // 2]
        await response.write(half)
        if fault == "stall":
            await asyncio.sleep(3)  # longer than the idle timeout
        assert request.transport is not None
        request.transport.close()  # "drop" and "short": the body ends before its length
        return response

    async with Simulator(SimConfig(batch_delay_s=0.2)) as sim, HostileProxy(sim.url) as proxy:
        proxy.rules.append(("GET", r"/v1/files/[^/]+/content", sabotage))
        result = await _grade(_config(source, proxy.url, out), proxy.url, out)
        stats = sim.stats()
    assert result.status == "done", result.message
    assert faults == [] and len(_verdicts(out)) == 12
    assert stats["submitted_twice"] == 0


async def test_a_404_of_a_batch_or_a_file_not_visible_yet_is_waited_out(tmp_path: Path) -> None:
    source = _source(tmp_path)
    out = tmp_path / "out"
    misses: Counter[str] = Counter()

    def not_yet(what: str, times: int) -> Any:
        async def sabotage(request: web.Request, upstream: Upstream) -> web.StreamResponse | None:
            if misses[what] >= times:
                return None
            misses[what] += 1
            body = {"error": {"message": "No such object", "type": "invalid_request_error"}}
            return web.json_response(body, status=404)

        return sabotage

    async with Simulator(SimConfig(batch_delay_s=0.2)) as sim, HostileProxy(sim.url) as proxy:
        proxy.rules.append(("GET", r"/v1/batches/[^/]+", not_yet("poll", 3)))
        proxy.rules.append(("GET", r"/v1/files/[^/]+/content", not_yet("file", 3)))
        result = await _grade(_config(source, proxy.url, out), proxy.url, out)
        stats = sim.stats()
    assert result.status == "done", result.message
    assert misses == {"poll": 3, "file": 3}
    assert stats["submitted_twice"] == 0 and len(_verdicts(out)) == 12


async def test_an_output_file_that_cannot_be_read_keeps_its_keys_until_it_can(
    tmp_path: Path,
) -> None:
    source = _source(tmp_path)
    out = tmp_path / "out"
    broken = {"on": True}

    async def gone(request: web.Request, upstream: Upstream) -> web.StreamResponse | None:
        if not broken["on"]:
            return None
        return web.json_response({"error": {"message": "No such File object"}}, status=404)

    async with Simulator(SimConfig(batch_delay_s=0.2)) as sim, HostileProxy(sim.url) as proxy:
        proxy.rules.append(("GET", r"/v1/files/[^/]+/content", gone))
        first = await _grade(_config(source, proxy.url, out), proxy.url, out)
        assert first.status == "incomplete" and first.failed == 12
        assert first.failed_transient == 12  # the same command tries again
        errors = {r["error"] for r in read_jsonl(out / "journal.jsonl") if r.get("error")}
        assert all("batch_output_unreadable" in e and "only its output file" in e for e in errors)
        assert all("--forget" in e for e in errors)
        # Still unreadable: followed again, nothing submitted again.
        again = await _grade(_config(source, proxy.url, out), proxy.url, out)
        assert again.status == "incomplete"
        assert sim.stats()["submitted_requests"] == 12
        broken["on"] = False  # readable at last: collected, nothing paid twice
        collected = await _grade(_config(source, proxy.url, out), proxy.url, out)
        stats = sim.stats()
    assert collected.status == "done", collected.message
    assert stats["submitted_twice"] == 0 and len(_verdicts(out)) == 12
    assert verify(out).ok


async def test_forget_gives_up_an_unreadable_batch_and_the_next_run_submits_anew(
    tmp_path: Path,
) -> None:
    source = _source(tmp_path, 3)
    out = tmp_path / "out"

    async def gone(request: web.Request, upstream: Upstream) -> web.StreamResponse | None:
        return web.json_response({"error": {"message": "gone"}}, status=404)

    async with Simulator(SimConfig(batch_delay_s=0.2)) as sim:
        async with HostileProxy(sim.url) as proxy:
            proxy.rules.append(("GET", r"/v1/files/[^/]+/content", gone))
            first = await _grade(_config(source, proxy.url, out), proxy.url, out)
        assert first.status == "incomplete"
        created = [
            e["batch_id"] for e in read_jsonl(out / "batches.jsonl") if e["event"] == "created"
        ]
        assert sum(forget(out, batch) for batch in created) == 6
        again = await _grade(_config(source, sim.url, out), sim.url, out)
        stats = sim.stats()
    assert again.status == "done" and stats["submitted_requests"] == 12  # paid again


async def test_an_output_that_answers_a_request_twice(tmp_path: Path) -> None:
    """Identical lines count once; different answers fail that request
    (conflicting_answers), which goes again like a failed line and is counted."""
    source = _source(tmp_path)
    out = tmp_path / "out"
    rewritten = {"done": False}

    async def doubled(request: web.Request, upstream: Upstream) -> web.StreamResponse | None:
        lines = [orjson.loads(line) for line in upstream.body.splitlines() if line.strip()]
        if rewritten["done"] or not lines or "response" not in lines[0]:
            return None
        rewritten["done"] = True
        copy = dict(lines[0], id="batch_req_other")  # the same answer again
        other = orjson.loads(orjson.dumps(lines[1]))
        body = other["response"]["body"]
        content = orjson.loads(body["choices"][0]["message"]["content"].strip("`json\n"))
        content["success"] = 1 - content["success"]
        body["choices"][0]["message"]["content"] = orjson.dumps(content).decode()
        data = b"".join(orjson.dumps(x) + b"\n" for x in [*lines, copy, other])
        return web.Response(body=data, content_type="application/octet-stream")

    async with Simulator(SimConfig(batch_delay_s=0.2)) as sim, HostileProxy(sim.url) as proxy:
        proxy.rules.append(("GET", r"/v1/files/[^/]+/content", doubled))
        result = await _grade(_config(source, proxy.url, out), proxy.url, out)
        stats = sim.stats()
    assert result.status == "done", result.message
    assert rewritten["done"] and result.conflicting == 1
    assert len(_verdicts(out)) == 12
    assert stats["submitted_requests"] == 12 + 1  # the conflicting one, asked again
    report = verify(out)
    assert report.ok and report.conflicting == 1
