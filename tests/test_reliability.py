"""Secrets never leak; a full disk stops cleanly and resumes; gateway garbage is a failure."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from judge_engine.cli import main
from judge_engine.config import Config
from judge_engine.engine import grade
from judge_engine.testing import synth
from judge_engine.testing.sim import SimConfig, Simulator

from .conftest import grade_argv, read_jsonl, write_jsonl
from .servers import Action, ScriptedServer

KEY = "sk-reliability-" + "q" * 30


def _source(tmp_path: Path, count: int = 6) -> str:
    rows = [synth.otel_row(f"s{i}", "tau2_airline", seed=i) for i in range(count)]
    return str(write_jsonl(tmp_path / "sessions.jsonl", rows))


async def _run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
    """A subprocess from an async test: in a thread, so the event loop (and the
    simulator on it) keeps serving the child's requests."""
    return await anyio.to_thread.run_sync(
        lambda: subprocess.run(command, capture_output=True, check=False, **kwargs)
    )


def _everything_under(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())


async def test_the_key_stays_out_of_progress_lines_output_and_files(tmp_path: Path) -> None:
    source = _source(tmp_path)
    async with Simulator(SimConfig(api_key=KEY, fail_rate=0.3, seed=3)) as simulator:
        result = await _run(
            grade_argv(source, simulator.url, tmp_path / "out"),
            env={**os.environ, "OPENAI_API_KEY": KEY},
        )
    assert result.returncode == 0, result.stderr.decode()
    assert b"session" in result.stderr  # the progress bar was drawn
    assert KEY.encode() not in result.stdout + result.stderr
    assert KEY.encode() not in _everything_under(tmp_path / "out")


