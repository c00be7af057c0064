"""OTel GenAI spans (Exgentic agent-llm-traces) -> Session."""

from __future__ import annotations

from typing import Any

import orjson

from judge_engine.sessions import Rejection, Session, parse_row
from judge_engine.sessions.sources import RawRow
from judge_engine.testing import synth


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _parse(row: dict[str, Any]) -> Session | Rejection:
    return parse_row(RawRow("traces.parquet", 7, row))


def _span(start: str, inputs: Any, outputs: Any, model: str = "Az/gpt-4.1", **attrs: Any) -> dict:
    return {
        "name": f"chat {model}",
        "span_id": start,
        "start_time": start,
        "end_time": start.replace("Z", ".5Z"),
        "status": {"code": 1},
        "attributes": {
            "gen_ai.request.model": model,
            "gen_ai.input.messages": inputs,
            "gen_ai.output.messages": outputs,
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 10,
            **attrs,
        },
    }


SYSTEM = {"role": "system", "parts": [{"type": "text", "content": "You are an airline agent."}]}
USER = {"role": "user", "parts": [{"type": "text", "content": "Cancel reservation 4WQ150."}]}
CALL = {
    "role": "assistant",
    "parts": [
        {"type": "thinking", "thinking": "I should look it up first."},
        {"type": "text", "content": "Let me check both records."},
        {"type": "tool_call", "id": "c1", "name": "get_reservation", "arguments": {"id": "4WQ150"}},
        {"type": "tool_call", "id": "c2", "name": "get_user", "arguments": '{"id": "mia"}'},
    ],
}
RESULTS = {
    "role": "user",
    "parts": [
        {
            "type": "tool_call_response",
            "id": "c1",
            "result": [{"type": "text", "text": "basic economy"}],
        },
        {"type": "tool_result", "id": "c2", "content": "Error: user not found"},
        {"type": "text", "content": "(reminder: follow the policy)"},
    ],
}
FINAL = [{"role": "assistant", "parts": [{"type": "text", "content": "It is cancelled."}]}]


def _row(span_list: list[dict] | str, **extra: Any) -> dict[str, Any]:
    row = {
        "session_id": "sess-1",
        "spans": span_list,
        "benchmark": "tau2_airline",
        "harness": "tool_calling",
        "models": ["Az/gpt-4.1"],
        "total_tokens": 330,
        "error": "[0 tool error(s) detected. See spans for details.]",
        "collected_at": "2026-01-15T10:00:00Z",
    }
    row.update(extra)
    return row


def test_transcript_is_last_call_input_plus_output_in_start_order() -> None:
    first = _span("2026-01-01T00:00:00Z", _json([SYSTEM, USER]), _json([CALL]))
    last = _span("2026-01-01T00:00:20Z", _json([SYSTEM, USER, CALL, RESULTS]), _json(FINAL))
    # Spans arrive out of order: the later call is listed first.
    session = _parse(_row([last, first]))
    assert isinstance(session, Session)
    assert [m.role for m in session.messages] == [
        "system",
        "user",
        "assistant",
        "tool",
        "tool",
        "user",
        "assistant",
    ]
    assert session.task == "Cancel reservation 4WQ150."
    assert session.messages[-1].content == "It is cancelled."
    # The first call's input is not concatenated into the transcript.
    assert sum(1 for m in session.messages if m.content == "Cancel reservation 4WQ150.") == 1


def test_parts_become_openai_shape() -> None:
    last = _span("2026-01-01T00:00:20Z", _json([SYSTEM, USER, CALL, RESULTS]), _json(FINAL))
    session = _parse(_row([last]))
    assert isinstance(session, Session)
    call = session.messages[2]
    assert call.reasoning == "I should look it up first."
    assert call.content == "Let me check both records."
    assert [(c.id, c.name) for c in call.tool_calls] == [
        ("c1", "get_reservation"),
        ("c2", "get_user"),
    ]
    assert orjson.loads(call.tool_calls[0].arguments) == {"id": "4WQ150"}
    assert call.tool_calls[1].arguments == '{"id": "mia"}'  # JSON strings kept verbatim
    first_result, second_result, reminder = session.messages[3:6]
    assert (first_result.role, first_result.tool_call_id, first_result.content) == (
        "tool",
        "c1",
        "basic economy",
    )
    assert (second_result.tool_call_id, second_result.content) == ("c2", "Error: user not found")
    assert (reminder.role, reminder.content) == ("user", "(reminder: follow the policy)")
    openai = call.to_openai()
    assert openai["tool_calls"][0] == {
        "id": "c1",
        "type": "function",
        "function": {"name": "get_reservation", "arguments": '{"id":"4WQ150"}'},
    }


def test_already_parsed_message_lists_are_accepted() -> None:
    last = _span("2026-01-01T00:00:20Z", [SYSTEM, USER, CALL, RESULTS], FINAL)
    session = _parse(_row([last]))
    assert isinstance(session, Session)
    assert len(session.messages) == 7


