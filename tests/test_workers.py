"""Reading and rendering in worker processes (`--workers`): the same sessions, in the
same order, with the same verdicts as one process; a dead worker fails only the rows
it held; no worker outlives its run; Ctrl-C and kill -9 stay as they were."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from judge_engine import workers
from judge_engine.config import Config
from judge_engine.engine import grade
from judge_engine.plan import Prepared
from judge_engine.redact import Secrets
from judge_engine.rubrics import RubricSet
from judge_engine.sessions import ReadOptions, Rejection, Session, read_sessions
from judge_engine.testing import synth
from judge_engine.testing.sim import SimConfig, Simulator

from .conftest import grade_argv, read_jsonl, write_jsonl

KEY = "sk-workers-" + "w4" * 16
SAMPLES = Path(__file__).parents[1] / "judge_engine" / "samples"


def _rows(count: int, prefix: str = "s", turn_bytes: int = 300) -> list[dict[str, Any]]:
    return [
        synth.otel_row(f"{prefix}{i:05d}", "tau2_retail", seed=i, turn_bytes=turn_bytes)
        for i in range(count)
    ]


@pytest.fixture
def early_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pool from the second batch on (a run starts it after 4 MB otherwise)."""
    monkeypatch.setattr(workers, "POOL_AFTER_ROWS", 20)
    monkeypatch.setattr(workers, "BATCH_ROWS", 4)


def _sources(tmp_path: Path) -> list[str]:
    """Every kind of row, over three files: sessions, repeated ids, broken lines, rows
    of no known format, raw OTLP spans grouped across lines, and a row too large."""
    first = _rows(40)
    broken = [b"{not json", orjson.dumps({"neither": "format"}), orjson.dumps([1, 2])]
    huge = orjson.dumps({**first[0], "session_id": "huge", "padding": "x" * (1 << 20)})
    a = write_jsonl(tmp_path / "a.jsonl", [*first[:20], *broken, huge, *first[20:]])
    b = write_jsonl(tmp_path / "b.jsonl", [*_rows(30, "t"), first[3], first[7]])
    c = tmp_path / "c.jsonl"
    c.write_bytes((SAMPLES / "otlp-export.jsonl").read_bytes())
    return [str(a), str(b), str(c)]


def _setup(**read: Any) -> workers.Setup:
    config = Config.of(judge=("gpt-4.1", "claude-sonnet-4-5"))
    return workers.Setup(
        ReadOptions(**read),
        config.panel,
        config.request,
        RubricSet.load(),
        Secrets("sk-" + "x" * 30),
    )


def _reader(sources: list[str]) -> workers.PreparedReader:
    return workers.PreparedReader(
        sources, _setup(), workers=2, max_row_mb=1, max_open_mb=64, session_by="auto"
    )


def _shape(item: Any) -> tuple[str, ...]:
    if isinstance(item, Prepared):
        item = item.session
    if isinstance(item, Session):
        return ("session", item.session_id, item.source.source, str(item.source.row))
    if isinstance(item, Rejection):
        return ("rejected", item.source, str(item.row), item.reason)
    return ("other", repr(item))


@pytest.fixture
def mixed(tmp_path: Path, early_pool: None) -> tuple[list[str], list[tuple[str, ...]]]:
    """The sources of every kind of row, and what one process reads of them."""
    sources = _sources(tmp_path)
    return sources, [_shape(item) for item in read_sessions(sources, max_row_mb=1)]


def test_the_pool_reads_what_one_process_reads_in_the_same_order(
    mixed: tuple[list[str], list[tuple[str, ...]]],
) -> None:
    sources, alone = mixed
    reader = _reader(sources)
    try:
        items = list(reader)
    finally:
        reader.close()
    assert [_shape(item) for item in items] == alone
    assert reader.started == 2 and reader.worker_cpu > 0
    reasons = {shape[3] for shape in alone if shape[0] == "rejected"}
    assert {"duplicate_session_id", "invalid_json", "unknown_schema", "row_too_large"} <= reasons
    prepared = [item for item in items if isinstance(item, Prepared)]
    assert len(prepared) == 70  # the OTLP sessions are grouped and read in order, here
    for item in prepared:
        assert item.session.messages == () and item.session.llm_calls > 0
        assert item.request is not None and item.text and item.transcript
        assert item.request.judge_model == "gpt-4.1"


