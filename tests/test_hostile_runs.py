"""Resume means resume, and memory is bounded: kills at the worst moment, two commands
on one folder, changed rows, garbage journals, output inside sources, huge rows."""

from __future__ import annotations

import os
import re
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
from judge_engine.journal import OutLock
from judge_engine.sessions import Rejection, Session, read_sessions
from judge_engine.sinks import export, verify
from judge_engine.testing import synth
from judge_engine.testing.sim import SimConfig, Simulator

from .conftest import grade_argv, read_jsonl, write_jsonl, write_parquet
from .servers import ScriptedServer

KEY = "sk-runs-" + "r7" * 16


def _rows(count: int, prefix: str = "s") -> list[dict[str, Any]]:
    return [synth.otel_row(f"{prefix}{i:04d}", "tau2_retail", seed=i) for i in range(count)]


def _config(source: str | list[str], url: str, out: Path, **changes: Any) -> Config:
    sources = (source,) if isinstance(source, str) else tuple(source)
    config = Config.of(
        sources=sources,
        judge=("gpt-4.1",),
        base_url=url,
        out=out,
        quiet=True,
        concurrency=4,
        grace=2.0,
        backoff_base=0.01,
    )
    return config.replace(**changes)


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as handle:
        handle.write(data)


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


async def _start(command: list[str], journal: Path, lines: int) -> anyio.abc.Process:
    env = {**os.environ, "OPENAI_API_KEY": KEY}
    process = await anyio.open_process(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    with anyio.fail_after(60):
        while _lines(journal) < lines:
            assert process.returncode is None, "the run ended before it could be stopped"
            await anyio.sleep(0.005)
    return process


# --- resume means resume ----------------------------------------------------------------


def test_long_options_are_never_abbreviated(capsys: pytest.CaptureFixture[str]) -> None:
    for abbreviated in ("--fre", "--fres", "--retry-f", "--conc"):
        assert main(["grade", "x.jsonl", "--judge", "m", abbreviated]) == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_a_config_file_may_not_set_fresh(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    config = tmp_path / "c.toml"
    config.write_text('judge = ["gpt-4.1"]\nfresh = true\n')
    source = str(write_jsonl(tmp_path / "s.jsonl", _rows(1)))
    assert main(["grade", source, "--config", str(config), "--out", str(tmp_path / "o")]) == 2
    assert "fresh is an action for one run" in capsys.readouterr().err


async def test_resuming_a_killed_fresh_run_never_asks_a_finished_verdict_again(
    tmp_path: Path,
) -> None:
    source = str(write_jsonl(tmp_path / "s.jsonl", _rows(60)))
    out = tmp_path / "out"
    async with Simulator(SimConfig(latency_ms=80)) as simulator:
        command = grade_argv(source, simulator.url, out, "--fresh", "--concurrency", "4")
        process = await _start(command, out / "journal.jsonl", 15)
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(30):
            await process.wait()
        assert process.stdout is not None
        stdout = (await process.stdout.receive()).decode()
        resume = re.search(r"Resume with:\n\s+judge-engine (.+)", stdout)
        assert resume is not None and "--fresh" not in resume.group(1)
        durable = _lines(out / "journal.jsonl")
        arrived = len(simulator.arrivals)
        argv = [sys.executable, "-m", "judge_engine", *resume.group(1).split()]
        again = await anyio.run_process(
            argv, env={**os.environ, "OPENAI_API_KEY": KEY}, check=False
        )
        assert again.returncode == 0, again.stderr.decode()
        assert len(simulator.arrivals) - arrived == 60 - durable


async def test_at_most_the_requests_in_flight_are_asked_again_after_a_kill(
    tmp_path: Path,
) -> None:
    # A fast server and many sessions: answers pile up faster than they are made
    # durable, unless a worker waits for its answer to be durable.
    source = str(write_jsonl(tmp_path / "s.jsonl", _rows(3000)))
    concurrency = 8
    async with Simulator(SimConfig()) as simulator:
        for stop_at in (200, 1200):
            out = tmp_path / f"out-{stop_at}"
            command = grade_argv(
                source, simulator.url, out, "--concurrency", str(concurrency), "--quiet"
            )
            before = len(simulator.arrivals)
            process = await _start(command, out / "journal.jsonl", stop_at)
            process.send_signal(signal.SIGKILL)
            await process.wait()
            await anyio.sleep(0.3)
            arrived = len(simulator.arrivals) - before
            durable = _lines(out / "journal.jsonl")
            assert arrived - durable <= concurrency


async def test_the_lock_is_held_until_the_scores_rewrite_is_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from judge_engine import engine

    real = engine.mark_scores
    seen: list[str] = []

    def mark(out: Path, *args: Any) -> None:
        try:
            OutLock(out).release()
            seen.append("free")
        except Exception as exc:
            seen.append(type(exc).__name__)
        real(out, *args)

    monkeypatch.setattr(engine, "mark_scores", mark)
    source = str(write_jsonl(tmp_path / "s.jsonl", _rows(3)))
    async with ScriptedServer() as server:
        await grade(_config(source, server.url, tmp_path / "out"), KEY)
    assert seen == ["JournalError"]


def test_preview_and_sessions_take_the_lock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = str(write_jsonl(tmp_path / "s.jsonl", _rows(2)))
    out = tmp_path / "out"
    with OutLock(out):
        assert main(["preview", source, "--judge", "gpt-4.1", "--out", str(out)]) == 2
        assert main(["sessions", source, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("another judge-engine command is using" in e for e in err)


async def test_runs_add_to_rejected_rows_and_never_wipe_them(tmp_path: Path) -> None:
    first = write_jsonl(tmp_path / "a.jsonl", [*_rows(2, "a"), b"not json"])
    second = write_jsonl(tmp_path / "b.jsonl", [*_rows(2, "b"), b"{broken"])
    out = tmp_path / "out"
    async with ScriptedServer() as server:
        await grade(_config(str(first), server.url, out), KEY)
        await grade(_config(str(second), server.url, out), KEY)
        await grade(_config(str(second), server.url, out), KEY)  # the same rows again
    rejected = read_jsonl(out / "rejected.jsonl")
    assert sorted(Path(r["source"]).name for r in rejected) == ["a.jsonl", "b.jsonl"]


async def test_a_session_whose_row_changed_is_named_and_regraded_on_request(
    tmp_path: Path,
) -> None:
    rows = _rows(3)
    path = write_jsonl(tmp_path / "s.jsonl", rows)
    out = tmp_path / "out"
    async with ScriptedServer() as server:
        first, _ = await grade(_config(str(path), server.url, out), KEY)
        rows[1]["spans"][-1]["attributes"]["gen_ai.output.messages"] = orjson.dumps(
            [{"role": "assistant", "parts": [{"type": "text", "content": "changed answer"}]}]
        ).decode()
        write_jsonl(path, rows)
        kept, _ = await grade(_config(str(path), server.url, out), KEY)
        asked = len(server.arrivals)
        again, _ = await grade(_config(str(path), server.url, out, regrade_changed=True), KEY)
        settled, _ = await grade(_config(str(path), server.url, out), KEY)
    assert first.verdicts == 3
    assert kept.changed == 1 and kept.requests_sent == 0
    assert again.changed == 1 and again.requests_sent == 1 and len(server.arrivals) == asked + 1
    assert settled.changed == 0 and settled.requests_sent == 0
    assert verify(out).ok


async def test_journal_lines_that_are_json_but_no_record_are_skipped_and_reported(
    tmp_path: Path,
) -> None:
    source = str(write_jsonl(tmp_path / "s.jsonl", _rows(3)))
    out = tmp_path / "out"
    async with ScriptedServer() as server:
        await grade(_config(source, server.url, out), KEY)
        _append(
            out / "journal.jsonl",
            b'null\n[1, 2]\n"text"\n{"key": "not-hex", "session_id": "s0000"}\n'
            + b'{"key": "'
            + b"a" * 32
            + b'", "status": "ok"}\n',
        )
        again, _ = await grade(_config(source, server.url, out), KEY)
    assert again.status == "done" and again.requests_sent == 0
    report = verify(out)
    assert not report.ok
    assert sum("skipped" in p for p in report.problems) == 5


async def test_an_output_folder_inside_the_source_folder_is_never_read(tmp_path: Path) -> None:
    folder = tmp_path / "traces"
    folder.mkdir()
    write_jsonl(folder / "s.jsonl", _rows(4))
    async with ScriptedServer() as server:
        with anyio.fail_after(60):
            for run in ("out", "out", "other"):
                result, _ = await grade(_config(str(folder), server.url, folder / run), KEY)
                assert result.sessions == 4, run
    assert len(server.arrivals) == 8  # four for "out", none again, four for "other"


async def test_exports_are_whole_or_absent_and_csv_cells_cannot_start_a_formula(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = _rows(2)
    rows[0]["session_id"] = '=HYPERLINK("http://x")'
    source = str(write_jsonl(tmp_path / "s.jsonl", rows))
    out = tmp_path / "out"
    async with ScriptedServer() as server:
        await grade(_config(source, server.url, out), KEY)
    path, _ = export(out, "csv")
    assert "'=HYPERLINK" in path.read_text()
    before = path.read_bytes()

    import csv

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(csv.DictWriter, "writerows", broken)
    with pytest.raises(OSError):
        export(out, "csv")
    assert path.read_bytes() == before  # the complete file, never a truncated one
    assert [p.name for p in out.iterdir() if p.name.endswith(".tmp")] == []


async def test_rpm_holds_across_a_restart(tmp_path: Path) -> None:
    rows = _rows(2)
    first = str(write_jsonl(tmp_path / "a.jsonl", rows[:1]))
    second = str(write_jsonl(tmp_path / "b.jsonl", rows[1:]))
    out = tmp_path / "out"
    async with ScriptedServer() as server:
        await grade(_config(first, server.url, out, rpm=30), KEY)
        await grade(_config(second, server.url, out, rpm=30), KEY)
    # 30 a minute is one every two seconds; the restart keeps that spacing.
    assert server.arrivals[1] - server.arrivals[0] >= 2.0 * 0.95


# --- memory bounded by design ------------------------------------------------------------


def test_a_row_over_the_limit_is_rejected_without_being_held(tmp_path: Path) -> None:
    big = synth.otel_row("big", "swebench")
    big["padding"] = "x" * (3 << 20)
    path = write_jsonl(tmp_path / "s.jsonl", [_rows(1)[0], big, _rows(2, "t")[1]])
    results = list(read_sessions([str(path)], max_row_mb=1))
    assert [type(r).__name__ for r in results] == ["Session", "Rejection", "Session"]
    rejection = results[1]
    assert isinstance(rejection, Rejection)
    assert rejection.reason == "row_too_large" and rejection.row == 1
    assert "over --max-row-mb 1" in rejection.detail


def test_an_endless_stream_without_newlines_is_one_rejected_row() -> None:
    # /dev/zero as stdin, cut at 64 MB so the test ends: the row is read past in chunks.
    code = (
        "import sys\n"
        "from judge_engine.sessions import read_sessions\n"
        "for item in read_sessions(['-'], max_row_mb=1):\n"
        "    print(type(item).__name__, getattr(item, 'reason', ''))\n"
        # VmHWM, not ru_maxrss: a child keeps its parent's ru_maxrss across exec.
        "peak = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
        "print(int(peak.split()[1]) // 1024)\n"
    )
    zeros = subprocess.Popen(["head", "-c", str(64 << 20), "/dev/zero"], stdout=subprocess.PIPE)
    done = subprocess.run(
        [sys.executable, "-c", code], stdin=zeros.stdout, capture_output=True, check=True
    )
    zeros.wait()
    lines = done.stdout.decode().split("\n")
    assert lines[0] == "Rejection row_too_large"
    assert int(lines[1]) < 200  # megabytes: the 64 MB row was never held


def test_a_parquet_row_group_too_large_is_rejected_unread(tmp_path: Path) -> None:
    rows = [
        dict(synth.otel_row(f"p{i}", "swebench"), pad=os.urandom(1 << 19).hex()) for i in range(6)
    ]
    path = write_parquet(tmp_path / "big.parquet", rows)
    results = list(read_sessions([str(path)], max_row_mb=1))
    assert [r.reason for r in results if isinstance(r, Rejection)] == ["row_too_large"] * 6
    assert "row group 0" in results[0].detail  # type: ignore[union-attr]
    fine = list(read_sessions([str(path)], max_row_mb=64))
    assert all(isinstance(r, Session) for r in fine) and len(fine) == 6


def test_an_otlp_session_over_the_limit_is_rejected(tmp_path: Path) -> None:
    row = synth.otel_row("huge-trace", "swebench", calls=6, turn_bytes=200_000)
    lines = [synth.otlp_request([span]) for span in synth.otlp_spans(row)]
    path = write_jsonl(tmp_path / "t.jsonl", lines)
    results = list(read_sessions([str(path)], max_row_mb=1))
    assert [r.reason for r in results if isinstance(r, Rejection)] == ["row_too_large"]
    assert all(isinstance(r, Session) for r in read_sessions([str(path)], max_row_mb=64))


def test_the_duplicate_check_is_exact_at_eight_bytes_an_id() -> None:
    from judge_engine.sessions import IdSet

    ids = IdSet()
    assert all(ids.add(f"session-{n}") for n in range(200_000))
    assert not any(ids.add(f"session-{n}") for n in range(0, 200_000, 997))
    assert len(ids) == 200_000
    counts = Counter(ids.add(f"session-{n}") for n in range(200_000, 200_100))
    assert counts[True] == 100
