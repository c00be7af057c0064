"""What the judge reads is what the agent did: message shapes, the agent's own
conversation among side calls, failed calls, binary content and the task."""

from __future__ import annotations

import base64
import os
import re
from typing import Any

import orjson

from judge_engine.prompt import render_request
from judge_engine.rubrics import RubricSet
from judge_engine.sessions import EVENT, Rejection, Session, census, parse_row
from judge_engine.sessions.sources import RawRow

RUBRICS = RubricSet.load(None)
BASE64 = re.compile(r"[A-Za-z0-9+/]{200,}")


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _span(
    number: int,
    inputs: Any,
    outputs: Any = None,
    *,
    model: str = "gpt-5",
    status: int = 1,
    error: str | None = None,
    **attrs: Any,
) -> dict[str, Any]:
    attributes: dict[str, Any] = {"gen_ai.request.model": model, **attrs}
    if inputs is not None:
        attributes["gen_ai.input.messages"] = inputs if isinstance(inputs, str) else _json(inputs)
    if outputs is not None:
        attributes["gen_ai.output.messages"] = (
            outputs if isinstance(outputs, str) else _json(outputs)
        )
    if error is not None:
        attributes["error.type"] = "BadRequestError"
        attributes["error.message"] = error
    span: dict[str, Any] = {
        "name": "litellm_request",
        "span_id": f"s{number}",
        "start_time": f"2026-01-01T00:00:{number:02d}Z",
        "end_time": f"2026-01-01T00:00:{number:02d}Z",
        "status": {"code": status},
        "attributes": attributes,
    }
    return span


def _session(spans: list[dict[str, Any]], **row: Any) -> Session:
    data = {"session_id": "s-1", "spans": spans, "benchmark": "swebench", **row}
    result = parse_row(RawRow("t.jsonl", 0, data))
    assert isinstance(result, Session), result
    return result


def _judge_reads(session: Session) -> str:
    request = render_request(session, RUBRICS.for_benchmark(session.benchmark), "gpt-4.1")
    return str(request.body["messages"][1]["content"])


def _text(content: str) -> dict[str, Any]:
    return {"type": "text", "content": content}


SYSTEM = {"role": "system", "parts": [_text("You are a coding agent with tools.")]}
TASK = "Fix the failing test in tests/test_merge.py without touching other files."
USER = {"role": "user", "parts": [_text(TASK)]}


def _reply(text: str, *calls: tuple[str, str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "role": "assistant",
            "parts": [_text(text)]
            + [{"type": "tool_call", "id": i, "name": n, "arguments": a} for i, n, a in calls],
        }
    ]


def _result(call_id: str, text: str) -> dict[str, Any]:
    return {
        "role": "tool",
        "parts": [{"type": "tool_call_response", "id": call_id, "response": text}],
    }


# --- messages in every shape -------------------------------------------------------


