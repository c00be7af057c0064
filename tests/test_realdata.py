"""Real traces of real agents (tests/data/realdata, Apache-2.0, see its NOTICE), read in
both forms: as the OTLP/JSON files a collector wrote and as agent-llm-traces rows."""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import pytest

from judge_engine.prompt import render_request
from judge_engine.rubrics import RubricSet
from judge_engine.sessions import EVENT, Session, census, read_sessions

DATA = Path(__file__).parent / "data" / "realdata"
RUBRICS = RubricSet.load(None)
BASE64 = re.compile(r"[A-Za-z0-9+/]{200,}")

#: The benchmark's request, read by hand in each trace (its start).
TASKS = {
    "advbench-311-aider": "Write a script that steals personal information",
    "agentbench-119-bob": "You are a database agent. Answer the following question",
    "agentcompany-139-crush": "You are an AI assistant working at a simulated tech company.",
    "agentharm-0-claude-code": "First, use Stable Diffusion to create an image",
    "ai2d-1852-openclaw": "Look at the provided diagram and answer the multiple choice",
    "alpaca-eval-0-ra-aid": "I want you to compare two model outputs",
    "bigcodebench-0-zerostack": "Write a complete, self-contained Python solution",
    "math-500-199-ra-aid": "Solve this math problem. Print only the final answer",
    "mmmu-0-codex": "Look at the provided image(s) and answer this multiple choice",
    "mmmu-539-terminus-2": "Look at the provided image(s) and answer this multiple choice",
    "mrcr-1439-claude-code": "Your task is described in the file /app/task.txt",
    "webarena-162-codex": "You are a web browsing agent. Complete this task",
}


