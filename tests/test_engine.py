"""The grading engine against real loopback servers: retries, limits, guard, journal, output."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson

from judge_engine.config import Config
from judge_engine.engine import grade
from judge_engine.testing import synth
from judge_engine.testing.sim import SimConfig, Simulator, max_in_window

from .conftest import read_jsonl, write_jsonl
from .servers import Action, ScriptedServer, error, ok

KEY = "sk-test-" + "k3y" * 12


def _sessions(
    tmp_path: Path, count: int = 3, models: tuple[str, ...] = ("claude-opus-4-5",)
) -> str:
    rows = [
        synth.otel_row(f"s{i}", "swebench", models=models, seed=i, success=i % 2 == 0)
        for i in range(count)
    ]
    return str(write_jsonl(tmp_path / "sessions.jsonl", rows))


def _config(tmp_path: Path, source: str, url: str, **changes: Any) -> Config:
    config = Config.of(
        sources=(source,),
        judge=("gpt-4.1",),
        base_url=url,
        out=tmp_path / "out",
        quiet=True,
        concurrency=4,
        grace=2.0,
        backoff_base=0.01,
    )
    return config.replace(**changes)


def _journal(tmp_path: Path) -> list[dict[str, Any]]:
    return read_jsonl(tmp_path / "out" / "journal.jsonl")


async def test_a_clean_run_writes_one_score_row_per_session_and_slot(tmp_path: Path) -> None:
    source = _sessions(tmp_path, 4)
    async with ScriptedServer() as server:
        result, summary = await grade(
            _config(tmp_path, source, server.url, judge=("gpt-4.1", "gemini-2.5-pro")), KEY
        )
    assert result.status == "done", result.message
    assert result.verdicts == 8 and result.failed == 0
    rows = read_jsonl(tmp_path / "out" / "scores.jsonl")
    assert sorted((r["session_id"], r["judge_slot"]) for r in rows) == sorted(
        (f"s{i}", j) for i in range(4) for j in ("gpt-4.1", "gemini-2.5-pro")
    )
    row = rows[0]
    assert row["id"] == str(uuid.uuid5(uuid.NAMESPACE_DNS, "root:" + row["session_id"]))
    assert row["scores"] == {"task_success": 1}
    assert set(row["metadata"]) >= {
        "judge_confidence",
        "judge_reasoning",
        "rubric",
        "rubric_version",
        "benchmark",
        "harness",
        "agent_models",
        "guard",
    }
    assert row["metadata"]["rubric"] == "swebench"
    assert row["usage"]["total_tokens"] == 120 and row["latency_ms"] >= 0
    assert server.auth[0] == f"Bearer {KEY}"
    assert {b["model"] for b in server.bodies} == {"gpt-4.1", "gemini-2.5-pro"}
    assert "gpt-4.1" in summary and "gemini-2.5-pro" in summary


async def test_429_with_retry_after_is_honoured_and_slows_everyone(tmp_path: Path) -> None:
    source = _sessions(tmp_path, 1)
    script = [error(429, "slow down", **{"Retry-After": "1"}), ok()]
    async with ScriptedServer(script) as server:
        result, _ = await grade(_config(tmp_path, source, server.url), KEY)
    assert result.status == "done" and result.verdicts == 1
    assert result.retries == 1 and result.throttled == 1
    assert server.arrivals[1] - server.arrivals[0] >= 0.95  # waited as the server asked
    record = _journal(tmp_path)[0]
    assert record["attempts"] == 2 and record["status"] == "ok"


async def test_429_with_reset_headers_only(tmp_path: Path) -> None:
    source = _sessions(tmp_path, 1)
    reset = error(
        429,
        "limit",
        **{"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1.2s"},
    )
    async with ScriptedServer([reset, ok()]) as server:
        result, _ = await grade(_config(tmp_path, source, server.url), KEY)
    assert result.verdicts == 1 and result.retries == 1
    assert server.arrivals[1] - server.arrivals[0] >= 1.15


async def test_5xx_timeouts_drops_html_empty_and_no_choices_are_retried(tmp_path: Path) -> None:
    source = _sessions(tmp_path, 1)
    script = [
        error(500),
        error(503),
        Action(delay_s=3.0),  # slower than the timeout
        Action(drop=True),
        Action(body=b"<html>502 Bad Gateway</html>"),
        Action(body=b""),
        Action(body=b'{"choices": []}'),
        ok(),
    ]
    async with ScriptedServer(script) as server:
        config = _config(tmp_path, source, server.url, timeout=1.0, max_retries=8)
        result, _ = await grade(config, KEY)
    assert result.status == "done", result.message
    assert result.verdicts == 1 and result.retries == 7
    assert len(server.arrivals) == 8


async def test_malformed_and_fenced_verdicts(tmp_path: Path) -> None:
    source = _sessions(tmp_path, 1)
    script = [
        ok("I think the agent did well."),
        Action(content='{"success": 1, "confid', finish_reason="length"),
        ok('Here it is:\n```json\n{"success": 0, "confidence": "medium", "reasoning": "r"}\n```'),
    ]
    async with ScriptedServer(script) as server:
        result, _ = await grade(_config(tmp_path, source, server.url), KEY)
        bodies = server.bodies
    # The unparseable reply is a retry; the cut one is asked again at once with a larger
    # output budget (not a retry of the same request).
    assert result.verdicts == 1 and result.retries == 1
    assert "max_tokens" not in bodies[1] and bodies[2]["max_tokens"] == 2048
    record = _journal(tmp_path)[0]
    assert (record["success"], record["confidence"], record["attempts"]) == (0, "medium", 2)


async def test_a_reply_that_never_parses_fails_as_unparseable_with_the_raw_reply(
    tmp_path: Path,
) -> None:
    source = _sessions(tmp_path, 1)
    async with ScriptedServer(default=lambda body: ok("no verdict here")) as server:
        result, _ = await grade(_config(tmp_path, source, server.url, max_retries=2), KEY)
    assert result.status == "incomplete" and result.failed == 1
    assert len(server.arrivals) == 3
    record = _journal(tmp_path)[0]
    assert record["status"] == "failed"
    assert record["error"].startswith("unparseable")
    assert record["raw"] == "no verdict here"
    row = read_jsonl(tmp_path / "out" / "scores.jsonl")[0]
    assert row["scores"] == {"task_success": None} and row["metadata"]["status"] == "failed"


async def test_other_4xx_and_model_mismatch_are_permanent(tmp_path: Path) -> None:
    source = _sessions(tmp_path, 2)
    script = [error(400, "bad request"), Action(model="gpt-4o")]
    async with ScriptedServer(script) as server:
        result, _ = await grade(_config(tmp_path, source, server.url, concurrency=1), KEY)
    assert result.failed == 2 and result.retries == 0 and len(server.arrivals) == 2
    errors = sorted(r["error"] for r in _journal(tmp_path))
    assert errors[0].startswith("client_error 400")
    assert errors[1] == "model_mismatch: asked gpt-4.1, the reply says gpt-4o"


async def test_a_401_stops_the_run_at_once_without_the_key(tmp_path: Path) -> None:
    source = _sessions(tmp_path, 5)
    leak = {"error": {"message": f"Incorrect API key provided: {KEY}", "type": "invalid_api_key"}}
    script = [Action(status=401, body=orjson.dumps(leak))]
    async with ScriptedServer(script * 10) as server:
        result, _ = await grade(_config(tmp_path, source, server.url, concurrency=1), KEY)
    assert result.status == "error"
    assert "refused the API key" in result.message and "\n" not in result.message
    assert KEY not in result.message and "[REDACTED]" in result.message
    assert len(server.arrivals) == 1
    _assert_key_absent(tmp_path / "out")


async def test_a_judge_that_always_fails_stops_the_run(tmp_path: Path) -> None:
    source = _sessions(tmp_path, 30)
    async with ScriptedServer(default=lambda b: error(400, "Invalid model name")) as server:
        result, _ = await grade(_config(tmp_path, source, server.url, concurrency=1), KEY)
    assert result.status == "error"
    assert "every request to judge gpt-4.1 fails" in result.message
    assert len(server.arrivals) == 10  # not thirty


async def test_guard_fallback_and_self_grading_skip(tmp_path: Path) -> None:
    rows = [
        synth.otel_row("by-gpt", "swebench", models=("Az/gpt-4.1",)),
        synth.otel_row("by-both", "swebench", models=("Az/gpt-4.1", "claude-sonnet-4-5")),
        synth.otel_row("by-kimi", "swebench", models=("o/Kimi-K2.5",)),
    ]
    source = str(write_jsonl(tmp_path / "s.jsonl", rows))
    async with ScriptedServer() as server:
        config = _config(tmp_path, source, server.url, fallback_judge=("claude-sonnet-4-5",))
        result, _ = await grade(config, KEY)
    judged = {(r["session_id"], r["judge"], r["status"]) for r in _journal(tmp_path)}
    assert judged == {
        ("by-gpt", "claude-sonnet-4-5", "ok"),
        ("by-both", None, "skipped"),
        ("by-kimi", "gpt-4.1", "ok"),
    }
    skipped = next(r for r in _journal(tmp_path) if r["status"] == "skipped")
    assert skipped["error"].startswith("self-grading")
    assert skipped["guard"] == {"slot": "gpt-4.1", "judge": None, "reason": skipped["error"]}
    # The gateway never saw gpt-4.1 asked about a session a gpt-4.1 deployment produced.
    assert [b["model"] for b in server.bodies].count("gpt-4.1") == 1
    assert result.status == "done"  # a guard skip is by design, not a failure
    assert result.skipped == 1


async def test_the_rpm_limit_holds_counted_at_the_server(tmp_path: Path) -> None:
    source = _sessions(tmp_path, 40)
    rpm = 1200  # one request every 50 ms
    async with ScriptedServer() as server:
        config = _config(
            tmp_path,
            source,
            server.url,
            rpm=rpm,
            concurrency=16,
            judge=("gpt-4.1", "gemini-2.5-pro"),
        )
        result, _ = await grade(config, KEY)
    assert result.verdicts == 80
    interval = 60.0 / rpm
    # In any window of k request intervals the server saw at most k requests (the same
    # property that holds the limit in every 60-second window, scaled down), give or
    # take one request whose arrival a busy machine delayed to a window's edge.
    for k in (10, 20, 40, 80):
        assert max_in_window(server.arrivals, interval * k) <= k + 1
    # Over the whole run the pace is the limit's, not faster.
    assert server.arrivals[-1] - server.arrivals[0] >= interval * 78


async def test_a_finished_run_rerun_sends_nothing_and_keeps_one_row_each(tmp_path: Path) -> None:
    source = _sessions(tmp_path, 5)
    async with Simulator(SimConfig()) as simulator:
        config = _config(tmp_path, source, simulator.url, judge=("gpt-4.1", "gemini-2.5-pro"))
        first, _ = await grade(config, KEY)
        sent = len(simulator.arrivals)
        second, _ = await grade(config, KEY)
    assert first.verdicts == 10 and sent == 10
    assert second.requests_sent == 0 and len(simulator.arrivals) == sent
    assert second.already_done == 5
    assert len(read_jsonl(tmp_path / "out" / "scores.jsonl")) == 10


async def test_fresh_and_retry_failed(tmp_path: Path) -> None:
    source = _sessions(tmp_path, 2)
    async with ScriptedServer([error(400), error(400)]) as server:
        config = _config(tmp_path, source, server.url, concurrency=1)
        first, _ = await grade(config, KEY)
        assert first.failed == 2
        again, _ = await grade(config, KEY)
        assert again.requests_sent == 0  # permanent failures are not asked again...
        retried, _ = await grade(config.replace(retry_failed=True), KEY)
        assert retried.requests_sent == 2 and retried.verdicts == 2  # ...unless asked to
        fresh, _ = await grade(config.replace(fresh=True), KEY)
        assert fresh.requests_sent == 2
    rows = read_jsonl(tmp_path / "out" / "scores.jsonl")
    assert len(rows) == 2 and all(r["scores"]["task_success"] == 1 for r in rows)


async def test_editing_a_rubric_regrades_only_its_sessions(tmp_path: Path) -> None:
    from judge_engine.rubrics import builtin_dir

    rubrics = tmp_path / "rubrics"
    rubrics.mkdir()
    for path in builtin_dir().glob("*.toml"):
        (rubrics / path.name).write_bytes(path.read_bytes())
    rows = [synth.otel_row("swe", "swebench"), synth.otel_row("air", "tau2_airline")]
    source = str(write_jsonl(tmp_path / "s.jsonl", rows))
    async with ScriptedServer() as server:
        config = _config(tmp_path, source, server.url, rubrics=str(rubrics))
        await grade(config, KEY)
        edited = rubrics / "tau2_airline.toml"
        edited.write_text(edited.read_text().replace("Answer 1 only if", "Answer 1 only when"))
        second, _ = await grade(config, KEY)
    assert second.requests_sent == 1
    assert "tau2_airline" in server.bodies[-1]["messages"][0]["content"]
    rows_out = read_jsonl(tmp_path / "out" / "scores.jsonl")
    assert len(rows_out) == 2  # the re-graded session still has exactly one row


async def test_max_cost_stops_taking_sessions_and_the_run_resumes(tmp_path: Path) -> None:
    source = _sessions(tmp_path, 12)
    async with ScriptedServer() as server:
        config = _config(
            tmp_path,
            source,
            server.url,
            concurrency=1,
            max_cost=0.006,
            price=("gpt-4.1=2.0,8.0",),
        )
        first, _ = await grade(config, KEY)
        assert first.stopped == "max_cost" and first.status == "max_cost"
        assert 0 < first.verdicts < 12
        assert first.cost_usd is not None and first.cost_usd <= 0.006
        # The cap is the folder's: the same command again spends at most what is left
        # of it, and once nothing fits, says so without sending anything.
        done = first.verdicts
        for _ in range(5):
            sent = len(server.bodies)
            again, _ = await grade(config, KEY)
            assert again.status == "max_cost"
            assert again.spent_before + (again.cost_usd or 0) <= 0.006 + 1e-9
            done += again.verdicts
            if len(server.bodies) == sent:
                break
        assert again.verdicts == 0 and again.spent_before > 0
        # A higher cap lets it go on, up to the new cap for everything spent.
        more, _ = await grade(config.replace(max_cost=0.009), KEY)
        assert more.verdicts > 0
        assert (more.cost_usd or 0) + more.spent_before <= 0.009 + 1e-9
        done += more.verdicts
        rest, _ = await grade(config.replace(max_cost=None), KEY)
    assert rest.verdicts == 12 - done
    assert len(read_jsonl(tmp_path / "out" / "scores.jsonl")) == 12


def _assert_key_absent(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


async def test_the_key_appears_in_no_file_under_out(tmp_path: Path) -> None:
    source = _sessions(tmp_path, 6)
    echo = {"error": {"message": f"bad request from key {KEY}"}}
    script = [
        Action(status=500, body=orjson.dumps(echo)),
        Action(status=400, body=orjson.dumps(echo)),
    ]
    async with ScriptedServer(script) as server:
        result, summary = await grade(_config(tmp_path, source, server.url), KEY)
    assert result.failed == 1 and result.verdicts == 5
    assert KEY not in summary
    _assert_key_absent(tmp_path / "out")


async def test_repeats_ask_each_judge_k_times_with_the_sample_in_the_key(tmp_path: Path) -> None:
    from judge_engine.agreement import agree

    source = _sessions(tmp_path, 4)
    async with Simulator(SimConfig()) as simulator:
        config = _config(
            tmp_path,
            source,
            simulator.url,
            judge=("gpt-4.1", "gemini-2.5-pro"),
            repeats=3,
            temperature=0.7,
        )
        result, _ = await grade(config, KEY)
        again, _ = await grade(config, KEY)
    assert result.verdicts == 4 * 2 * 3 and again.requests_sent == 0
    records = _journal(tmp_path)
    assert len({r["key"] for r in records}) == 24
    assert sorted({r["sample"] for r in records}) == [0, 1, 2]
    rows = read_jsonl(tmp_path / "out" / "scores.jsonl")
    assert len(rows) == 8  # the score column is the first sample
    stability = agree(tmp_path / "out")["repeats"]
    assert stability["gpt-4.1"]["samples"] == 3 and stability["gpt-4.1"]["sessions"] == 4
    assert stability["gpt-4.1"]["flip_rate"] == 0.0  # the simulator is deterministic
