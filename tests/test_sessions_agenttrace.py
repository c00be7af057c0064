"""AgentTrace rows (raw JSONL and the hub's JSON-string columns) -> Session."""

from __future__ import annotations

from typing import Any

import orjson

from judge_engine.sessions import Rejection, Session, parse_row
from judge_engine.sessions.sources import RawRow
from judge_engine.testing import synth

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
    # Spans are paired with calls by tool name and input, not by list order.
    first, second = session.messages[2], session.messages[3]
    assert first.tool_call_id == step.tool_calls[0].id
    assert first.content == "exit_code: 0\n[exit code 0]"  # exit code 0 is shown too
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
    assert "(no call proposed this execution; input: kwargs=" in orphans[0].content


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


def _span(span_id: str, start: int, name: str, tool_input: str, output: str, code: int = 0) -> dict:
    return {
        "span_id": span_id,
        "type": "TOOL",
        "tool_name": name,
        "tool_input": tool_input,
        "tool_output": output,
        "start_ns": start,
        "exit_code": code,
    }


def test_results_pair_with_calls_by_tool_name_and_input_not_position() -> None:
    # The executions ran in another order than the step lists its calls, a retry
    # ran twice, and one span has no call at all.
    row = {
        "trace_id": "nl2bash-7",
        "prompt": "Count the lines of every .py file.",
        "model": "Qwen/Qwen3-8B",
        "llm_steps": [
            {
                "tool_calls": [
                    {"name": "bash", "arguments": {"command": "find . -name '*.py'"}},
                    {"name": "bash", "arguments": {"command": "wc -l a.py\nwc -l b.py"}},
                    {"name": "python", "arguments": {"code": "print(1)"}},
                ]
            },
            {"model_output": "a.py has 3 lines, b.py 4.", "tool_calls": []},
        ],
        "spans": [
            _span(
                "x1", 10, "bash", "kwargs={'command': 'wc -l a.py\\nwc -l b.py'}", "3 a.py\n4 b.py"
            ),
            _span(
                "x2", 20, "bash", "kwargs={'command': \"find . -name '*.py'\"}", "./a.py\n./b.py"
            ),
            _span("x3", 30, "bash", "kwargs={'command': 'rm -rf /tmp/cache'}", "", 1),
            _span("x4", 40, "python", '{"code": "print(1)"}', "1"),
        ],
    }
    session = _parse(row)
    assert isinstance(session, Session)
    step = session.messages[1]
    results = {m.tool_call_id: m.content for m in session.messages if m.role == "tool"}
    find, wc, python = (call.id for call in step.tool_calls)
    assert results[find] == "./a.py\n./b.py\n[exit code 0]"
    assert results[wc] == "3 a.py\n4 b.py\n[exit code 0]"
    assert results[python] == "1\n[exit code 0]"
    unproposed = [m for m in session.messages if m.role == "tool" and m.tool_call_id is None]
    assert len(unproposed) == 1
    assert unproposed[0].content.startswith("(no call proposed this execution; input: kwargs=")
    assert "rm -rf /tmp/cache" in unproposed[0].content and "[exit code 1]" in unproposed[0].content
    assert unproposed[0].is_error
    # It follows the result it came after in time (x2's), before the python result.
    order = [m.tool_call_id for m in session.messages if m.role == "tool"]
    assert order == [find, None, wc, python] or order.index(None) == order.index(find) + 1


def test_a_call_no_span_ran_gets_no_result_rather_than_a_wrong_one() -> None:
    row = {
        "trace_id": "mbpp-9",
        "prompt": "Write f.",
        "llm_steps": [
            {"tool_calls": [{"name": "python", "arguments": {"code": "assert f(1) == 2"}}]},
            {"tool_calls": [{"name": "python", "arguments": {"code": "print(f(3))"}}]},
        ],
        "spans": [_span("y1", 5, "python", "kwargs={'code': 'print(f(3))'}", "6")],
    }
    session = _parse(row)
    assert isinstance(session, Session)
    first_call = session.messages[1].tool_calls[0].id
    second_call = session.messages[2].tool_calls[0].id
    results = {m.tool_call_id: m.content for m in session.messages if m.role == "tool"}
    assert first_call not in results
    assert results[second_call] == "6\n[exit code 0]"
