"""The first hour on real traces: what a new user sees is true and helpful. Misspelt
options and ids get suggestions, sessions can be listed, exports keep their column
types, and the numbers a run prints add up."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from judge_engine.cli import main
from judge_engine.testing import synth

from .conftest import write_jsonl

KEY = "sk-first-hour-" + "f" * 24
SAMPLES = Path(__file__).resolve().parent.parent / "judge_engine" / "samples"


def _source(tmp_path: Path, count: int = 4, **kwargs: object) -> str:
    rows = [synth.otel_row(f"s{i}", "swebench", seed=i, **kwargs) for i in range(count)]  # type: ignore[arg-type]
    return str(write_jsonl(tmp_path / "sessions.jsonl", rows))


@pytest.mark.parametrize(
    ("argv", "suggested"),
    [
        (["grade", "x.jsonl", "--judg", "gpt-4.1"], "--judge"),
        (["report", "out", "--majorty"], "--majority"),
        (["preview", "x.jsonl", "--max-prompt-token", "9000"], "--max-prompt-tokens"),
    ],
)
def test_a_misspelt_option_gets_did_you_mean(
    argv: list[str], suggested: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"did you mean {suggested}" in err and f"judge-engine {argv[0]} --help" in err
    assert err.count("\n") == 1


def test_an_unknown_session_id_suggests_the_closest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _source(tmp_path)
    assert main(["show", source, "--session", "s_1"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 's1'" in err
    assert main(["show", source, "--session", "nothing-alike-at-all"]) == 2
    assert "--list" in capsys.readouterr().err


def test_sessions_lists_one_line_per_session(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _source(tmp_path, 3, models=("openai/azure/gpt-5.4", "gpt-4.1-mini"))
    assert main(["sessions", source, "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[:5] for line in lines] == [
        [f"s{i}", "otel", "swebench", "tool_calling", "gpt-5.4"] for i in range(3)
    ]
    assert main(["sessions", source, "--list", "--json"]) == 0
    rows = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0]["agent_model"] == "gpt-5.4" and rows[0]["bytes"] > 0
    assert rows[0]["other_models"] == ["gpt-4.1-mini"]


def test_parquet_exports_keep_text_columns_as_text_when_empty(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from judge_engine.sinks import export

    from .conftest import make_record

    out = tmp_path / "out"
    out.mkdir()
    records = [make_record(f"s{i}", "gpt-4.1") for i in range(3)]
    (out / "journal.jsonl").write_bytes(b"".join(r.to_json() for r in records))
    path, rows = export(out, "parquet")
    schema = pq.read_schema(path)
    assert rows == 3
    assert str(schema.field("gpt_4_1__error").type) == "string"  # every value empty
    assert str(schema.field("task_success").type) == "int8"
    assert str(schema.field("agent_model").type) == "string"


def test_graded_sessions_group_by_their_main_model_in_reports_and_exports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import anyio

    from judge_engine.testing.sim import SimConfig, Simulator

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    rows = [
        synth.otel_row("a", "swebench", models=("openai/azure/gpt-5.4",)),
        synth.otel_row("b", "swebench", models=("azure/gpt-5.4",)),
        synth.otel_row("c", "swebench", models=("gpt-5.4", "default")),
    ]
    source = str(write_jsonl(tmp_path / "s.jsonl", rows))
    out = tmp_path / "out"

    async def run() -> int:
        async with Simulator(SimConfig()) as sim:
            argv = ["grade", source, "--judge", "gpt-4.1", "--base-url", sim.url, "--out",
                    str(out), "--quiet"]  # fmt: skip
            return await anyio.to_thread.run_sync(main, argv)

    assert anyio.run(run) == 0
    capsys.readouterr()
    assert main(["report", str(out), "--format", "csv"]) == 0
    text = capsys.readouterr().out
    configs = [line for line in text.splitlines() if line.startswith("configuration,")]
    assert len(configs) == 1 and ",gpt-5.4," in configs[0]
    assert main(["export", str(out), "--to", "jsonl", "--file", "-"]) == 0
    exported = [orjson.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    assert {row["agent_model"] for row in exported} == {"gpt-5.4"}
    assert os.path.exists(out / "scores.jsonl")


@pytest.mark.parametrize("packing", ["gz", "bz2", "xz"])
def test_compressed_sources_are_read_streaming(tmp_path: Path, packing: str) -> None:
    import bz2
    import gzip
    import lzma

    from judge_engine.sessions import Rejection, Session, expand, read_sessions

    opener = {"gz": gzip.open, "bz2": bz2.open, "xz": lzma.open}[packing]
    rows = [synth.otel_row(f"s{i}", "swebench", seed=i) for i in range(3)]
    path = tmp_path / f"traces.jsonl.{packing}"
    with opener(path, "wb") as handle:
        handle.write(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    whole = tmp_path / f"one.json.{packing}"
    with opener(whole, "wb") as handle:
        handle.write(orjson.dumps(rows[:2]))  # one JSON array
    assert expand([str(tmp_path)]) == sorted([str(path), str(whole)])
    items = list(read_sessions([str(path)]))
    assert [i.session_id for i in items if isinstance(i, Session)] == ["s0", "s1", "s2"]
    items = list(read_sessions([str(whole)]))
    assert len([i for i in items if isinstance(i, Session)]) == 2
    # A file cut short: the rows before the cut, then one rejection for the rest.
    data = path.read_bytes()
    broken = tmp_path / f"broken.jsonl.{packing}"
    broken.write_bytes(data[: len(data) * 2 // 3])
    items = list(read_sessions([str(broken)]))
    assert isinstance(items[-1], Rejection) and items[-1].reason == "invalid_compression"
    assert not any(isinstance(i, Rejection) and i.reason == "invalid_utf8" for i in items)


def test_the_progress_total_is_sessions_and_a_finished_run_ends_at_100(
    tmp_path: Path,
) -> None:
    import io

    from judge_engine.progress import Progress, figures
    from judge_engine.sessions import count_rows

    # Raw OTLP: lines are not sessions, so no false total.
    otlp = tmp_path / "x.traces.jsonl"
    otlp.write_text('{"resourceSpans": []}\n' * 50)
    assert count_rows(str(otlp)) is None
    rows = tmp_path / "rows.jsonl"
    rows.write_text("{}\n" * 7)
    assert count_rows(str(rows)) == 7
    # An 80-column terminal keeps failures, 429s and cost.
    status = {"verdicts": 1234, "in_flight": 64, "retries": 17, "429s": 3, "failed": 2,
              "tokens": 12_345_678, "cost": "$12.3456"}  # fmt: skip
    stream = io.StringIO()
    bar = Progress(1000, quiet=False, ncols=80, file=stream)
    bar.advance(500, status)
    bar.refresh(status)
    line = stream.getvalue().rsplit("\r", 1)[-1]
    assert len(line) <= 80
    for shown in ("500/1000", "2 failed", "3 429s", "$12.3456"):
        assert shown in line, line
    assert figures(status).startswith("2 failed, 3 429s, $12.3456")
    # Estimated too high (rows rejected, OTLP grouping): a run that read everything ends at 100%.
    bar.advance(300, status)
    bar.complete()
    bar.close(status)
    assert "100% 800/800" in stream.getvalue()


async def test_the_demo_bar_ends_at_100_percent(tmp_path: Path) -> None:
    import anyio

    from judge_engine.testing.sim import SimConfig, Simulator

    from .conftest import grade_argv

    out = tmp_path / "out"
    async with Simulator(SimConfig()) as sim:
        done = await anyio.run_process(
            grade_argv(str(SAMPLES), sim.url, out),
            env={**os.environ, "OPENAI_API_KEY": KEY, "COLUMNS": "80"},
            check=False,
        )
    err = done.stderr.decode()
    assert done.returncode == 0, err
    final = err.split("\r")[-1].splitlines()[0] if "\r" in err else err.splitlines()[0]
    assert final.startswith("100% "), err[-500:]


def test_a_stopped_run_names_no_unread_source_as_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import anyio

    from .servers import ScriptedServer

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    folder = tmp_path / "traces"
    folder.mkdir()
    for part in range(5):
        rows = [synth.otel_row(f"p{part}-{i}", "swebench", seed=i) for i in range(3)]
        write_jsonl(folder / f"part{part}.jsonl", rows)
    (folder / "a-empty.jsonl").write_text("")  # read before the stop: it is empty
    (folder / "zz-empty.jsonl").write_text("")  # never reached: nothing is known of it

    async def run() -> int:
        async with ScriptedServer() as server:
            argv = ["grade", str(folder), "--judge", "gpt-4.1", "--base-url", server.url,
                    "--out", str(tmp_path / "out"), "--quiet", "--concurrency", "1",
                    "--max-cost", "0.004", "--price", "gpt-4.1=2,8"]  # fmt: skip
            return await anyio.to_thread.run_sync(main, argv)

    assert anyio.run(run) == 1
    err = capsys.readouterr().err
    assert "no session in" in err and "a-empty.jsonl" in err
    assert "zz-empty.jsonl" not in err, err
    assert "sources not read yet" in err


def _grade_cli(source: str, url: str, out: Path, *extra: str) -> int:
    argv = ["grade", source, "--judge", "gpt-4.1", "--base-url", url, "--out", str(out),
            "--quiet", *extra]  # fmt: skip
    return main(argv)


def test_summaries_add_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from functools import partial

    import anyio

    from judge_engine.testing.sim import SimConfig, Simulator

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    own = _source(tmp_path, 3, models=("azure/gpt-4.1",))  # the judge made them all

    async def run(*argv: str, source: str = own, out: str = "out") -> int:
        async with Simulator(SimConfig(batch_delay_s=5.0)) as sim:
            return await anyio.to_thread.run_sync(
                lambda: _grade_cli(source, sim.url, tmp_path / out, *argv)
            )

    # Every session skipped by the guard: nothing graded, exit 1, and said so.
    assert anyio.run(run) == 1
    out = capsys.readouterr().out
    assert "sessions: 0 graded, 3 skipped by the guard" in out
    assert "no --fallback-judge given" not in out and "add --fallback-judge" in out
    # The fallback named too when it was excluded as well.
    assert anyio.run(partial(run, "--fallback-judge", "gpt-4.1-2025-04-14", out="out2")) == 1
    out = capsys.readouterr().out
    assert "the fallback gpt-4.1-2025-04-14 produced it too" in out
    # --no-wait: submitted, not "not reached".
    (tmp_path / "others").mkdir()
    other = _source(tmp_path / "others", 3)
    assert anyio.run(partial(run, "--batch", "--no-wait", source=other, out="batch")) == 0
    out = capsys.readouterr().out
    assert "3 submitted (in batches at the server), 0 not reached" in out
    # A finished run run again: one line.
    assert anyio.run(partial(run, source=other, out="live")) == 0
    capsys.readouterr()
    assert anyio.run(partial(run, source=other, out="live")) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("nothing to do: the 3 sessions"), lines


def test_a_resumed_or_widened_run_keeps_one_transcript_per_session(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import anyio

    from judge_engine.testing.sim import SimConfig, Simulator

    from .conftest import read_jsonl

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    source = _source(tmp_path, 4)
    out = tmp_path / "out"

    async def run(*extra: str) -> int:
        async with Simulator(SimConfig()) as sim:
            return await anyio.to_thread.run_sync(lambda: _grade_cli(source, sim.url, out, *extra))

    assert anyio.run(run) == 0
    assert anyio.run(run, "--judge", "o3") == 0  # a judge added: the same text
    assert anyio.run(run, "--judge", "o3", "--regrade-changed") == 0
    kept = read_jsonl(out / "transcripts.jsonl")
    assert sorted(line["session_id"] for line in kept) == ["s0", "s1", "s2", "s3"]
    assert all(r["text"] for r in read_jsonl(out / "journal.jsonl"))
    # A changed text (another prompt budget) is kept again: the latest is shown.
    assert anyio.run(run, "--judge", "o3", "--max-prompt-tokens", "3000", "--fresh") == 0
    assert len(read_jsonl(out / "transcripts.jsonl")) == 4  # set aside with the journal
    capsys.readouterr()


def test_a_price_covers_every_spelling_of_a_model() -> None:
    from judge_engine.pricing import PriceTable

    table = PriceTable({"gpt-5.4": (1.0, 10.0)})
    for spelling in ("gpt-5.4", "azure/gpt-5.4", "openai/azure/gpt-5.4", "GPT-5.4"):
        assert table.cost(spelling, 1_000_000, 100_000) == pytest.approx(2.0), spelling
