"""The grade, export, demo and sim commands, as a user runs them."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from judge_engine.cli import main
from judge_engine.testing import synth
from judge_engine.testing.sim import SimConfig, Simulator

from .conftest import grade_argv, read_jsonl, write_jsonl

KEY = "sk-cli-" + "c" * 32


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    """A simulator on its own loop in a thread, so that main() can run its own loop."""
    loop = asyncio.new_event_loop()
    sim = Simulator(SimConfig(api_key=KEY))
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(sim.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(10)
    yield sim
    asyncio.run_coroutine_threadsafe(sim.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


@pytest.fixture
def source(tmp_path: Path) -> str:
    rows = [synth.otel_row(f"s{i}", "appworld", seed=i, success=i % 2 == 0) for i in range(6)]
    return str(write_jsonl(tmp_path / "sessions.jsonl", rows))


def test_grade_reads_toml_config_and_flags_win(
    simulator: Simulator,
    source: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("JUDGE_KEY", KEY)
    out = tmp_path / "out"
    config = tmp_path / "judge.toml"
    config.write_text(
        f'judge = ["gpt-4.1", "gemini-2.5-pro"]\nbase-url = "{simulator.url}"\n'
        f'api-key-env = "JUDGE_KEY"\nlimit = 2\nconcurrency = 3\nquiet = true\n'
        f'out = "{out}"\nprice = ["gpt-4.1=1,2"]\n'
    )
    code = main(["grade", source, "--config", str(config), "--limit", "4"])
    assert code == 0
    run = orjson.loads((out / "run.json").read_bytes())
    assert run["run"]["limit"] == 4  # the flag won
    assert run["panel"]["judge"] == ["gpt-4.1", "gemini-2.5-pro"]
    assert run["gateway"]["concurrency"] == 3
    assert run["run"]["price"] == ["gpt-4.1=1,2"]
    assert KEY not in (out / "run.json").read_text()
    assert len(read_jsonl(out / "scores.jsonl")) == 8
    printed = capsys.readouterr().out
    assert "score columns:" in printed and "sessions: 4 graded" in printed


def test_config_files_may_not_hold_keys_or_unknown_options(
    tmp_path: Path, source: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('judge = ["a"]\napi_key = "sk-in-a-file"\n')
    assert main(["grade", source, "--config", str(config)]) == 2
    assert "never goes in a file" in capsys.readouterr().err
    config.write_text('judge = ["a"]\ncolour = "blue"\n')
    assert main(["grade", source, "--config", str(config)]) == 2
    assert "unknown option 'colour'" in capsys.readouterr().err


def test_the_key_is_never_a_flag_and_must_be_in_the_environment(
    source: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["grade", source, "--judge", "j", "--api-key", "sk-flag"]) == 2
    err = capsys.readouterr().err
    assert "never taken as a flag" in err and "sk-flag" not in err
    assert main(["grade", source, "--judge", "j"]) == 2
    assert "set $OPENAI_API_KEY" in capsys.readouterr().err


def test_usage_errors(
    source: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    assert main(["grade", source]) == 2
    assert "--judge" in capsys.readouterr().err
    assert main(["grade", source, "--judge", "a", "--judge", "a"]) == 2
    assert main(["grade", source, "--judge", "unpriced-model", "--max-cost", "5"]) == 2
    assert "needs a price for unpriced-model" in capsys.readouterr().err
    assert main(["grade", source, "--judge", "a", "--price", "a=cheap"]) == 2
    assert main(["grade", source, "--judge", "a", "--base-url", "ftp://x"]) == 2
    assert "base URL" in capsys.readouterr().err


def test_a_401_is_one_clear_line_with_exit_2(
    simulator: Simulator, source: str, tmp_path: Path
) -> None:
    wrong = "sk-wrong-" + "w" * 30
    result = subprocess.run(
        grade_argv(source, simulator.url, tmp_path / "out", "--quiet"),
        env={**os.environ, "OPENAI_API_KEY": wrong},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("judge-engine: error: the gateway at")
    assert "refused the API key" in lines[0] and "Traceback" not in result.stderr
    assert wrong not in result.stderr + result.stdout


def test_export_formats(
    simulator: Simulator, source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    out = tmp_path / "out"
    assert (
        main(
            [
                "grade",
                source,
                "--judge",
                "gpt-4.1",
                "--judge",
                "claude-opus-4-5",
                "--fallback-judge",
                "gemini-2.5-pro",
                "--base-url",
                simulator.url,
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    assert main(["export", str(out), "--to", "parquet"]) == 0
    table = pq.read_table(out / "scores-by-session.parquet").to_pylist()
    assert len(table) == 6
    first = table[0]
    assert first["task_success"] == first["gpt_4_1__success"]
    # The sessions were made by claude-opus-4-5: its slot was judged by the fallback.
    assert {r["claude_opus_4_5__judge_model"] for r in table} == {"gemini-2.5-pro"}
    assert main(["export", str(out), "--to", "csv", "--file", str(tmp_path / "s.csv")]) == 0
    assert (tmp_path / "s.csv").read_text().startswith("session_id,benchmark,harness")
    assert main(["export", str(out), "--to", "braintrust"]) == 0
    merged = read_jsonl(out / "scores-braintrust.jsonl")
    assert merged[0]["_is_merge"] is True
    assert set(merged[0]["scores"]) == {
        "task_success",
        "task_success_gpt_4_1",
        "task_success_claude_opus_4_5",
    }
    assert main(["export", str(tmp_path / "nothing")]) == 2


def test_demo_grades_the_samples_and_resumes_with_no_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--out", str(tmp_path / "demo"), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "not a real model" in printed
    assert "second run: 0 requests sent, 25 sessions already done, 50 score rows" in printed
    assert "gemini-2.5-pro" in printed  # the fallback judged what a panel judge produced
    assert len(read_jsonl(tmp_path / "demo" / "scores.jsonl")) == 50
    report = tmp_path / "demo" / "report.html"
    assert f"HTML report: {report}" in printed
    assert b'id="browser"' in report.read_bytes()
    # the demo shows the judge measured against the labels it ships, as the README does
    assert "## Corrected success (rogan-gladen)" in printed
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    start = readme.index("````markdown\n## The judges against the labels")
    block = readme[start : readme.index("````\n", start + 10)].splitlines()[1:]
    labels = Path(__file__).resolve().parent.parent / "judge_engine" / "samples" / "labels.csv"
    assert main(["report", str(tmp_path / "demo"), "--labels", str(labels), "--min-n", "3"]) == 0
    shown = capsys.readouterr().out.splitlines()
    for line in block:
        if line != "| ... |":
            assert line in shown, line
    # and the failure modes it counts, and the topics it prints, as the README shows them
    start = readme.index("````markdown\n## Why sessions failed")
    block = readme[start : readme.index("````\n", start + 10)].splitlines()[1:]
    assert block and all(line in shown for line in block)
    start = readme.index("The failures grouped and named (judge-engine topics")
    topics = readme[start : readme.index("```", start)].strip().splitlines()
    for line in topics[1:]:
        assert line.replace("out/demo", str(tmp_path / "demo")) in printed, line


def test_sim_command_serves_on_loopback() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "judge_engine", "sim", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert "not a real model" in banner
        url = process.stdout.readline().split()[2]
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url.replace("/v1", "/health"), timeout=5) as reply:
            assert orjson.loads(reply.read())["simulator"] == "judge-engine simulator"
    finally:
        process.terminate()
        process.wait(10)


@pytest.mark.parametrize(
    "command",
    [
        "grade",
        "preview",
        "sessions",
        "show",
        "rubrics",
        "export",
        "demo",
        "sim",
        "agree",
        "report",
        "journal",
    ],
)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0
    assert len(capsys.readouterr().out) > 200