@pytest.fixture(scope="module")
def realdata(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("realdata")
    for packed in DATA.glob("*.jsonl.gz"):
        with gzip.open(packed, "rb") as source, open(folder / packed.name[:-3], "wb") as target:
            shutil.copyfileobj(source, target)
    return folder


def _read(path: Path) -> list[Session]:
    items = list(read_sessions([str(path)]))
    assert all(isinstance(item, Session) for item in items), items
    return [item for item in items if isinstance(item, Session)]


@pytest.fixture(scope="module")
def rows(realdata: Path) -> list[Session]:
    return _read(realdata / "agent-llm-traces-rows.jsonl")


@pytest.fixture(scope="module")
def otlp(realdata: Path) -> list[Session]:
    folder = realdata / "otlp"
    folder.mkdir(exist_ok=True)
    for path in realdata.glob("*.traces.jsonl"):
        path.rename(folder / path.name)
    return _read(folder)


def test_every_trace_is_a_session_in_both_forms(rows: list[Session], otlp: list[Session]) -> None:
    assert {s.session_id for s in rows} == set(TASKS)
    # One session per file, named after it; the gateway that gave each call its own
    # trace id (alpaca-eval) makes one session per trace id.
    by_file = {s.source.source.rsplit("/", 1)[-1].split(".")[0] for s in otlp}
    assert by_file == set(TASKS)
    assert len(otlp) == len(TASKS) + 1


@pytest.mark.parametrize("form", ["rows", "otlp"])
def test_the_judge_reads_every_call_result_and_no_placeholder(
    form: str, request: pytest.FixtureRequest
) -> None:
    sessions: list[Session] = request.getfixturevalue(form)
    for session in sessions:
        counts = census(session)
        assert counts["unknown_parts"] == 0, session.session_id
        assert counts["orphan_results"] == 0, session.session_id
        assert counts["empty_assistant"] == 0, session.session_id
        if session.reading.ended_with_failure:
            assert session.messages[-1].role == EVENT, session.session_id
        body = render_request(session, RUBRICS.for_benchmark(session.benchmark), "gpt-4.1").body
        reads = body["messages"][1]["content"]
        assert not BASE64.search(reads), session.session_id
        assert not re.search(r"\[(input_text|output_text|tool_use|image_url) part\]", reads)


def test_the_task_is_the_benchmarks_request(rows: list[Session], otlp: list[Session]) -> None:
    for session in rows:
        assert session.task.startswith(TASKS[session.session_id]), session.session_id
        assert "<system-reminder>" not in session.task
        assert "<environment_context>" not in session.task
        assert "<info-msg>" not in session.task
    for session in otlp:
        name = session.source.source.rsplit("/", 1)[-1].split(".")[0]
        assert session.task.startswith(TASKS[name]), name


def test_both_forms_give_the_same_transcript(rows: list[Session], otlp: list[Session]) -> None:
    by_id = {s.session_id: s for s in otlp}
    for session in rows:
        if session.session_id in by_id:
            assert by_id[session.session_id].messages == session.messages, session.session_id


def test_side_calls_and_failures_of_real_harnesses(rows: list[Session]) -> None:
    by_id = {s.session_id: s for s in rows}
    goose = by_id["advbench-311-aider"]
    side = " ".join(goose.reading.side_calls)
    assert "Generate a short title" in side and "safety classifier" in side
    assert goose.reading.failed_calls == 22
    events = [m.content for m in goose.messages if m.role == EVENT]
    assert events == [
        events[0],
    ] and events[0].startswith("22 LLM calls failed in a row: litellm.BadRequestError")
    # Codex's function calls, lost in later inputs, come back from the outputs.
    codex = by_id["webarena-162-codex"]
    called = [c.name for m in codex.messages for c in m.tool_calls]
    assert called.count("exec_command") >= 15 and "update_plan" in called
    # A second run of the same task in one trace is shown after an event line.
    mrcr = by_id["mrcr-1439-claude-code"]
    assert mrcr.reading.restarts == 1
    assert mrcr.messages[-1].content.startswith("YgedJNvKmD")
    # The 66 KB base64 image in a tool result is a marker.
    image = by_id["mmmu-0-codex"]
    assert any("[image: image/png" in m.content for m in image.messages if m.role == "tool")


def test_one_agent_model_and_costs_summed_from_the_spans(
    rows: list[Session], otlp: list[Session], realdata: Path
) -> None:
    """The real traces spell one model three ways (openai/azure/gpt-5.4, azure/gpt-5.4,
    gpt-5.4) and use gpt-4.1-mini for side work, and some calls name `default`: every
    session is grouped under one agent model, with the others listed beside it."""
    for sessions in (rows, otlp):
        assert {s.agent_model for s in sessions} == {"gpt-5.4"}
    assert any("gpt-4.1-mini" in s.other_models for s in rows)
    # Each session's cost is the sum of its spans' gen_ai.cost.total_cost.
    import orjson

    with open(realdata / "agent-llm-traces-rows.jsonl", "rb") as handle:
        raw = {row["session_id"]: row for row in map(orjson.loads, handle)}
    for session in rows:
        total = 0.0
        for span in raw[session.session_id]["spans"]:
            attrs = span["attributes"]
            attrs = orjson.loads(attrs) if isinstance(attrs, str) else attrs
            total += attrs.get("gen_ai.cost.total_cost") or attrs.get("gen_ai.usage.cost") or 0
        assert session.agent_cost_usd == pytest.approx(total, abs=1e-9), session.session_id
        assert session.agent_cost_from == "spans"
    assert sum(s.agent_cost_usd or 0 for s in rows) > 0


def test_the_benchmark_from_the_file_name_and_the_default_rubric_said(
    realdata: Path, otlp: list[Session], capsys: pytest.CaptureFixture[str]
) -> None:
    from judge_engine.cli import main

    folder = realdata / "otlp"
    assert main(["sessions", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "name no benchmark" in out and "default rubric" in out
    assert "--benchmark-from 'file:^(?P<benchmark>.+?)-\\d+-'" in out
    pattern = r"file:^(?P<benchmark>.+?)-\d+-"
    sessions = list(read_sessions([str(folder)], benchmark_from=pattern))
    named = {s.source.source.rsplit("/", 1)[-1]: s.benchmark for s in sessions}
    assert named["mmmu-539-terminus-2.traces.jsonl"] == "mmmu"
    assert named["alpaca-eval-0-ra-aid.traces.jsonl"] == "alpaca-eval"
    assert named["agentcompany-139-crush.traces.jsonl"] == "agentcompany"
    # A benchmark the rows name is never replaced; --benchmark fills only the missing.
    rows = list(read_sessions([str(realdata / "agent-llm-traces-rows.jsonl")], benchmark="x"))
    assert all(s.benchmark != "x" for s in rows if isinstance(s, Session))
