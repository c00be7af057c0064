"""What a new user meets: every mistake one line and exit 2, failures that a re-run
asks again, Ctrl-C that sends nothing new, a preview that costs the run, results that
follow the current panel, --fresh that keeps paid verdicts, and runs that say what
they lack and what to run."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import orjson
import pytest

from judge_engine.cli import main
from judge_engine.testing import synth

from .conftest import grade_argv, read_jsonl, write_jsonl
from .servers import Action, ScriptedServer, error, ok

KEY = "sk-newcomer-" + "n" * 24
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OPENAI_API_KEY": KEY}


def _source(tmp_path: Path, count: int = 4, **kwargs: object) -> str:
    rows = [synth.otel_row(f"s{i}", "swebench", seed=i, **kwargs) for i in range(count)]  # type: ignore[arg-type]
    return str(write_jsonl(tmp_path / "sessions.jsonl", rows))


def _cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "judge_engine", *argv],
        capture_output=True,
        text=True,
        env={**ENV, **(env or {})},
        check=False,
        timeout=120,
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- every mistake is one line and exit 2 --------------------------------------------


def test_an_unreachable_hub_in_grade_is_one_line(tmp_path: Path) -> None:
    result = _cli(
        "grade",
        "hf://nobody/no-such-dataset?config=x",
        "--judge",
        "j",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--out",
        str(tmp_path / "out"),
        "--quiet",
        env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")},
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot stream nobody/no-such-dataset" in lines[0], lines
    assert "internal error" not in result.stderr


def test_nothing_listening_at_the_base_url_stops_the_run_without_failing_sessions(
    tmp_path: Path,
) -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"
    out = tmp_path / "out"
    result = _cli(
        "grade", _source(tmp_path), "--judge", "j", "--base-url", url, "--out", str(out),
        "--backoff-base", "0.05", "--quiet",
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and url in lines[0] and "cannot reach" in lines[0], lines
    assert read_jsonl(out / "journal.jsonl") == []  # no session marked failed


async def test_an_unknown_host_stops_the_run_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = socket.getaddrinfo

    def resolve(host: object, *args: object, **kwargs: object) -> object:
        if host == "judge-gateway.invalid":  # answered here: no lookup leaves the machine
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    url = "http://judge-gateway.invalid/v1"
    argv = ["grade", _source(tmp_path), "--judge", "j", "--base-url", url, "--quiet"]
    code = await anyio.to_thread.run_sync(
        main, [*argv, "--out", str(tmp_path / "out"), "--backoff-base", "0.01"]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "judge-gateway.invalid" in err and "unknown host" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["export", "{out}", "--file", "{tmp}"],
        ["export", "{out}", "--file", "{tmp}/missing/scores.parquet"],
        ["agree", "{out}", "--json", "{tmp}"],
        ["agree", "{out}", "--json", "{tmp}/missing/agree.json"],
        ["report", "{out}", "--plots", "{tmp}/a-file"],
        ["report", "{out}", "--plots", "{tmp}/a-file/plots"],
        ["preview", "{source}", "--judge", "j", "--out", "{tmp}/a-file"],
        ["export", "{tmp}/no-such-run"],
        ["agree", "{tmp}/no-such-run"],
        ["report", "{tmp}/no-such-run"],
        ["grade", "{source}", "--judge", "j", "--rpm", "inf", "--out", "{tmp}/o"],
        ["grade", "{source}", "--judge", "j", "--timeout", "inf", "--out", "{tmp}/o"],
        ["grade", "{source}", "--judge", "j", "--temperature", "5", "--out", "{tmp}/o"],
        ["preview", "{source}", "--judge", "j", "--rpm", "1e-320"],
    ],
)
def test_every_output_path_and_number_mistake_is_one_line(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    source = _source(tmp_path)
    out.mkdir()
    (out / "journal.jsonl").write_bytes(b"")
    (tmp_path / "a-file").write_text("x")
    filled = [a.format(out=out, tmp=tmp_path, source=source) for a in argv]
    os.environ.setdefault("OPENAI_API_KEY", KEY)
    code = main(filled)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("judge-engine: error:"), err


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    rows = [
        orjson.dumps(r).decode()
        for r in (
            {"key": f"{i:032x}", "session_id": f"s{i}", "slot": "j", "judge": "j", "sample": 0,
             "status": "ok", "rubric": "default", "rubric_version": "r", "prompt_version": "p",
             "success": i % 2, "confidence": "high", "benchmark": f"bench-{i % 400}",
             "harness": f"h{i % 7}", "agent_models": [f"m{i % 5}"]}
            for i in range(4000)
        )
    ]  # fmt: skip
    (out / "journal.jsonl").write_text("\n".join(rows) + "\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "judge_engine", "report", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.readline()
    process.stdout.close()  # `report | head -1`
    err = process.stderr.read().decode()
    assert process.wait(60) == 0 and err == "", err


# --- failures a re-run asks again, and runs that say what they lack ------------------


async def test_transient_failures_are_asked_again_by_the_same_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    source = _source(tmp_path, 3)
    out = tmp_path / "out"
    async with ScriptedServer(default=lambda body: error(503, "overloaded")) as server:
        argv = grade_argv(source, server.url, out, "--max-retries", "1", "--backoff-base", "0")
        first = await anyio.to_thread.run_sync(main, argv[3:])
        printed = capsys.readouterr().out
        assert first == 1
        assert "3 sessions lack a verdict" in printed and "run the same command again" in printed
        server.default = lambda body: ok()
        second = await anyio.to_thread.run_sync(main, argv[3:])
    assert second == 0, capsys.readouterr()
    latest = {r["session_id"]: r["status"] for r in read_jsonl(out / "journal.jsonl")}
    assert latest == {"s0": "ok", "s1": "ok", "s2": "ok"}


async def test_permanent_failures_wait_for_retry_failed_and_every_run_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    source = _source(tmp_path, 3)
    out = tmp_path / "out"
    script = [error(400, "bad request"), ok(), ok()]
    async with ScriptedServer(script) as server:
        argv = grade_argv(source, server.url, out, "--concurrency", "1")[3:]
        assert await anyio.to_thread.run_sync(main, argv) == 1
        capsys.readouterr()
        # Nothing is left to ask, and the run still lacks a verdict: exit 1, and say so.
        assert await anyio.to_thread.run_sync(main, argv) == 1
        printed = capsys.readouterr().out
        assert len(server.arrivals) == 3
        assert "1 sessions lack a verdict" in printed and "--retry-failed" in printed
        assert "1 requests failed for good (1 in an earlier run)" in printed
        assert await anyio.to_thread.run_sync(main, [*argv, "--retry-failed"]) == 0
    assert len(server.arrivals) == 4


async def test_the_summary_counts_sessions_and_names_guard_skips_and_empty_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    source = _source(tmp_path, 4, models=("gpt-4.1",))
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    out = tmp_path / "out"
    async with ScriptedServer() as server:
        argv = grade_argv(source, server.url, out, "--judge", "o3")[3:]
        argv += [str(empty)]
        assert await anyio.to_thread.run_sync(main, argv) == 0
        captured = capsys.readouterr()
        assert f"warning: no session in {empty}" in captured.err
        assert "4 graded, 0 already done, 0 failed, 0 not reached" in captured.out
        assert "the guard skipped slot gpt-4.1 on 4 sessions" in captured.out
        assert "--fallback-judge" in captured.out
        assert await anyio.to_thread.run_sync(main, argv) == 0
        again = capsys.readouterr()
        assert again.out.startswith("nothing to do: the 4 sessions")
        assert f"warning: no session in {empty}" in again.err


# --- Ctrl-C ------------------------------------------------------------------------


async def test_ctrl_c_sends_nothing_new_and_keeps_every_answer(tmp_path: Path) -> None:
    rows = [synth.otel_row(f"s{i:02d}", "swebench", seed=i) for i in range(40)]
    source = str(write_jsonl(tmp_path / "s.jsonl", rows))
    out = tmp_path / "out"
    async with ScriptedServer(default=lambda body: Action(delay_s=1.0)) as server:
        command = grade_argv(source, server.url, out, "--concurrency", "6", "--rpm", "240")
        process = await anyio.open_process(
            [*command, "--grace", "8"],
            env={**os.environ, "OPENAI_API_KEY": KEY},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        with anyio.fail_after(30):
            while len(server.arrivals) < 3:  # noqa: ASYNC110 - polls another task's list
                await anyio.sleep(0.01)
        process.send_signal(signal.SIGINT)
        signalled = time.monotonic()
        with anyio.fail_after(30):
            await process.wait()
        assert process.stderr is not None
        err = (await process.stderr.receive()).decode()
    assert process.returncode == 130
    late = [t for t in server.arrivals if t > signalled + 0.2]
    assert late == [], f"{len(late)} requests sent after Ctrl-C"
    # Every request that reached the server was answered within the grace: all durable.
    assert len(read_jsonl(out / "journal.jsonl")) == len(server.arrivals)
    assert "no new request is sent" in err and "Ctrl-C again stops at once" in err


# --- preview is the run's own plan, with its cost ---------------------------------------


def test_preview_renders_what_grade_sends_with_the_guard_and_a_cost_estimate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [
        synth.otel_row("own", "swebench", models=("gpt-4.1",)),
        synth.otel_row("other", "swebench", models=("claude-sonnet-4-5",)),
    ]
    source = str(write_jsonl(tmp_path / "s.jsonl", rows))
    out = tmp_path / "preview"
    argv = ["preview", source, "--judge", "gpt-4.1", "--fallback-judge", "o3", "--out", str(out)]
    assert main(argv) == 0
    lines = {(r["session_id"], r["slot"]): r for r in read_jsonl(out / "requests.jsonl")}
    assert lines[("own", "gpt-4.1")]["judge_model"] == "o3"  # the fallback takes the slot
    assert lines[("own", "gpt-4.1")]["body"]["model"] == "o3"
    assert lines[("other", "gpt-4.1")]["judge_model"] == "gpt-4.1"
    printed = capsys.readouterr().out
    assert "estimate" in printed and "input tokens" in printed
    assert "gpt-4.1: openai" in printed and "o3: openai" in printed  # who serves each
    estimate = printed.split("estimate", 1)[1]
    for judge in ("gpt-4.1", "o3"):
        line = next(x for x in estimate.splitlines() if x.strip().startswith(judge))
        assert "$" not in line and line.split()[-1].replace(".", "").isdigit(), line
    assert main([*argv, "--judge", "unpriced-model"]) == 0
    assert "no price known for unpriced-model" in capsys.readouterr().out


# --- results follow the current panel ----------------------------------------------


async def test_results_follow_the_current_panel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    source = _source(tmp_path, 3)
    out = tmp_path / "out"
    async with ScriptedServer() as server:
        base = grade_argv(source, server.url, out)[3:]
        typo = [a if a != "gpt-4.1" else "gpt-4.l" for a in base]  # a typo, then fixed
        assert await anyio.to_thread.run_sync(main, [*typo, "--judge", "o3"]) == 0
        assert await anyio.to_thread.run_sync(main, [*base, "--judge", "o3"]) == 0
    capsys.readouterr()
    slots = {r["judge_slot"] for r in read_jsonl(out / "scores.jsonl")}
    assert slots == {"gpt-4.1", "o3"}
    assert main(["export", str(out), "--to", "jsonl"]) == 0
    exported = read_jsonl(out / "scores-by-session.jsonl")
    assert not any(k.startswith("gpt_4_l__") for k in exported[0])
    assert main(["export", str(out), "--to", "jsonl", "--all-judges"]) == 0
    exported = read_jsonl(out / "scores-by-session.jsonl")
    assert any(k.startswith("gpt_4_l__") for k in exported[0])
    assert main(["agree", str(out), "--json", str(tmp_path / "a.json")]) == 0
    agreement = orjson.loads((tmp_path / "a.json").read_bytes())
    assert agreement["judges"] == ["gpt-4.1", "o3"]
    assert main(["agree", str(out), "--all-judges", "--json", str(tmp_path / "b.json")]) == 0
    assert orjson.loads((tmp_path / "b.json").read_bytes())["judges"] == [
        "gpt-4.1",
        "o3",
        "gpt-4.l",
    ]
    assert main(["report", str(out), "--judge", "gpt-4.l"]) == 2
    assert "--all-judges" in capsys.readouterr().err
    assert main(["report", str(out), "--judge", "gpt-4.l", "--all-judges"]) == 0


async def test_fresh_moves_the_paid_journal_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    source = _source(tmp_path, 2)
    out = tmp_path / "out"
    async with ScriptedServer() as server:
        argv = grade_argv(source, server.url, out)[3:]
        assert await anyio.to_thread.run_sync(main, argv) == 0
        paid = (out / "journal.jsonl").read_bytes()
        assert main(["export", str(out), "--to", "csv"]) == 0
        exported = (out / "scores-by-session.csv").read_bytes()
        capsys.readouterr()
        assert await anyio.to_thread.run_sync(main, [*argv, "--fresh"]) == 0
    aside = [p for p in out.glob("journal-*.jsonl")]
    assert len(aside) == 1 and aside[0].read_bytes() == paid
    # The export made from that journal goes aside with it: none is left that the new
    # journal did not make.
    assert not (out / "scores-by-session.csv").exists()
    assert [p.read_bytes() for p in out.glob("scores-by-session-*.csv")] == [exported]
    assert f"moved to {aside[0]}" in capsys.readouterr().out
    assert len(server.arrivals) == 4


async def test_scores_follow_the_panel_and_the_journal_even_when_nothing_is_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    source = _source(tmp_path, 3)
    out = tmp_path / "out"
    async with ScriptedServer() as server:
        both = grade_argv(source, server.url, out, "--judge", "o3")[3:]
        assert await anyio.to_thread.run_sync(main, both) == 0
        one = grade_argv(source, server.url, out)[3:]
        assert await anyio.to_thread.run_sync(main, one) == 0  # nothing to ask
        assert {r["judge_slot"] for r in read_jsonl(out / "scores.jsonl")} == {"gpt-4.1"}
        (out / "scores.jsonl").unlink()
        assert await anyio.to_thread.run_sync(main, both) == 0  # nothing to ask
        assert len(read_jsonl(out / "scores.jsonl")) == 6
        assert await anyio.to_thread.run_sync(main, ["journal", "verify", str(out)]) == 0
    assert len(server.arrivals) == 6
