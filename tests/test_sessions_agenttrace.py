"""AgentTrace rows (raw JSONL and the hub's JSON-string columns) -> Session."""

from __future__ import annotations

from typing import Any

import orjson

from judge_engine import synth
from judge_engine.sessions import Rejection, Session, parse_row
from judge_engine.sessions.sources import RawRow

RAW_ROW: dict[str, Any] = {
    "trace_id": "mbpp-0.6B-0002",
    "timestamp_utc": "2026-03-28T13:31:44Z",
    "prompt": "Write a function to find the shared elements from the given two lists.",
    "model": "Qwen/Qwen3-0.6B",
    "total_duration_ms": 5321.5,
    "spans": [
        {
            "span_id": "s2",
            "type": "TOOL",
            "tool_name": "python_interpreter",
            "tool_input": "kwargs={'code': 'print(similar((1,2),(2,3)))'}",
            "tool_output": "Traceback: NameError: name 'similar' is not defined",
            "start_ns": 300,
            "end_ns": 400,
            "duration_ms": 0.1,
            "exit_code": 1,
            "telemetry": {"user_cpu_s": 0.01, "peak_rss_bytes": 1000},
            "parent_span_id": None,
        },
        {
            "span_id": "s1",
            "type": "TOOL",
            "tool_name": "python_interpreter",
            "tool_input": "kwargs={'code': 'def similar(a, b): ...'}",
            "tool_output": "exit_code: 0",
            "start_ns": 100,
            "end_ns": 200,
            "duration_ms": 0.1,
            "exit_code": 0,
            "telemetry": {},
            "parent_span_id": None,
        },
    ],
    "llm_steps": [
        {
            "step_id": "st1",
            "step_number": 1,
            "model_output": None,
            "reasoning_content": "I will define the function first.",
            "tool_calls": [
                {"name": "python_interpreter", "arguments": {"code": "def similar(a, b): ..."}},
                {
                    "name": "python_interpreter",
                    "arguments": {"code": "print(similar((1,2),(2,3)))"},
                },
            ],
            "duration_ms": 800.0,
            "input_tokens": 250,
            "output_tokens": 40,
        },
        {
            "step_id": "st2",
            "step_number": 2,
            "model_output": "def similar_elements(a, b):\n    return tuple(set(a) & set(b))",
            "reasoning_content": None,
            "tool_calls": [],
            "duration_ms": 700.0,
            "input_tokens": 400,
            "output_tokens": 30,
        },
    ],
    "metadata": {
        "schema_version": "0.3.0",
        "source": "MBPP",
        "task_id": 2,
        "run_id": "run-a",
        "serving": {"engine": "vllm"},
    },
}


def _parse(row: dict[str, Any]) -> Session | Rejection:
    return parse_row(RawRow("agent.jsonl", 3, row))


def test_steps_and_tool_results_interleave_in_order() -> None:
    session = _parse(RAW_ROW)
    assert isinstance(session, Session)
    assert [m.role for m in session.messages] == ["user", "assistant", "tool", "tool", "assistant"]
    step = session.messages[1]
    assert step.reasoning == "I will define the function first."
    assert len(step.tool_calls) == 2  # parallel calls in one step
    # Spans are matched to calls by start time, not by list order.
    first, second = session.messages[2], session.messages[3]
    assert first.tool_call_id == step.tool_calls[0].id and first.content == "exit_code: 0"
    assert second.tool_call_id == step.tool_calls[1].id
    assert second.is_error and "[exit code 1]" in second.content
    assert session.messages[-1].content.startswith("def similar_elements")


def test_identity_benchmark_models_and_metadata() -> None:
    session = _parse(RAW_ROW)
    assert isinstance(session, Session)
    assert session.session_id == "mbpp-0.6B-0002"
    assert session.task.startswith("Write a function")
    assert session.benchmark == "mbpp"  # from the metadata's dataset, lower-cased
    assert session.agent_models == ("Qwen/Qwen3-0.6B",)
    meta = session.metadata
    assert meta["total_duration_ms"] == 5321.5
    assert meta["tool_errors"] == 1
    assert meta["input_tokens"] == 650 and meta["output_tokens"] == 70
    assert meta["task_id"] == 2 and meta["run_id"] == "run-a"
    assert session.source.format == "agenttrace"


def test_hub_form_with_json_string_columns_equals_raw_form() -> None:
    hub = {k: v for k, v in RAW_ROW.items() if k not in ("spans", "llm_steps", "metadata")}
    hub.update(
        spans_json=orjson.dumps(RAW_ROW["spans"]).decode(),
        llm_steps_json=orjson.dumps(RAW_ROW["llm_steps"]).decode(),
        metadata_json=orjson.dumps(RAW_ROW["metadata"]).decode(),
        dataset_name="mbpp",
    )
    raw, parsed = _parse(RAW_ROW), _parse(hub)
    assert isinstance(raw, Session) and isinstance(parsed, Session)
    assert parsed.messages == raw.messages
    assert parsed.benchmark == "mbpp"


def test_spans_beyond_the_calls_stay_visible() -> None:
    row = dict(RAW_ROW, llm_steps=[dict(RAW_ROW["llm_steps"][1])])
    session = _parse(row)
    assert isinstance(session, Session)
    orphans = [m for m in session.messages if m.role == "tool"]
    assert len(orphans) == 2 and all(m.tool_call_id is None for m in orphans)
    assert "(input: kwargs=" in orphans[0].content


def test_broken_json_column_and_empty_rows_are_rejected() -> None:
    hub = {"trace_id": "t", "llm_steps_json": "[{", "spans_json": "[]", "prompt": "x"}
    broken = _parse(hub)
    assert isinstance(broken, Rejection) and broken.reason == "malformed_row"
    assert broken.session_id == "t"
    empty = _parse({"trace_id": "t2", "llm_steps": [], "spans": [], "prompt": "x"})
    assert isinstance(empty, Rejection) and empty.reason == "no_conversation"


def test_synthetic_rows_in_both_forms() -> None:
    for hub_form in (False, True):
        session = _parse(synth.agenttrace_row("t", "nl2bash", success=False, hub_form=hub_form))
        assert isinstance(session, Session)
        assert session.benchmark == "nl2bash"
        assert any(m.is_error for m in session.messages)