async def test_credentials_in_the_base_url_never_show(tmp_path: Path) -> None:
    source = _source(tmp_path)
    password = "hunter2-" + "p" * 20
    async with Simulator(SimConfig(api_key=KEY)) as simulator:
        url = simulator.url.replace("http://", f"http://admin:{password}@")
        result = await _run(
            grade_argv(source, url, tmp_path / "out", "--quiet"),
            env={k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"},
        )
    # Basic credentials are not the bearer key the simulator wants: a 401, one line.
    assert result.returncode == 2
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "http://127.0.0.1:" in lines[0]
    assert password.encode() not in result.stdout + result.stderr
    assert password.encode() not in _everything_under(tmp_path / "out")


def test_a_crash_prints_one_scrubbed_line_without_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _source(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)

    async def broken(config: Config, api_key: str | None, **kw: Any) -> Any:
        raise RuntimeError(f"unexpected state while holding {api_key} and Bearer {api_key}")

    monkeypatch.setattr("judge_engine.cli.grade.grade", broken)
    assert main(["grade", source, "--judge", "j", "--base-url", "http://127.0.0.1:9/v1"]) == 70
    err = capsys.readouterr().err
    assert "internal error: RuntimeError" in err and KEY not in err
    monkeypatch.setenv("JUDGE_ENGINE_DEBUG", "1")
    assert main(["grade", source, "--judge", "j", "--base-url", "http://127.0.0.1:9/v1"]) == 70
    err = capsys.readouterr().err
    assert "Traceback" in err and KEY not in err


def _limit_file_size(limit: int) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG, not a signal
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


async def test_a_full_disk_stops_cleanly_and_the_run_resumes(tmp_path: Path) -> None:
    source = _source(tmp_path, 80)
    out = tmp_path / "out"
    env = {**os.environ, "OPENAI_API_KEY": KEY}
    async with Simulator(SimConfig(api_key=KEY)) as simulator:
        command = grade_argv(source, simulator.url, out, "--judge", "gemini-2.5-pro", "--quiet")
        # Files may not grow past 40 KB: the journal or the score rows fill up mid-run.
        full = await _run(
            command,
            env=env,
            text=True,
            preexec_fn=lambda: _limit_file_size(40_000),
        )
        assert full.returncode == 2, full.stderr
        assert "cannot write" in full.stderr and "File too large" in full.stderr
        assert "Traceback" not in full.stderr
        # Whole lines only: the run may have died mid-line (the next run cuts it).
        durable = (out / "journal.jsonl").read_bytes().count(b"\n")
        assert 0 < durable < 160
        again = await _run(command, env=env, text=True)
    assert again.returncode == 0, again.stderr
    verify = await _run(
        [sys.executable, "-m", "judge_engine", "journal", "verify", str(out)],
        text=True,
    )
    assert verify.returncode == 0, verify.stdout
    pairs = Counter((r["session_id"], r["judge_slot"]) for r in read_jsonl(out / "scores.jsonl"))
    assert len(pairs) == 160 and max(pairs.values()) == 1


def test_an_output_folder_that_cannot_be_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code = main(
        [
            "grade",
            _source(tmp_path),
            "--judge",
            "j",
            "--out",
            str(blocker / "out"),
            "--base-url",
            "http://127.0.0.1:9/v1",
        ]
    )
    assert code == 2
    assert "cannot use" in capsys.readouterr().err


GARBAGE = {
    "html": (
        Action(body=b"<html><body>502 Bad Gateway</body></html>"),
        "bad_response 200: not JSON",
    ),
    "empty": (Action(body=b""), "bad_response 200: empty body"),
    "no_choices": (
        Action(body=b'{"id": "x", "choices": []}'),
        "bad_response: the reply has no choices",
    ),
    "wrong_model": (Action(model="some-other-model"), "model_mismatch: asked gpt-4.1"),
    "not_text": (
        Action(content=None, body=orjson.dumps({"choices": [{"message": {"content": {"x": 1}}}]})),
        "bad_response: the reply's content",
    ),
}


@pytest.mark.parametrize("kind", sorted(GARBAGE))
async def test_a_gateway_answering_garbage_is_a_clear_failure(tmp_path: Path, kind: str) -> None:
    action, reason = GARBAGE[kind]
    async with ScriptedServer(default=lambda body: action) as server:
        config = Config.of(
            sources=(_source(tmp_path, 2),),
            judge=("gpt-4.1",),
            base_url=server.url,
            out=tmp_path / "out",
            quiet=True,
            max_retries=2,
            backoff_base=0.01,
        )
        result, _ = await grade(config, KEY)
    assert result.status == "incomplete" and result.verdicts == 0 and result.failed == 2
    records = read_jsonl(tmp_path / "out" / "journal.jsonl")
    assert all(r["status"] == "failed" and r["success"] is None for r in records)
    assert all(r["error"].startswith(reason) for r in records), records[0]["error"]
    rows = read_jsonl(tmp_path / "out" / "scores.jsonl")
    assert all(r["scores"]["task_success"] is None for r in rows)


async def test_a_fault_storm_changes_no_verdict(tmp_path: Path) -> None:
    storm = SimConfig(
        throttle_rate=0.1,
        fail_rate=0.1,
        drop_rate=0.05,
        malformed_rate=0.1,
        html_rate=0.05,
        empty_rate=0.05,
        no_choices_rate=0.05,
        seed=11,
    )
    config = Config.of(
        sources=(_source(tmp_path, 30),),
        judge=("gpt-4.1", "o3"),
        base_url=None,
        out=tmp_path / "storm",
        quiet=True,
        max_retries=20,
        backoff_base=0.01,
        concurrency=8,
    )
    async with Simulator(storm) as simulator:
        stormy, _ = await grade(config.replace(base_url=simulator.url), KEY)
    async with Simulator(SimConfig()) as simulator:
        calm, _ = await grade(config.replace(base_url=simulator.url, out=tmp_path / "calm"), KEY)
    assert stormy.status == "done" and stormy.verdicts == 60 and stormy.retries > 20
    assert calm.status == "done" and calm.retries == 0

    def verdicts(folder: str) -> dict[tuple[str, str], Any]:
        return {
            (r["session_id"], r["judge_slot"]): (r["scores"], r["metadata"]["judge_reasoning"])
            for r in read_jsonl(tmp_path / folder / "scores.jsonl")
        }

    assert verdicts("storm") == verdicts("calm")