def _kill_workers(reader: workers.PreparedReader, until: threading.Event) -> None:
    """SIGKILL every worker process that shows up until `until` is set."""
    while not until.is_set():
        for pid in reader.worker_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)


def test_a_killed_worker_fails_only_the_rows_it_held_and_never_the_run(
    mixed: tuple[list[str], list[tuple[str, ...]]],
) -> None:
    sources, alone = mixed
    # One worker killed: the rows it held are rejected with the reason (a run reads
    # them again), every other row is read, and a new worker takes its place.
    reader = _reader(sources)
    try:
        items = iter(reader)
        got = [_shape(next(items)) for _ in range(25)]  # the pool is running now
        pool = reader.worker_pids()
        assert len(pool) == 2, "no worker process to kill"
        os.kill(pool[0], signal.SIGKILL)
        got += [_shape(item) for item in items]
    finally:
        reader.close()
    assert len(got) == len(alone)
    for mine, theirs in zip(got, alone, strict=True):
        assert mine == theirs or (mine[0] == "rejected" and mine[3] == "worker_crashed")
    # Every worker killed as soon as it starts, for a while: the rows they held are
    # rejected with the reason, every other row is read, and the run never hangs.
    reader = _reader(sources)
    stop = threading.Event()
    killer = threading.Thread(target=_kill_workers, args=(reader, stop))
    try:
        items = iter(reader)
        killer.start()
        got = []
        for item in items:
            got.append(_shape(item))
            if got[-1][-1] == "worker_crashed":
                break
        stop.set()
        killer.join()
        got += [_shape(item) for item in items]
    finally:
        stop.set()
        reader.close()
    crashed = [shape for shape in got if shape[0] == "rejected" and shape[3] == "worker_crashed"]
    assert crashed, got
    # Each row once, in order: read, or rejected by the crash, or as one process says.
    assert len(got) == len(alone)
    for mine, theirs in zip(got, alone, strict=True):
        assert mine == theirs or (mine[0] == "rejected" and mine[3] == "worker_crashed")


def _records(out: Path) -> list[tuple[Any, ...]]:
    return sorted(
        (r["key"], r["status"], r.get("success"), r.get("text"), r.get("agent_calls"))
        for r in read_jsonl(out / "journal.jsonl")
    )


async def test_grading_with_workers_gives_the_verdicts_and_texts_of_one_process(
    tmp_path: Path,
) -> None:
    # Over 16 MB: the pool starts by itself partway through the run.
    source = str(write_jsonl(tmp_path / "s.jsonl", _rows(300, turn_bytes=20000)))
    assert (await anyio.Path(source).stat()).st_size > workers.POOL_AFTER_BYTES
    results = {}
    async with Simulator(SimConfig()) as simulator:
        for count in (1, 2):
            out = tmp_path / f"out-{count}"
            config = Config.of(
                sources=(source,),
                judge=("gpt-4.1", "claude-sonnet-4-5"),
                base_url=simulator.url,
                out=out,
                quiet=True,
                workers=count,
            )
            result, _ = await grade(config, KEY)
            assert result.status == "done" and result.graded == 300
            results[count] = result
    assert ("workers" in results[2].cpu_s) and ("workers" not in results[1].cpu_s)
    assert results[2].cpu_s["workers"] > 0
    assert _records(tmp_path / "out-1") == _records(tmp_path / "out-2")
    # The kept texts: the same sessions, the same texts but for each request's random
    # enclosure marker (the records' `text` digests, equal above, leave it out).
    kept = [
        sorted(
            (line["session_id"], line["chars"]) for line in read_jsonl(out / "transcripts.jsonl")
        )
        for out in (tmp_path / "out-1", tmp_path / "out-2")
    ]
    assert kept[0] == kept[1] and len(kept[0]) == 300