def test_models_tokens_durations_and_error_column_are_metadata() -> None:
    first = _span("2026-01-01T00:00:00Z", _json([SYSTEM, USER]), _json([CALL]), model="o/Kimi-K2.5")
    last = _span("2026-01-01T00:00:20Z", _json([SYSTEM, USER, CALL, RESULTS]), _json(FINAL))
    row = _row([first, last], error="[2 tool error(s) detected. See spans for details.]")
    session = _parse(row)
    assert isinstance(session, Session)
    # The agent's models in the order its calls use them.
    assert session.agent_models == ("o/Kimi-K2.5", "Az/gpt-4.1")
    assert session.benchmark == "tau2_airline"
    assert session.harness == "tool_calling"
    meta = session.metadata
    assert meta["input_tokens"] == 200 and meta["output_tokens"] == 20
    assert meta["llm_calls"] == 2
    assert meta["duration_s"] == 20.5
    # The error column is a diagnostic kept as metadata, never read as failure.
    assert meta["error"].startswith("[2 tool error(s)")
    assert meta["total_tokens"] == 330
    assert session.source.format == "otel" and session.source.row == 7


def test_malformed_message_json_survives_as_raw_text() -> None:
    first = _span("2026-01-01T00:00:00Z", _json([SYSTEM, USER]), _json([CALL]))
    broken = _json([SYSTEM, USER, CALL])[:-9] + '{"rol'
    last = _span("2026-01-01T00:00:20Z", broken, _json(FINAL))
    session = _parse(_row([first, last]))
    assert isinstance(session, Session)
    assert session.messages[0].content == broken  # kept whole, as text
    assert session.metadata["malformed_messages"] == 1
    # The task still comes from the first call, which parses.
    assert session.task == "Cancel reservation 4WQ150."
    assert session.messages[-1].content == "It is cancelled."


def test_side_calls_with_another_opening_do_not_become_the_transcript() -> None:
    row = synth.otel_row("s1", "tau2_retail", calls=4, side_call=True)
    session = _parse(row)
    assert isinstance(session, Session)
    assert session.metadata["side_calls"] == 1
    assert "exchange" in session.messages[-1].content


def test_compacted_context_still_counts_as_the_main_conversation() -> None:
    long_input = _json([SYSTEM, USER, CALL, RESULTS, *([RESULTS] * 20)])
    compacted = _json([SYSTEM, {"role": "user", "parts": [{"type": "text", "content": "summary"}]}])
    first = _span("2026-01-01T00:00:00Z", long_input, _json([CALL]))
    last = _span("2026-01-01T00:00:20Z", compacted, _json(FINAL))
    session = _parse(_row([first, last]))
    assert isinstance(session, Session)
    assert session.messages[-1].content == "It is cancelled."


def test_tool_spans_and_system_instructions() -> None:
    tool_span = _span("2026-01-01T00:00:30Z", _json([USER]), _json(FINAL))
    tool_span["type"] = "tool_call"
    instructions = _json([{"type": "text", "content": "Follow the airline policy."}])
    last = _span(
        "2026-01-01T00:00:20Z",
        _json([USER, CALL]),
        _json(FINAL),
        **{"gen_ai.system_instructions": instructions},
    )
    session = _parse(_row([last, tool_span]))
    assert isinstance(session, Session)
    assert session.messages[0].role == "system"
    assert session.messages[0].content == "Follow the airline policy."
    assert session.metadata["llm_calls"] == 1


def test_developer_role_and_plain_content_messages() -> None:
    messages = [
        {"role": "developer", "content": "policy"},
        {"role": "user", "content": [{"type": "text", "text": "hello"}]},
    ]
    last = _span("2026-01-01T00:00:20Z", _json(messages), _json(FINAL))
    session = _parse(_row([last]))
    assert isinstance(session, Session)
    assert [(m.role, m.content) for m in session.messages[:2]] == [
        ("system", "policy"),
        ("user", "hello"),
    ]


def test_spans_as_a_json_string_and_models_as_text() -> None:
    last = _span("2026-01-01T00:00:20Z", _json([SYSTEM, USER]), _json(FINAL))
    session = _parse(_row(_json([last]), models="claude-opus-4-5, Az/gpt-4.1"))
    assert isinstance(session, Session)
    # The calls' models first, then what the column declares that no call names.
    assert session.agent_models == ("Az/gpt-4.1", "claude-opus-4-5")


def test_rows_without_llm_calls_are_rejected() -> None:
    rejection = _parse(_row([{"name": "tool", "attributes": {"x": 1}}]))
    assert isinstance(rejection, Rejection)
    assert rejection.reason == "no_conversation"
    assert rejection.session_id == "sess-1"
    assert rejection.row == 7


def test_missing_id_and_broken_spans_are_rejected() -> None:
    last = _span("2026-01-01T00:00:20Z", _json([USER]), _json(FINAL))
    no_id = _parse(_row([last], session_id=None))
    assert isinstance(no_id, Rejection) and no_id.reason == "missing_id"
    broken = _parse(_row('[{"name": '))
    assert isinstance(broken, Rejection) and broken.reason == "malformed_row"


def test_synthetic_rows_of_realistic_size_parse() -> None:
    row = synth.otel_row("big", "swebench", calls=30, turn_bytes=2000, parallel_calls=True)
    session = _parse(row)
    assert isinstance(session, Session)
    assert session.metadata["llm_calls"] == 30
    assert "tests/test_merge.py pass" in session.messages[-1].content