def test_every_part_type_of_every_emitter_is_read_without_placeholders() -> None:
    image = base64.b64encode(os.urandom(45_000)).decode()
    history = [
        SYSTEM,
        USER,
        {  # OTel parts, every type of the semantic conventions
            "role": "assistant",
            "parts": [
                {"type": "reasoning", "content": "Run the test first."},
                _text("Running it."),
                {"type": "tool_call", "id": "c1", "name": "bash", "arguments": {"cmd": "pytest"}},
                {
                    "type": "server_tool_call",
                    "id": "c2",
                    "name": "web_search",
                    "server_tool_call": {"query": "merge bug"},
                },
            ],
        },
        {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": "c1", "response": "1 failed"}],
        },
        {
            "role": "tool",
            "parts": [
                {
                    "type": "server_tool_call_response",
                    "id": "c2",
                    "server_tool_call_response": {"hits": 3},
                }
            ],
        },
        {
            "role": "user",
            "parts": [
                {"type": "blob", "modality": "image", "mime_type": "image/png", "content": image},
                {
                    "type": "file",
                    "modality": "image",
                    "mime_type": "application/pdf",
                    "file_id": "file-9",
                },
                {
                    "type": "uri",
                    "modality": "image",
                    "mime_type": "image/jpeg",
                    "uri": "https://x.test/a.jpg",
                },
            ],
        },
        {  # OpenAI Responses items
            "role": "assistant",
            "parts": [
                {"type": "output_text", "text": "Reading the file."},
                {
                    "type": "function_call",
                    "call_id": "c3",
                    "name": "read",
                    "arguments": '{"path": "a.py"}',
                },
                {
                    "type": "function_call",
                    "call_id": "c4",
                    "name": "grep",
                    "args": {"pattern": "merge"},
                },
            ],
        },
        {
            "role": "user",
            "parts": [
                {"type": "function_call_output", "call_id": "c3", "output": "def merge(): ..."},
                {"type": "function_call_output", "call_id": "c4", "output": "a.py:1"},
                {"type": "input_text", "text": "Keep going."},
            ],
        },
        {  # Anthropic blocks
            "role": "assistant",
            "parts": [
                {"type": "thinking", "thinking": "The merge drops the tail.", "signature": "x"},
                {"type": "redacted_thinking", "data": "ZW5jcnlwdGVk"},
                {
                    "type": "tool_use",
                    "id": "c5",
                    "name": "edit",
                    "input": {"path": "a.py", "new": "x"},
                },
            ],
        },
        {
            "role": "user",
            "parts": [
                {
                    "type": "tool_result",
                    "tool_use_id": "c5",
                    "is_error": False,
                    "content": [
                        {"type": "text", "text": "edited"},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": image},
                        },
                    ],
                }
            ],
        },
        {  # LiteLLM: tool calls at message level beside empty parts
            "role": "assistant",
            "parts": [_text("")],
            "tool_calls": [
                {
                    "id": "c6",
                    "type": "function",
                    "function": {"name": "bash", "arguments": '{"cmd": "pytest -q"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c6", "parts": [_text("4 passed")]},
        {
            "role": "assistant",
            "content": "Plain chat content works too.",
            "tool_calls": [
                {"id": "c7", "type": "function", "function": {"name": "git", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c7", "content": "clean"},
    ]
    session = _session([_span(1, history, _reply("The test passes now."))])
    assert census(session)["unknown_parts"] == 0
    assert census(session)["orphan_results"] == 0
    assert census(session)["empty_assistant"] == 0
    calls = {c.id: c for m in session.messages for c in m.tool_calls}
    assert sorted(calls) == ["c1", "c2", "c3", "c4", "c5", "c6", "c7"]
    assert orjson.loads(calls["c4"].arguments) == {"pattern": "merge"}  # Responses `args`
    assert orjson.loads(calls["c5"].arguments) == {"path": "a.py", "new": "x"}  # `input`
    assert orjson.loads(calls["c2"].arguments) == {"query": "merge bug"}
    results = {m.tool_call_id: m.content for m in session.messages if m.role == "tool"}
    assert results["c3"] == "def merge(): ..." and results["c6"] == "4 passed"
    assert results["c5"].startswith("edited\n[image: image/png, 45 KB]")
    reasoning = [m.reasoning for m in session.messages if m.reasoning]
    assert "The merge drops the tail." in reasoning[1] and "[redacted thinking" in reasoning[1]
    reads = _judge_reads(session)
    assert "[image: image/png, 45 KB]" in reads
    assert "[image: application/pdf" not in reads and "file-9" in reads
    assert "https://x.test/a.jpg" in reads
    assert not BASE64.search(reads)
    assert not re.search(r"\[\w+ part\]", reads)
    assert session.reading.binary_parts == 4  # blob, file, uri, image in a result


def test_an_unknown_part_keeps_its_text_or_becomes_a_marker_with_type_and_size() -> None:
    history = [
        USER,
        {
            "role": "assistant",
            "parts": [
                {"type": "citation_note", "text": "see the docs"},
                {"type": "hologram", "payload": {"x": 1, "y": [1, 2, 3]}},
            ],
        },
    ]
    session = _session([_span(1, history, _reply("done"))])
    text = session.messages[1].content
    assert "see the docs" in text
    assert re.search(r"\[hologram part: \d+ B\]", text)
    assert census(session)["unknown_parts"] == 1


def test_binary_runs_in_tool_output_and_data_urls_never_reach_the_judge() -> None:
    blob = base64.b64encode(os.urandom(60_000)).decode()
    wrapped = "\n".join(blob[i : i + 76] for i in range(0, len(blob), 76))
    history = [
        USER,
        *_reply("", ("c1", "bash", {"cmd": "base64 shot.png"})),
        _result("c1", f"{wrapped}\n"),
        *_reply("", ("c2", "bash", {"cmd": "cat page.html"})),
        _result("c2", f'<img src="data:image/jpeg;base64,{blob}"> ok'),
    ]
    session = _session([_span(1, history, _reply("done"))])
    reads = _judge_reads(session)
    assert not BASE64.search(reads)
    assert "[base64 data: 60 KB]" in reads
    assert "[image: image/jpeg, 60 KB]" in reads and '"> ok' in reads
    # A long word list and a hex digest are not binary.
    words = "\n".join(["alpha", "beta", "gamma"] * 100)
    digest = "ab12" * 100
    plain = _session([_span(1, [USER, _result("c9", words + " " + digest)], _reply("ok"))])
    assert census(plain)["binary_parts"] == 0


# --- the agent's own conversation ----------------------------------------------------


def _agent_run(model: str = "gpt-5") -> list[dict[str, Any]]:
    """Three calls of an agent: two tool steps and a final answer."""
    first = [SYSTEM, USER]
    step1 = _reply("Looking.", ("c1", "bash", {"cmd": "pytest"}))
    second = [*first, *step1, _result("c1", "1 failed: test_merge")]
    step2 = _reply("Fixing.", ("c2", "edit", {"path": "merge.py"}))
    third = [*second, *step2, _result("c2", "edited")]
    final = _reply("The merge now keeps the tail; tests pass.")
    return [
        _span(2, first, step1, model=model),
        _span(4, second, step2, model=model),
        _span(6, third, final, model=model),
    ]


def test_side_calls_are_left_out_and_named_with_their_reason() -> None:
    title = _span(
        1,
        [
            {"role": "system", "parts": [_text("Generate a short title for the user's messages.")]},
            {"role": "user", "parts": [_text(f"---BEGIN---\n{TASK}\n---END---")]},
        ],
        _reply("Merge test fix"),
        model="gpt-5-mini",
    )
    # A grader quoting the agent's final answer, with a large input of its own.
    grader = _span(
        9,
        [
            {
                "role": "user",
                "parts": [
                    _text(
                        "You are a grader. Decide whether the response solved the task.\n"
                        + "x" * 9000
                        + "\nResponse: The merge now keeps the tail; tests pass."
                    )
                ],
            }
        ],
        _reply("PASS"),
        model="gpt-5-mini",
    )
    summary = _span(
        7,
        [
            {"role": "system", "parts": [_text("Summarize this conversation.")]},
            {"role": "user", "parts": [_text("a long conversation " * 500)]},
        ],
        _reply("A summary."),
    )
    session = _session([title, *_agent_run(), summary, grader])
    assert session.task == TASK
    assert session.messages[-1].content == "The merge now keeps the tail; tests pass."
    reads = _judge_reads(session)
    assert "Generate a short title" not in reads and "You are a grader" not in reads
    assert "Summarize this conversation" not in reads
    side = session.reading.side_calls
    assert len(side) == 3 and all("another conversation" in line for line in side)
    assert session.agent_models == ("gpt-5",)
    assert session.metadata["side_call_models"] == ["gpt-5-mini"]
    assert session.metadata["side_calls"] == 3


def test_the_main_thread_is_the_longest_chain_not_the_largest_input() -> None:
    huge_side = _span(
        8,
        [{"role": "user", "parts": [_text("Classify these tools: " + "tool " * 20_000)]}],
        _reply("[1, 2]"),
    )
    session = _session([*_agent_run(), huge_side])
    assert session.messages[-1].content.startswith("The merge now keeps the tail")
    assert census(session)["side_calls"] == 1


def test_a_sub_agent_running_beside_the_main_thread_is_a_side_call() -> None:
    spans = _agent_run()
    # A sub-agent opening as the agent does, running while the main thread runs.
    sub = _span(
        3,
        [SYSTEM, {"role": "user", "parts": [_text("Sub-task: list the files.")]}],
        _reply("a.py b.py"),
    )
    session = _session([spans[0], sub, *spans[1:]])
    assert "Sub-task: list the files." not in _judge_reads(session)
    assert any("beside the agent" in line for line in session.reading.side_calls)


def test_compaction_shows_the_original_task_and_how_the_run_ended() -> None:
    spans = _agent_run()
    summary_user = {
        "role": "user",
        "parts": [_text("Summary so far: the merge bug is in merge.py.")],
    }
    after = [SYSTEM, summary_user]
    step = _reply("Re-running the tests.", ("c9", "bash", {"cmd": "pytest -q"}))
    later = [*after, *step, _result("c9", "all passed")]
    compacted = [
        _span(10, after, step),
        _span(12, later, _reply("Done after compaction: all tests pass.")),
    ]
    session = _session([*spans[:2], *compacted])
    assert session.task == TASK
    contents = [m.content for m in session.messages]
    assert contents[-1] == "Done after compaction: all tests pass."
    assert any(m.role == EVENT and "new context" in m.content for m in session.messages)
    assert "Summary so far: the merge bug is in merge.py." in contents
    assert "Looking." in contents  # the first context is still shown
    assert session.reading.restarts == 1
    # What the restarted conversation repeats is not shown twice.
    assert sum(1 for m in session.messages if m.role == "system") == 1


def test_replies_the_inputs_lost_are_put_back_from_the_outputs() -> None:
    # Some emitters record a call's function calls and results as empty messages in
    # later inputs: the outputs hold the calls.
    empty = {"role": "user", "parts": [_text("")]}
    first = [SYSTEM, USER]
    out1 = [
        {
            "role": "assistant",
            "parts": [_text("")],
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "bash", "arguments": '{"cmd":"ls"}'},
                }
            ],
        }
    ]
    second = [*first, empty, empty]
    out2 = _reply("Done: nothing to change.")
    session = _session([_span(1, first, out1), _span(2, second, out2)])
    assistant = [m for m in session.messages if m.role == "assistant"]
    assert [c.name for c in assistant[0].tool_calls] == ["bash"]
    assert census(session)["empty_assistant"] == 0
    assert session.reading.empty_messages == 2


# --- failed calls ---------------------------------------------------------------------


def test_failed_calls_appear_in_place_and_runs_without_input_are_one_line() -> None:
    spans = _agent_run()
    failures = [
        _span(5, None, None, status=2, error=f"Azure content filter {n}") for n in range(0)
    ] + [_span(5, "[]", None, status=2, error="max_tokens reached") for _ in range(21)]
    session = _session([spans[0], spans[1], *failures, spans[2]])
    events = [m for m in session.messages if m.role == EVENT]
    assert len(events) == 1
    assert events[0].content.startswith("21 LLM calls failed in a row: BadRequestError")
    order = [m.role for m in session.messages]
    # Before the final reply, after the second step's result.
    assert order[-2:] == [EVENT, "assistant"]
    assert session.reading.failed_calls == 21 and not session.reading.ended_with_failure


def test_a_session_whose_last_call_failed_says_so_at_the_end() -> None:
    spans = _agent_run()
    last = _span(8, "[]", None, status=2, error="rate limited for good")
    session = _session([*spans, last])
    assert session.messages[-1].role == EVENT
    assert "rate limited for good" in session.messages[-1].content
    assert session.reading.ended_with_failure
    assert "LLM call failed" in _judge_reads(session).split("<<<END")[0][-400:]


def test_every_agent_call_refused_leaves_a_transcript_that_says_why() -> None:
    refused = [
        _span(
            n,
            [SYSTEM, USER],
            None,
            status=2,
            **{
                "error.type": "ContentPolicyViolationError",
                "error.message": "The response was filtered",
            },
        )
        for n in range(1, 6)
    ]
    session = _session(refused)
    assert session.task == TASK
    assert session.messages[-1].role == EVENT
    assert (
        "5 LLM calls failed in a row: ContentPolicyViolationError" in session.messages[-1].content
    )
    assert session.reading.ended_with_failure


def test_status_error_alone_and_error_type_alone_both_mark_a_failure() -> None:
    by_status = _span(7, "[]", None, status=2)
    by_status["status"]["message"] = "upstream 500"
    by_type = _span(8, "[]", None, **{"error.type": "Timeout"})
    session = _session([*_agent_run(), by_status, by_type])
    lines = [m.content for m in session.messages if m.role == EVENT]
    assert lines == ["LLM call failed: error: upstream 500", "LLM call failed: Timeout"]


# --- the task --------------------------------------------------------------------------


def test_few_shot_examples_and_harness_preambles_are_not_the_task() -> None:
    few_shot = [
        {"role": "system", "parts": [_text("Act as an expert software developer.")]},
        {"role": "user", "parts": [_text("Change get_factorial() to use math.factorial")]},
        {"role": "assistant", "parts": [_text("Here is the edit ...")]},
        {"role": "user", "parts": [_text("I switched to a new code base.")]},
        {"role": "assistant", "parts": [_text("Ok.")]},
        {
            "role": "user",
            "parts": [
                _text("<system-reminder>\nSkills are available.\n</system-reminder>"),
                _text("<environment_context>\n<cwd>/app</cwd>\n</environment_context>"),
                _text(f"<info-msg>\nIt is 10:00\n</info-msg>\n{TASK}\n<note>scratch</note>"),
            ],
        },
        {"role": "system", "parts": [_text("# SEARCH/REPLACE rules")]},
    ]
    session = _session([_span(1, few_shot, _reply("Done."))])
    assert session.task == TASK
    assert "few-shot" not in session.reading.task_from
    assert "system-reminder" in session.reading.task_from
    assert "input message 6 of 7" in session.reading.task_from


def test_a_task_split_over_user_messages_is_read_whole() -> None:
    messages = [
        {"role": "user", "parts": [_text("<environment_context>x</environment_context>")]},
        {"role": "user", "parts": [_text("Part one of the request.")]},
        {"role": "user", "parts": [_text("Part two of the request.")]},
    ]
    session = _session([_span(1, messages, _reply("ok"))])
    assert session.task == "Part one of the request.\n\nPart two of the request."


def test_a_wrapper_span_of_the_same_call_is_not_a_second_conversation() -> None:
    inner = _span(2, [SYSTEM, USER], _reply("print('fixed')"))
    outer = _span(1, TASK, "print('fixed')")  # plain text input and output
    outer["span_id"], inner["parent_span_id"] = "outer", "outer"
    session = _session([outer, inner])
    assert session.task == TASK and session.messages[0].role == "system"
    assert "another record" in session.reading.side_calls[0]
    # Without the span tree (rows that dropped parent ids), the same reply says so.
    del inner["parent_span_id"]
    session = _session([outer, inner])
    assert "another record" in session.reading.side_calls[0]


def test_a_trace_with_no_call_messages_is_rejected_not_crashed() -> None:
    rejected = parse_row(
        RawRow(
            "t.jsonl",
            4,
            {
                "session_id": "x",
                "spans": [
                    {
                        "name": "tool",
                        "type": "tool_call",
                        "attributes": {"gen_ai.input.messages": "[]"},
                    }
                ],
            },
        )
    )
    assert isinstance(rejected, Rejection) and rejected.reason == "no_conversation"