async def test_a_resume_with_workers_asks_only_what_is_missing(tmp_path: Path) -> None:
    source = str(write_jsonl(tmp_path / "s.jsonl", _rows(400, turn_bytes=20000)))
    out = tmp_path / "out"
    async with Simulator(SimConfig()) as simulator:
        config = Config.of(
            sources=(source,), judge=("gpt-4.1",), base_url=simulator.url, out=out, quiet=True
        )
        first, _ = await grade(config.replace(limit=150, workers=2), KEY)
        assert first.graded == 150
        second, _ = await grade(config.replace(workers=2), KEY)
        assert second.already_done == 150 and second.graded == 250
        assert len(simulator.arrivals) == 400
        third, _ = await grade(config.replace(workers=2), KEY)
        assert third.already_done == 400 and third.requests_sent == 0
        # Known rows are found in the sending process: none is handed to a worker.
        assert third.cpu_s.get("workers", 0.0) == 0.0
    keys = [record["key"] for record in read_jsonl(out / "journal.jsonl")]
    assert len(keys) == len(set(keys)) == 400


def _descendants(pid: int) -> set[int]:
    """Every process below `pid` (Linux: /proc): workers are forked by a server process."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                found |= {int(child), *_descendants(int(child))}
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def _running_with_workers(
    command: list[str], out: Path
) -> tuple[anyio.abc.Process, set[int]]:
    process = await anyio.open_process(
        command,
        env={**os.environ, "OPENAI_API_KEY": KEY},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    journal = anyio.Path(out / "journal.jsonl")
    with anyio.fail_after(60):
        while True:
            assert process.returncode is None, "the run ended before its workers started"
            found = _descendants(process.pid)
            if len(found) >= 4 and await journal.exists() and (await journal.stat()).st_size:
                return process, found
            await anyio.sleep(0.02)


async def test_no_worker_outlives_a_killed_run_and_ctrl_c_stays_quiet(tmp_path: Path) -> None:
    source = str(write_jsonl(tmp_path / "s.jsonl", _rows(3000, turn_bytes=3000)))
    async with Simulator(SimConfig(latency_ms=50)) as simulator:
        out = tmp_path / "killed"
        command = grade_argv(source, simulator.url, out, "--workers", "2", "--concurrency", "4")
        process, pool = await _running_with_workers(command, out)
        process.kill()
        await process.wait()
        with anyio.fail_after(15):
            while any(_alive(pid) for pid in pool):  # noqa: ASYNC110 (other processes)
                await anyio.sleep(0.1)
        # Ctrl-C reaches the whole process group: the run stops as it always has, the
        # workers say nothing, and none is left behind.
        out = tmp_path / "interrupted"
        command = grade_argv(source, simulator.url, out, "--workers", "2", "--concurrency", "4")
        process, pool = await _running_with_workers(command, out)
        os.killpg(process.pid, signal.SIGINT)
        assert process.stdout is not None and process.stderr is not None
        with anyio.fail_after(60):
            await process.wait()
            stdout = b"".join([chunk async for chunk in process.stdout])
            stderr = b"".join([chunk async for chunk in process.stderr])
        assert process.returncode == 130, (stdout, stderr)
        assert b"Traceback" not in stderr and b"KeyboardInterrupt" not in stderr, stderr[-4000:]
        with anyio.fail_after(15):
            while any(_alive(pid) for pid in pool):  # noqa: ASYNC110 (other processes)
                await anyio.sleep(0.1)
        assert b"Resume with" in stdout


def test_workers_is_checked(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "judge_engine", "grade", "x.jsonl", "--workers", "0"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 2 and "--workers" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize("chunk", [5, 64, 4 << 20])
def test_lines_found_as_spans_are_the_lines_read_one_by_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """Spans (found a chunk at a time, never copied) read back as the same rows, blank
    lines skipped and counted, over-limit lines rejected with the same size, whatever
    the chunk boundaries cut."""
    from judge_engine.sessions import SpanFiles, sources

    monkeypatch.setattr(sources, "_SPAN_CHUNK", chunk)
    limit = 300
    row = orjson.dumps({"session_id": "a", "x": "y" * 50})
    lines = [
        row, b"", b"   \t", row.replace(b'"a"', b'"b"') + b"\r", b"{broken",
        b'{"k": "' + b"z" * 400 + b'"}', b'{"k": "' + b"w" * (limit - 9) + b'"}',
        b" " * 500, row.replace(b'"a"', b'"c"'),
    ]  # fmt: skip
    for ending in (b"\n", b""):
        path = tmp_path / "rows.jsonl"
        path.write_bytes(b"\n".join(lines) + ending)
        one_by_one = list(sources.iter_rows(str(path), limit))
        files = SpanFiles()
        spans = [
            sources.decode_line(files.read(item).line, item.source, item.row)
            if isinstance(item, sources.RawSpan)
            else item
            for item in sources.iter_rows(str(path), limit, lazy=True)
        ]
        files.close()
        assert spans == one_by_one
        assert [getattr(item, "reason", "row") for item in spans] == [
            "row", "row", "invalid_json", "row_too_large", "row", "row_too_large", "row",
        ]  # fmt: skip


_IDLE_READER = """
import sys, time
from tests.test_workers import _setup
from judge_engine import workers
workers.POOL_AFTER_ROWS = 1
workers.BATCH_ROWS = 4
reader = workers.PreparedReader(
    [sys.argv[1]], _setup(), workers=2, max_row_mb=8, max_open_mb=64, session_by="auto"
)
items = list(reader)
print(len(items), *reader.worker_pids(), flush=True)
time.sleep(600)
"""


def test_idle_workers_end_with_the_process_that_started_them(tmp_path: Path) -> None:
    """A run killed (kill -9) while its workers wait for work: they see their
    connection end and exit, whoever started them."""
    source = write_jsonl(tmp_path / "s.jsonl", _rows(60))
    process = subprocess.Popen(
        [sys.executable, "-c", _IDLE_READER, str(source)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).parents[1],
    )
    assert process.stdout is not None
    count, *pids = (int(word) for word in process.stdout.readline().split())
    assert count == 60 and len(pids) == 2 and all(_alive(pid) for pid in pids)
    process.kill()
    process.wait()
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in pids):
        assert time.monotonic() < deadline, "a worker outlived its run"
        time.sleep(0.1)


_UNGUARDED = """
import sys
import anyio
from judge_engine import Config, grade

