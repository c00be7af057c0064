"""Generic OpenAI chat rows -> Session."""

from __future__ import annotations

from judge_engine.sessions import Rejection, Session, parse_row
from judge_engine.sessions.sources import RawRow
from judge_engine.testing import synth


def test_generic_rows_keep_tool_calls_and_metadata() -> None:
    row = synth.openai_row("o-1", benchmark="SWE-bench", harness="my_harness")
    row["metadata"]["agent_model"] = "claude-opus-4-5"
    session = parse_row(RawRow("chat.jsonl", 0, row))
    assert isinstance(session, Session)
    assert session.session_id == "o-1"
    assert session.agent_models == ("gpt-4.1", "claude-opus-4-5")
    assert session.benchmark == "SWE-bench" and session.harness == "my_harness"
    assert session.task == "Deploy build 4411 to staging and check it is healthy."
    call = session.messages[2]
    assert call.content == "" and call.tool_calls[0].name == "deploy"
    result = session.messages[3]
    assert (result.role, result.tool_call_id, result.name) == ("tool", "call_1", "deploy")
    assert session.metadata["team"] == "release"


def test_content_blocks_reasoning_and_metadata_fields() -> None:
    row = {
        "id": 42,
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            },
            {"role": "assistant", "content": "done", "reasoning_content": "because"},
        ],
        "metadata": {"benchmark": "mbpp", "harness": "h", "model": "m1"},
    }
    session = parse_row(RawRow("chat.jsonl", 0, row))
    assert isinstance(session, Session)
    assert session.session_id == "42"
    assert session.task == "a\nb"
    assert session.messages[1].reasoning == "because"
    assert (session.benchmark, session.harness, session.agent_models) == ("mbpp", "h", ("m1",))


def test_rows_without_messages_are_rejected() -> None:
    rejection = parse_row(RawRow("chat.jsonl", 5, {"id": "x", "messages": []}))
    assert isinstance(rejection, Rejection)
    assert (rejection.reason, rejection.session_id, rejection.row) == ("no_conversation", "x", 5)


def test_forced_format_and_unknown_schema() -> None:
    unknown = parse_row(RawRow("chat.jsonl", 1, {"hello": "world"}))
    assert isinstance(unknown, Rejection) and unknown.reason == "unknown_schema"
    assert "hello" in unknown.detail
    forced = parse_row(RawRow("chat.jsonl", 1, {"hello": "world"}), fmt="openai")
    assert isinstance(forced, Rejection) and forced.reason == "missing_id"
