"""Integration: the engine against a real third-party gateway, LiteLLM's proxy, on loopback.

The proxy runs from its own virtual environment (tests/run.sh installs it and sets
JUDGE_ENGINE_LITELLM to its `litellm` command), with `mock_response` models, a master
key and no upstream: everything stays on 127.0.0.1.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from judge_engine.config import Config
from judge_engine.demo import SAMPLES
from judge_engine.engine import grade

from .conftest import read_jsonl

LITELLM = os.environ.get("JUDGE_ENGINE_LITELLM")
MASTER_KEY = "sk-litellm-master-" + "m" * 24

pytestmark = [
    pytest.mark.litellm,
    pytest.mark.skipif(
        not LITELLM,
        reason="set JUDGE_ENGINE_LITELLM to LiteLLM's litellm command (tests/run.sh does)",
    ),
]

CONFIG = f"""
model_list:
  - model_name: judge-a
    litellm_params:
      model: openai/judge-a
      api_key: not-used
      mock_response: '{{"success": 1, "confidence": "high", "reasoning": "the tests pass"}}'
  - model_name: judge-b
    litellm_params:
      model: openai/judge-b
      api_key: not-used
      rpm: 6000
      mock_response: "```json\\n{{\\"success\\": 0, \\"confidence\\": \\"medium\\", \\
        \\"reasoning\\": \\"no evidence\\"}}\\n```"
  - model_name: judge-429
    litellm_params:
      model: openai/judge-429
      api_key: not-used
      mock_response: litellm.RateLimitError
  - model_name: judge-500
    litellm_params:
      model: openai/judge-500
      api_key: not-used
      mock_response: litellm.InternalServerError
router_settings:
  num_retries: 0
general_settings:
  master_key: {MASTER_KEY}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(folder: Path, config: str) -> tuple[subprocess.Popen[bytes], str]:
    """LiteLLM's proxy on a free loopback port with `config`, once it answers."""
    (folder / "config.yaml").write_text(config)
    port = _free_port()
    log = open(folder / "proxy.log", "wb")  # noqa: SIM115 - the process writes it
    assert LITELLM is not None
    process = subprocess.Popen(
        [LITELLM, "--config", str(folder / "config.yaml"), "--host", "127.0.0.1", "--port",
         str(port)],
        cwd=folder,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"},
    )  # fmt: skip
    log.close()
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/liveliness", timeout=2):
                return process, f"http://127.0.0.1:{port}"
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                _stop(process)
                raise RuntimeError(
                    "LiteLLM's proxy did not start:\n" + (folder / "proxy.log").read_text()[-3000:]
                ) from None
            time.sleep(0.5)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    process, url = _start(tmp_path_factory.mktemp("litellm"), CONFIG)
    try:
        yield url
    finally:
        _stop(process)


def _config(tmp_path: Path, url: str, **changes: object) -> Config:
    config = Config.of(
        sources=(str(SAMPLES),),
        judge=("judge-a", "judge-b"),
        base_url=url,
        out=tmp_path / "out",
        quiet=True,
        concurrency=8,
        backoff_base=0.05,
    )
    return config.replace(**changes)


async def test_a_panel_grades_through_litellm_and_resumes_with_no_request(
    proxy: str, tmp_path: Path
) -> None:
    config = _config(tmp_path, proxy)  # base URL without /v1: the proxy serves both
    result, _ = await grade(config, MASTER_KEY)
    assert result.status == "done", result.message
    assert result.sessions == 25 and result.rejected == 1
    assert result.verdicts == 50 and result.failed == 0
    rows = read_jsonl(tmp_path / "out" / "scores.jsonl")
    by_slot = {r["judge_slot"]: r["scores"]["task_success"] for r in rows}
    assert by_slot == {"judge-a": 1, "judge-b": 0}  # plain and fenced JSON both parsed
    assert {r["usage"]["total_tokens"] for r in rows} == {30}  # LiteLLM's mock usage
    again, _ = await grade(config, MASTER_KEY)
    assert again.requests_sent == 0 and again.already_done == 25


async def test_litellm_429s_and_500s_are_retried_then_reported(proxy: str, tmp_path: Path) -> None:
    config = _config(
        tmp_path, proxy + "/v1", judge=("judge-429", "judge-500"), max_retries=1, limit=3
    )
    result, _ = await grade(config, MASTER_KEY)
    assert result.status == "incomplete"
    assert result.failed == 6 and result.retries == 6 and result.throttled == 6
    errors = {r["slot"]: r["error"] for r in read_jsonl(tmp_path / "out" / "journal.jsonl")}
    assert errors["judge-429"].startswith("rate_limited 429")
    assert errors["judge-500"].startswith("server_error 500")


async def test_a_wrong_key_stops_the_run_and_never_leaks(proxy: str, tmp_path: Path) -> None:
    wrong = "sk-wrong-" + "w" * 30
    result, summary = await grade(_config(tmp_path, proxy, concurrency=1), wrong)
    # LiteLLM answers a key it does not know with 400 (no database), not 401:
    # the breaker stops the run after ten identical permanent failures.
    assert result.status == "error"
    assert "every request to judge" in result.message
    for text in (result.message, summary):
        assert wrong not in text and MASTER_KEY not in text
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert wrong.encode() not in path.read_bytes()


#: The Batch API through LiteLLM's proxy: its files and batches routes (`files_settings`)
#: in front of the simulator's, as it fronts OpenAI's.
BATCH_CONFIG = """
model_list:
  - model_name: gpt-4.1
    litellm_params:
      model: openai/gpt-4.1
      api_key: {upstream}
      api_base: http://127.0.0.1:{port}/v1
files_settings:
  - custom_llm_provider: openai
    api_key: {upstream}
    api_base: http://127.0.0.1:{port}/v1
general_settings:
  master_key: {master}
"""
UPSTREAM_KEY = "sk-upstream-" + "u" * 24


@pytest.fixture(scope="module")
def batch_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """LiteLLM's proxy, and the port its upstream (a simulator the test starts) takes."""
    port = _free_port()
    config = BATCH_CONFIG.format(upstream=UPSTREAM_KEY, port=port, master=MASTER_KEY)
    process, url = _start(tmp_path_factory.mktemp("litellm-batch"), config)
    try:
        yield url + "/v1", port
    finally:
        _stop(process)


async def test_a_batch_run_through_litellm_gives_the_live_verdicts_and_resumes_a_kill(
    batch_proxy: tuple[str, int], tmp_path: Path
) -> None:
    import anyio

    from judge_engine.testing.sim import SimConfig, Simulator

    url, port = batch_proxy
    simulator = Simulator(SimConfig(batch_delay_s=0.5, api_key=UPSTREAM_KEY, batch_hold="created"))
    await simulator.start(port)
    try:
        base = _config(tmp_path, url, judge=("gpt-4.1",), limit=8)
        live, _ = await grade(base.replace(out=tmp_path / "live"), MASTER_KEY)
        out = tmp_path / "batch"
        command = [
            sys.executable, "-m", "judge_engine", "grade", str(SAMPLES), "--judge", "gpt-4.1",
            "--base-url", url, "--out", str(out), "--batch", "--limit", "8", "--quiet",
        ]  # fmt: skip
        env = {**os.environ, "OPENAI_API_KEY": MASTER_KEY}
        process = await anyio.open_process(command, env=env)
        with anyio.fail_after(60):
            await simulator.batches.holding.wait()  # the batch is made, its reply held
        process.kill()
        await process.wait()
        resumed = await anyio.run_process(command, env=env, check=False)
        stats = simulator.stats()
    finally:
        await simulator.stop()
    assert live.status == "done"
    assert resumed.returncode == 0, resumed.stdout.decode() + resumed.stderr.decode()
    assert stats["submitted_twice"] == 0 and stats["batches"] == {"completed": 1}
    verdicts = {
        name: {
            r["session_id"]: r["scores"]["task_success"]
            for r in read_jsonl(folder / "scores.jsonl")
        }
        for name, folder in (("live", tmp_path / "live"), ("batch", out))
    }
    assert verdicts["live"] == verdicts["batch"] and len(verdicts["batch"]) == 8


async def test_litellm_speaking_anthropics_api_to_the_simulators_anthropic_mode(
    tmp_path: Path,
) -> None:
    """LiteLLM's proxy is an independent client of Anthropic's Messages API: in front of
    the simulator's anthropic mode, it must find the API it knows (or the mode is
    wrong), and the engine grades through it."""
    import anyio

    from judge_engine.testing import synth
    from judge_engine.testing.sim import SimConfig, Simulator

    from .conftest import write_jsonl

    upstream_key = "sk-ant-upstream-" + "u" * 24
    simulator = Simulator(SimConfig(provider="anthropic", api_key=upstream_key))
    port = _free_port()
    await simulator.start(port)
    config = f"""
model_list:
  - model_name: claude-judge
    litellm_params:
      model: anthropic/claude-sonnet-4-5
      api_base: http://127.0.0.1:{port}
      api_key: {upstream_key}
router_settings:
  num_retries: 0
general_settings:
  master_key: {MASTER_KEY}
"""
    folder = tmp_path / "litellm"
    folder.mkdir()
    try:
        process, url = await anyio.to_thread.run_sync(_start, folder, config)
        try:
            rows = [synth.otel_row(f"s{i}", "swebench", seed=i) for i in range(4)]
            source = str(write_jsonl(tmp_path / "s.jsonl", rows))
            run = Config.of(
                sources=(source,), judge=("claude-judge",), base_url=f"{url}/v1",
                out=tmp_path / "out", quiet=True, allow_model_mismatch=True, backoff_base=0.01,
            )  # fmt: skip
            result, _ = await grade(run, MASTER_KEY)
        finally:
            await anyio.to_thread.run_sync(_stop, process)
        stats = simulator.stats()
    finally:
        await simulator.stop()
    assert result.status == "done", (result.message, (folder / "proxy.log").read_text()[-2000:])
    assert result.verdicts == 4
    # Every request reached the Messages API and none was refused by it.
    assert stats["models"] == {"claude-sonnet-4-5": 4}
    assert not any(code >= "400" for code in stats["status"]), stats["status"]
    records = read_jsonl(tmp_path / "out" / "journal.jsonl")
    assert {r["served_model"] for r in records} <= {"claude-sonnet-4-5", "claude-judge"}
