"""Hermes ShareGPT rows -> Session."""

from __future__ import annotations

from typing import Any

import orjson

from judge_engine.sessions import Rejection, Session, parse_row
from judge_engine.sessions.sources import RawRow
from judge_engine.testing import synth

ROW: dict[str, Any] = {
    "id": "hermes-0001",
    "category": "Terminal & Coding",
    "subcategory": "Networking",
    "task": "Which process listens on 8080?",
    "conversations": [
        {"from": "system", "value": "You are Hermes. <tools>[...]</tools>"},
        {"from": "human", "value": "Which process listens on 8080?"},
        {
            "from": "gpt",
            "value": "<think>Check sockets, then the pid.</think>\nLet me look.\n"
            '<tool_call>{"name": "terminal", "arguments": {"command": "ss -ltnp"}}</tool_call>\n'
            '<tool_call>{"name": "terminal", "arguments": {"command": "ps 912"}}</tool_call>',
        },
        {
            "from": "tool",
            "value": '<tool_response>{"output": "LISTEN :8080 pid=912"}</tool_response>\n'
            '<tool_response>{"output": "912 nginx"}</tool_response>',
        },
        {
            "from": "gpt",
            "value": '<think>Try again</think><tool_call>{"name": "terminal", "arguments": '
            '{"command": "ls"</tool_call>',
        },
        {"from": "tool", "value": "plain output without tags"},
        {"from": "gpt", "value": "<think>Done.</think>\nnginx (pid 912) listens on 8080."},
    ],
    "tools": orjson.dumps([{"type": "function", "function": {"name": "terminal"}}]).decode(),
}


def _parse(row: dict[str, Any], config: str | None = None, agent: str | None = None) -> Any:
    return parse_row(RawRow("hermes.jsonl", 0, row, hub_config=config), agent_model=agent)


def test_think_tool_calls_and_responses() -> None:
    session = _parse(ROW)
    assert isinstance(session, Session)
    roles = [m.role for m in session.messages]
    assert roles == [
        "system",
        "user",
        "assistant",
        "tool",
        "tool",
        "assistant",
        "tool",
        "assistant",
    ]
    first = session.messages[2]
    assert first.reasoning == "Check sockets, then the pid."
    assert first.content == "Let me look."
    assert [orjson.loads(c.arguments)["command"] for c in first.tool_calls] == [
        "ss -ltnp",
        "ps 912",
    ]
    results = session.messages[3:5]
    assert [r.tool_call_id for r in results] == [c.id for c in first.tool_calls]
    assert results[1].content == '{"output": "912 nginx"}'
    assert session.messages[-1].content == "nginx (pid 912) listens on 8080."
    assert session.messages[-1].reasoning == "Done."


def test_malformed_tool_call_json_is_kept_as_text() -> None:
    session = _parse(ROW)
    assert isinstance(session, Session)
    broken = session.messages[5]
    assert broken.tool_calls == ()
    assert '<tool_call>{"name": "terminal"' in broken.content
    assert session.metadata["malformed_tool_calls"] == 1
    # The untagged tool output answers no call and is still kept.
    assert session.messages[6].content == "plain output without tags"


def test_agent_model_from_hub_config_then_flag_then_unknown() -> None:
    assert _parse(ROW, config="kimi", agent="glm-5.1").agent_models == ("kimi",)
    assert _parse(ROW, agent="glm-5.1").agent_models == ("glm-5.1",)
    assert _parse(ROW).agent_models == ()


def test_task_category_and_harness() -> None:
    session = _parse(ROW)
    assert session.task == "Which process listens on 8080?"
    assert session.metadata["category"] == "Terminal & Coding"
    assert session.harness == "hermes-agent"
    assert session.benchmark is None  # graded with the default rubric


def test_conversations_as_json_text_and_bad_rows() -> None:
    text_form = dict(ROW, conversations=orjson.dumps(ROW["conversations"]).decode())
    assert _parse(text_form).messages == _parse(ROW).messages
    empty = _parse(dict(ROW, conversations=[]))
    assert isinstance(empty, Rejection) and empty.reason == "no_conversation"
    wrong = _parse(dict(ROW, conversations={"from": "human"}))
    assert isinstance(wrong, Rejection) and wrong.reason == "malformed_row"


def test_synthetic_rows() -> None:
    session = _parse(synth.hermes_row("h", malformed_call=True, success=False))
    assert isinstance(session, Session)
    assert session.metadata["malformed_tool_calls"] == 1
    assert "permission denied" in session.messages[-1].content


def test_closing_tags_inside_json_bodies_do_not_break_parsing() -> None:
    row = {
        "id": "hermes-tags",
        "conversations": [
            {"from": "human", "value": "Show the parser's test fixture."},
            {
                "from": "gpt",
                "value": "<think>Read the file.</think>"
                '<tool_call>{"id": "call_a", "name": "terminal", "arguments": '
                '{"command": "echo \'<think>not reasoning</think>\'"}}</tool_call>'
                '<tool_call>{"id": "call_b", "name": "read", "arguments": {"path": "t.xml"}}'
                "</tool_call>",
            },
            {
                "from": "tool",
                # Responses in the other order, each naming its call; the second holds
                # a literal closing tag in its output.
                "value": '<tool_response>{"tool_call_id": "call_b", "content": '
                '"<tool_response>x</tool_response> in a fixture"}</tool_response>\n'
                '<tool_response>{"tool_call_id": "call_a", "content": "ok"}</tool_response>',
            },
            {"from": "gpt", "value": "The fixture nests a tool_response tag."},
        ],
    }
    session = _parse(row)
    assert isinstance(session, Session)
    step = session.messages[1]
    assert step.reasoning == "Read the file."
    assert [c.id for c in step.tool_calls] == ["call_a", "call_b"]
    assert "<think>not reasoning</think>" in step.tool_calls[0].arguments
    results = [m for m in session.messages if m.role == "tool"]
    assert [r.tool_call_id for r in results] == ["call_b", "call_a"]
    assert "<tool_response>x</tool_response> in a fixture" in results[0].content
    assert session.messages[-1].content == "The fixture nests a tool_response tag."


def test_a_plain_response_with_a_literal_closing_tag_ends_at_the_last_one() -> None:
    row = {
        "id": "hermes-plain",
        "conversations": [
            {"from": "human", "value": "Grep it."},
            {"from": "gpt", "value": '<tool_call>{"name": "grep", "arguments": {}}</tool_call>'},
            {
                "from": "tool",
                "value": "<tool_response>found </tool_response> twice</tool_response>",
            },
        ],
    }
    session = _parse(row)
    assert isinstance(session, Session)
    result = session.messages[-1]
    assert result.role == "tool" and result.content == "found </tool_response> twice"
    assert result.tool_call_id == session.messages[1].tool_calls[0].id