config = Config.of(
    sources=(sys.argv[1],), judge=("gpt-4.1",), base_url=sys.argv[2], out=sys.argv[3],
    quiet=True, workers=2,
)
result, _ = anyio.run(grade, config, "sk-unguarded-" + "u" * 20)
print("STATUS", result.status, result.rejected, result.graded, result.message)
"""


async def test_a_script_without_the_main_guard_runs_as_it_would_in_one_process(
    tmp_path: Path,
) -> None:
    """multiprocessing imports the main module in each new process; the workers never
    do, so a script that starts a run at its top level works (without it, each worker
    ran the script: a run of its own, and the rows it held were lost)."""
    source = write_jsonl(tmp_path / "s.jsonl", _rows(400, turn_bytes=20000))
    script = tmp_path / "grade_it.py"
    await anyio.Path(script).write_text(_UNGUARDED)
    async with Simulator(SimConfig()) as simulator:
        with anyio.fail_after(120):
            done = await anyio.run_process(
                [sys.executable, str(script), str(source), simulator.url, str(tmp_path / "o")],
                check=False,
            )
    lines = [line for line in done.stdout.decode().splitlines() if line.startswith("STATUS")]
    assert [line.strip() for line in lines] == ["STATUS done 0 400"], done.stderr.decode()[-2000:]


def test_workers_never_import_the_http_client() -> None:
    """The fork server imports the worker module before the pool can start: reading and
    rendering need no HTTP client, and importing aiohttp there cost 0.4 s a run."""
    code = "import sys, judge_engine.workers; print('aiohttp' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "False"
