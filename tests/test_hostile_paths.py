"""Paths that must never hang, flood or destroy: files the engine reads besides sources
(a config, rubrics, labels) are regular files under a cap; output paths never resolve
to a results folder's state or a run's source (through symbolic links too); state files
are never written through a link; whole files are written atomically; `journal verify`
beside a running grade tells the truth."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import anyio
import pytest

from judge_engine.cli import main
from judge_engine.files import UnsafePath, read_small, write_atomic
from judge_engine.testing import synth
from judge_engine.testing.sim import SimConfig, Simulator

from .conftest import grade_argv, read_jsonl, write_jsonl

KEY = "sk-paths-" + "p" * 24


def _source(tmp_path: Path, count: int = 4) -> str:
    rows = [synth.otel_row(f"s{i}", "swebench", seed=i) for i in range(count)]
    return str(write_jsonl(tmp_path / "sessions.jsonl", rows))


def _one_line_exit_2(capsys: pytest.CaptureFixture[str], code: int) -> str:
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("judge-engine: error:"), err
    return err


@pytest.fixture
def graded(tmp_path: Path) -> tuple[Path, str]:
    """A results folder a real grade run wrote, and its source."""
    source = _source(tmp_path)
    out = tmp_path / "run"

    async def run() -> None:
        async with Simulator(SimConfig()) as sim:
            process = await anyio.run_process(
                grade_argv(source, sim.url, out, "--quiet"),
                env={**os.environ, "OPENAI_API_KEY": KEY},
                check=False,
            )
            assert process.returncode == 0, process.stderr.decode()

    anyio.run(run)
    return out, source


# --- files read besides sources ------------------------------------------------------


@pytest.mark.parametrize("kind", ["device", "fifo", "folder", "huge"])
def test_a_config_that_is_no_small_regular_file_is_one_line(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _source(tmp_path)
    path = {
        "device": "/dev/zero",
        "fifo": str(tmp_path / "fifo.toml"),
        "folder": str(tmp_path),
        "huge": str(tmp_path / "huge.toml"),
    }[kind]
    if kind == "fifo":
        os.mkfifo(path)  # nobody writes it: opening must not hang
    if kind == "huge":
        Path(path).write_text("# " + "x" * (2 << 20) + "\n")
    started = time.monotonic()
    code = main(["preview", source, "--judge", "j", "--config", path, "--out", str(tmp_path / "o")])
    err = _one_line_exit_2(capsys, code)
    assert "--config" in err and time.monotonic() - started < 10


def test_rubrics_and_labels_are_read_under_the_same_rules(
    tmp_path: Path, graded: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    out, source = graded
    rubrics = tmp_path / "rubrics"
    rubrics.mkdir()
    os.mkfifo(rubrics / "swebench.toml")
    code = main(["preview", source, "--judge", "j", "--rubrics", str(rubrics), "--out",
                 str(tmp_path / "o")])  # fmt: skip
    assert "not a regular file" in _one_line_exit_2(capsys, code)
    code = main(["agree", str(out), "--labels", "/dev/zero"])
    assert "--labels" in _one_line_exit_2(capsys, code)


# --- outputs that must never destroy state -------------------------------------------


@pytest.mark.parametrize(
    ("command", "flag", "target"),
    [
        ("report", "--html", "journal.jsonl"),
        ("report", "--html", "transcripts.jsonl"),
        ("export", "--file", "run.json"),
        ("export", "--file", "scores.jsonl"),
        ("agree", "--json", ".judge-engine.lock"),
        ("agree", "--json", "summary.json"),
    ],
)
def test_an_output_path_never_overwrites_a_state_file(
    command: str,
    flag: str,
    target: str,
    graded: tuple[Path, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    out, _ = graded
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    code = main([command, str(out), flag, str(out / target)])
    assert "results folder" in _one_line_exit_2(capsys, code)
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert before == after


def test_an_output_path_is_refused_through_a_symlink_and_for_a_source(
    tmp_path: Path, graded: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    out, source = graded
    journal = (out / "journal.jsonl").read_bytes()
    link = tmp_path / "report.html"
    link.symlink_to(out / "journal.jsonl")
    code = main(["report", str(out), "--html", str(link)])
    _one_line_exit_2(capsys, code)
    assert (out / "journal.jsonl").read_bytes() == journal
    # Another results folder's state, named outright.
    other = tmp_path / "other"
    other.mkdir()
    (other / "journal.jsonl").write_bytes(b"")
    code = main(["export", str(out), "--to", "jsonl", "--file", str(other / "journal.jsonl")])
    _one_line_exit_2(capsys, code)
    # The run's own source.
    rows = Path(source).read_bytes()
    code = main(["export", str(out), "--to", "jsonl", "--file", source])
    assert "source" in _one_line_exit_2(capsys, code)
    assert Path(source).read_bytes() == rows
    # A run resumed after all that pays for nothing.
    assert read_jsonl(out / "journal.jsonl")


def test_a_symlinked_state_file_is_refused_never_written_through(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    source = _source(tmp_path)
    out = tmp_path / "run"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (out / "scores.jsonl").symlink_to(victim)
    code = main(["grade", source, "--judge", "j", "--base-url", "http://127.0.0.1:9/v1",
                 "--out", str(out), "--quiet"])  # fmt: skip
    err = _one_line_exit_2(capsys, code)
    assert "symbolic link" in err
    assert victim.read_text() == "precious"


def test_whole_files_are_written_atomically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "summary.json"
    write_atomic(path, b'{"old": 1}')

    def full(_: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space"):
        write_atomic(path, b'{"new": 2}')
    assert path.read_bytes() == b'{"old": 1}'
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temporary left
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(UnsafePath):
        write_atomic(link, b"{}")


def test_read_small_refuses_what_is_not_a_small_regular_file(tmp_path: Path) -> None:
    with pytest.raises(UnsafePath, match="device"):
        read_small("/dev/zero", "--config")
    big = tmp_path / "big"
    big.write_bytes(b"x" * 100)
    with pytest.raises(UnsafePath, match="more than"):
        read_small(big, "--config", cap=10)
    assert read_small(big, "--config") == b"x" * 100


# --- journal verify beside a running grade ------------------------------------------


def _started(out: Path) -> bool:
    journal = out / "journal.jsonl"
    return journal.exists() and journal.stat().st_size > 0


async def test_journal_verify_while_a_grade_writes_says_so_and_finds_no_false_problem(
    tmp_path: Path,
) -> None:
    rows = [synth.otel_row(f"s{i}", "swebench", seed=i) for i in range(60)]
    source = str(write_jsonl(tmp_path / "sessions.jsonl", rows))
    out = tmp_path / "run"
    async with Simulator(SimConfig(latency_ms=150, jitter=0.0)) as sim:
        process = await anyio.open_process(
            grade_argv(source, sim.url, out, "--quiet", "--concurrency", "2"),
            env={**os.environ, "OPENAI_API_KEY": KEY},
        )
        with anyio.fail_after(30):
            while not _started(out):  # noqa: ASYNC110 - another process's file
                await anyio.sleep(0.05)
        live = await anyio.run_process(
            [sys.executable, "-m", "judge_engine", "journal", "verify", str(out)], check=False
        )
        waited = await anyio.run_process(
            [sys.executable, "-m", "judge_engine", "journal", "verify", str(out), "--wait"],
            check=False,
        )
        await process.wait()
    text = live.stdout.decode()
    assert live.returncode == 0, text
    assert "a run is in progress" in text and "journal verified: OK" in text
    assert waited.returncode == 0 and "score rows not checked" not in waited.stdout.decode()
    assert process.returncode == 0
    final = await anyio.run_process(
        [sys.executable, "-m", "judge_engine", "journal", "verify", str(out)], check=False
    )
    assert final.returncode == 0
