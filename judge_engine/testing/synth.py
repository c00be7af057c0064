"""Synthetic agent traces in every source schema, for the demo, tests and benchmarks.

In: a scenario (benchmark, outcome, size) and a seed. Out: raw rows exactly as the
public datasets lay them out: OTel GenAI spans (Exgentic), AgentTrace (raw JSONL or
the hub's JSON-string columns), Hermes ShareGPT and generic OpenAI chat. Every trace
shows its outcome the way real ones do (test output, a confirmation, an exit code),
which is what the simulator's judges read. Deterministic for a given seed.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

_WORDS = [
    "the",
    "value",
    "index",
    "frame",
    "merge",
    "column",
    "request",
    "handler",
    "config",
    "parser",
    "token",
    "cache",
    "result",
    "module",
    "import",
    "return",
    "error",
    "check",
    "test",
    "case",
    "user",
    "order",
    "flight",
    "seat",
    "refund",
    "policy",
    "account",
    "record",
    "field",
    "query",
    "filter",
    "result",
    "page",
    "response",
    "status",
    "retry",
    "stream",
    "buffer",
    "worker",
    "queue",
    "limit",
    "window",
    "batch",
    "commit",
    "rollback",
    "schema",
    "table",
]


@dataclass(frozen=True, slots=True)
class Scenario:
    benchmark: str
    task: str
    tool: str
    action: str
    good_output: str
    bad_output: str
    good_final: str
    bad_final: str


SCENARIOS: dict[str, Scenario] = {
    "swebench": Scenario(
        "swebench",
        "Fix the issue: `Frame.merge` raises KeyError when the right frame has a "
        "column named like the index. Repository: frames/frames at commit 3f2a1c.",
        "bash",
        "python -m pytest tests/test_merge.py -q",
        "....................\n20 passed in 2.31s",
        "....F...............\nFAILED tests/test_merge.py::test_merge_index_name - "
        "KeyError: 'key'\n1 failed, 19 passed in 2.40s",
        "I changed `Frame.merge` to resolve index names before columns. The reproduction "
        "script now prints the merged frame and all 20 tests in tests/test_merge.py pass.",
        "I tried to resolve index names first but tests/test_merge.py::"
        "test_merge_index_name still fails with KeyError. I could not finish the fix.",
    ),
    "appworld": Scenario(
        "appworld",
        "Pay back every friend I owe money to on Venmo for last month's dinners, "
        "then tell me how much I paid in total.",
        "execute",
        "apis.venmo.create_transaction(receiver_email=e, amount=a) for each debt",
        '{"status": "success", "transactions_created": 3, "total": 86.5}',
        '{"status": "error", "message": "Insufficient balance for transaction 3"}',
        "All three debts are paid. I called apis.supervisor.complete_task(answer=86.5).",
        "One payment failed with an insufficient balance error; I stopped without "
        "calling complete_task.",
    ),
    "browsecompplus": Scenario(
        "browsecompplus",
        "Which river port, founded before 1500 and twinned with a city on the Baltic, "
        "hosted a rowing final in 1972 and later renamed its main bridge after a poet?",
        "search",
        '{"query": "rowing final 1972 river port twinned Baltic poet bridge"}',
        "doc 4411: ... the 1972 rowing final was held at Wroclaw Harbour; the city is "
        "twinned with Gdansk ... the main bridge was renamed after the poet Mickiewicz ...",
        "no documents matched the query",
        "Answer: Wroclaw. Doc 4411 confirms the 1972 rowing final, the Baltic twin city "
        "and the bridge renamed after a poet; doc 802 confirms its founding before 1500. "
        "Confidence: 80%.",
        "I could not find a port that satisfies all constraints. My best guess is "
        "Szczecin but none of the documents confirm it. Confidence: 10%.",
    ),
    "tau2_airline": Scenario(
        "tau2_airline",
        "Hi, I need to cancel my reservation 4WQ150. My user id is mia_li_3668.",
        "cancel_reservation",
        '{"reservation_id": "4WQ150"}',
        '{"reservation_id": "4WQ150", "status": "cancelled", "refund": 420.0}',
        "Error: basic economy reservations cannot be cancelled without insurance",
        "Your reservation 4WQ150 is cancelled and $420.00 will be refunded to your "
        "original payment method within 5 to 7 business days. Is there anything else?",
        "I am sorry, I was not able to cancel reservation 4WQ150. Let me transfer you "
        "to a human agent.",
    ),
    "tau2_retail": Scenario(
        "tau2_retail",
        "I received the wrong size of my hiking boots in order #W2378156; I want to "
        "exchange them for size 10.",
        "exchange_delivered_order_items",
        '{"order_id": "#W2378156", "item_ids": ["4694984344"], '
        '"new_item_ids": ["1615379700"], "payment_method_id": "gift_card_7219486"}',
        '{"order_id": "#W2378156", "status": "exchange requested"}',
        "Error: order #W2378156 is not delivered yet and cannot be exchanged",
        "The exchange for size 10 is requested for order #W2378156. You will get an "
        "email with the return label; the price difference goes to your gift card.",
        "I could not exchange the boots because the order is not delivered yet.",
    ),
    "tau2_telecom": Scenario(
        "tau2_telecom",
        "My phone says no mobile data even though I have signal. Phone number 555-123-2002.",
        "toggle_data",
        '{"state": "on"}',
        '{"mobile_data": "on", "status": "connected", "speed_test": "35 Mbps"}',
        '{"mobile_data": "on", "status": "no connection"}',
        "Great, you confirmed that mobile data works now at 35 Mbps after turning data "
        "on and resetting the APN. Anything else I can help with?",
        "The data connection still does not work. I recommend visiting a store.",
    ),
    "mbpp": Scenario(
        "mbpp",
        "Write a function to find the shared elements from the given two lists.\n"
        "assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))",
        "python_interpreter",
        "def similar_elements(a, b):\n    return tuple(set(a) & set(b))\n"
        "assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))",
        "exit_code: 0\nAll assertions passed.",
        'exit_code: 1\nTraceback (most recent call last):\n  File "<stdin>", line 3\n'
        "AssertionError",
        "def similar_elements(a, b):\n    return tuple(set(a) & set(b))",
        "I keep getting an AssertionError and cannot find the bug.",
    ),
    "nl2bash": Scenario(
        "nl2bash",
        "Count the number of .txt files under /testdata/system, recursively.",
        "bash",
        "find /testdata/system -type f -name '*.txt' | wc -l",
        "exit_code: 0\n7",
        "exit_code: 1\nfind: '/testdata/sys': No such file or directory",
        "The command `find /testdata/system -type f -name '*.txt' | wc -l` prints 7.",
        "The command failed and I could not fix the path.",
    ),
}


class _Text:
    """Filler text of a given size from a fixed vocabulary (not compressible to nothing)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def __call__(self, size: int) -> str:
        if size <= 0:
            return ""
        words: list[str] = []
        length = 0
        while length < size:
            word = self.rng.choice(_WORDS)
            words.append(word)
            length += len(word) + 1
            if self.rng.random() < 0.08:
                words.append("\n")
        return " ".join(words)[:size]


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def otel_row(
    session_id: str,
    benchmark: str = "swebench",
    *,
    harness: str = "tool_calling",
    models: tuple[str, ...] = ("claude-opus-4-5",),
    success: bool = True,
    calls: int = 4,
    turn_bytes: int = 300,
    seed: int = 0,
    parallel_calls: bool = False,
    reasoning: bool = False,
    tool_error: bool = False,
    malformed_last_input: bool = False,
    side_call: bool = False,
    parsed_messages: bool = False,
    timestamp: str = "2026-01-15T10:00:00",
) -> dict[str, Any]:
    """One session of the Exgentic agent-llm-traces schema.

    Every call's input holds the whole conversation so far, as in the dataset; the
    last call's output is the agent's final message.
    """
    rng = random.Random(f"{seed}:{session_id}")
    text = _Text(rng)
    scenario = SCENARIOS.get(benchmark, SCENARIOS["swebench"])
    conversation: list[dict[str, Any]] = [
        {
            "role": "system",
            "parts": [{"type": "text", "content": "You are a careful agent. " + text(120)}],
        },
        {"role": "user", "parts": [{"type": "text", "content": scenario.task}]},
    ]
    spans: list[dict[str, Any]] = []
    clock = 0.0
    model = models[0]
    for number in range(1, calls + 1):
        final = number == calls
        if final:
            output_parts: list[dict[str, Any]] = [
                {"type": "text", "content": scenario.good_final if success else scenario.bad_final}
            ]
        else:
            output_parts = [{"type": "text", "content": f"Step {number}: " + text(turn_bytes // 8)}]
            ids = [f"call_{number}_1"] + ([f"call_{number}_2"] if parallel_calls else [])
            for call_id in ids:
                if number == calls - 1:
                    name = scenario.tool
                    arguments: Any = (
                        orjson.loads(scenario.action)
                        if scenario.action.startswith("{")
                        else {"command": scenario.action}
                    )
                else:
                    name, arguments = "lookup", {"query": f"{rng.choice(_WORDS)} {number}"}
                output_parts.append(
                    {"type": "tool_call", "id": call_id, "name": name, "arguments": arguments}
                )
        if reasoning:
            output_parts.insert(
                0, {"type": "thinking", "thinking": "Plan: " + text(turn_bytes // 4)}
            )
        output = [{"role": "assistant", "parts": output_parts}]
        input_messages = list(conversation)
        start = clock
        clock += 1.0 + rng.random()
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": model,
            "gen_ai.input.messages": input_messages if parsed_messages else _dumps(input_messages),
            "gen_ai.output.messages": output if parsed_messages else _dumps(output),
            "gen_ai.usage.input_tokens": 200 * number,
            "gen_ai.usage.output_tokens": 40,
        }
        if final and malformed_last_input:
            attrs["gen_ai.input.messages"] = _dumps(input_messages)[:-7] + '{"bro'
        spans.append(
            {
                "name": f"chat {model}",
                "span_id": f"{session_id}-{number:04d}",
                "start_time": _iso(timestamp, start),
                "end_time": _iso(timestamp, clock),
                "status": {"code": 1},
                "type": "llm_call",
                "attributes": attrs,
            }
        )
        clock += 0.2
        conversation.append(output[0])
        for part in output_parts:
            if part["type"] != "tool_call":
                continue
            last_tool_step = number == calls - 1
            if last_tool_step:
                result = scenario.good_output if success else scenario.bad_output
            elif tool_error and number == 1:
                result = "Error: command exited with status 2\n" + text(turn_bytes // 4)
            else:
                result = text(turn_bytes)
            conversation.append(
                {
                    "role": "tool",
                    "parts": [{"type": "tool_call_response", "id": part["id"], "result": result}],
                }
            )
        if side_call and number == 1:
            side_input = [
                {"role": "developer", "parts": [{"type": "text", "content": "Pick tools."}]},
                {"role": "user", "parts": [{"type": "text", "content": "Which tools fit?"}]},
            ]
            spans.append(
                {
                    "name": f"chat {model}",
                    "span_id": f"{session_id}-side",
                    "start_time": _iso(timestamp, clock + 1000),  # last by start time
                    "end_time": _iso(timestamp, clock + 1001),
                    "status": {"code": 1},
                    "type": "llm_call",
                    "attributes": {
                        "gen_ai.request.model": model,
                        "gen_ai.input.messages": _dumps(side_input),
                        "gen_ai.output.messages": _dumps(
                            [{"role": "assistant", "parts": [{"type": "text", "content": "[1,2]"}]}]
                        ),
                        "gen_ai.usage.input_tokens": 30,
                        "gen_ai.usage.output_tokens": 5,
                    },
                }
            )
    tool_errors = 1 if tool_error else 0
    return {
        "session_id": session_id,
        "spans": spans,
        "benchmark": benchmark,
        "harness": harness,
        "models": list(models),
        "total_tokens": sum(
            s["attributes"]["gen_ai.usage.input_tokens"]
            + s["attributes"]["gen_ai.usage.output_tokens"]
            for s in spans
        ),
        "error": f"[{tool_errors} tool error(s) detected. See spans for details.]",
        "collected_at": _iso(timestamp, 0),
        # The benchmark's own verdict, as the dataset's v2 carries it.
        "success": success,
    }


def _iso(base: str, offset: float) -> str:
    """`base` plus `offset` seconds, written as OTel exporters do (9 digits, Z)."""
    moment = datetime.fromisoformat(base) + timedelta(seconds=offset)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def _typed(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    return {"stringValue": _dumps(value)}


def otlp_spans(row: dict[str, Any], *, failed_calls: int = 0) -> list[dict[str, Any]]:
    """The spans of an `otel_row` as OTLP/JSON spans of one trace, under a root span,
    with `failed_calls` failed LLM calls (no input, as gateways record them) before the
    last call."""
    trace = hashlib.sha256(row["session_id"].encode()).hexdigest()[:32]
    root_id = trace[:16]
    spans: list[dict[str, Any]] = []
    sources = list(row["spans"])
    failures = [
        {
            "name": "litellm_request",
            "start_time": sources[-1]["start_time"],
            "end_time": sources[-1]["start_time"],
            "status": {"code": 2, "message": "litellm.BadRequestError: max_tokens reached"},
            "attributes": {
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": sources[-1]["attributes"]["gen_ai.request.model"],
                "gen_ai.input.messages": "[]",
                "error.type": "BadRequestError",
                "error.message": "max_tokens reached",
            },
        }
        for _ in range(failed_calls)
    ]
    ordered = [*sources[:-1], *failures, sources[-1]]
    for number, span in enumerate(ordered):
        start = datetime.fromisoformat(span["start_time"].rstrip("Z")[:26])
        nanos = int(start.replace(tzinfo=timezone.utc).timestamp() * 1e9) + number
        spans.append(
            {
                "traceId": trace,
                "spanId": f"{number + 1:016x}",
                "parentSpanId": root_id,
                "name": span["name"],
                "kind": 3,
                "startTimeUnixNano": str(nanos),
                "endTimeUnixNano": str(nanos + 1_000_000),
                "attributes": [
                    {"key": k, "value": _typed(v)} for k, v in span["attributes"].items()
                ],
                "status": span["status"],
            }
        )
    first = spans[0]["startTimeUnixNano"]
    spans.append(
        {
            "traceId": trace,
            "spanId": root_id,
            "name": "invoke_agent",
            "kind": 1,
            "startTimeUnixNano": first,
            "endTimeUnixNano": spans[-1]["endTimeUnixNano"],
            "attributes": [{"key": "gen_ai.operation.name", "value": _typed("invoke_agent")}],
            "status": {"code": 1},
        }
    )
    return spans


def otlp_request(spans: list[dict[str, Any]], service: str = "agent") -> dict[str, Any]:
    """One `ExportTraceServiceRequest` holding `spans`, as a collector's file exporter
    writes a line."""
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": _typed(service)}]},
                "scopeSpans": [{"scope": {"name": "judge_engine.testing.synth"}, "spans": spans}],
            }
        ]
    }


def agenttrace_row(
    trace_id: str,
    dataset: str = "mbpp",
    *,
    model: str = "Qwen/Qwen3-1.7B",
    success: bool = True,
    steps: int = 3,
    seed: int = 0,
    hub_form: bool = False,
    reasoning: bool = True,
    turn_bytes: int = 200,
) -> dict[str, Any]:
    """One AgentTrace run: the raw JSONL row, or the hub's JSON-string columns."""
    rng = random.Random(f"{seed}:{trace_id}")
    text = _Text(rng)
    scenario = SCENARIOS[dataset]
    llm_steps: list[dict[str, Any]] = []
    spans: list[dict[str, Any]] = []
    clock = 1_000_000
    for number in range(1, steps + 1):
        final = number == steps
        calls = []
        if not final:
            command = (
                scenario.action if number == steps - 1 else f"ls /testdata/{rng.choice(_WORDS)}"
            )
            calls.append({"name": scenario.tool, "arguments": {"command": command}})
            last = number == steps - 1
            failed = last and not success
            spans.append(
                {
                    "span_id": f"{trace_id}-span-{number}",
                    "type": "TOOL",
                    "tool_name": scenario.tool,
                    "tool_input": f"kwargs={{'command': {command!r}}}",
                    "tool_output": (scenario.good_output if success else scenario.bad_output)
                    if last
                    else text(turn_bytes),
                    "start_ns": clock,
                    "end_ns": clock + 5_000_000,
                    "duration_ms": 5.0,
                    "exit_code": 1 if failed else 0,
                    "telemetry": {
                        "user_cpu_s": 0.01,
                        "sys_cpu_s": 0.0,
                        "peak_rss_bytes": 9_437_184,
                    },
                    "parent_span_id": None,
                }
            )
        clock += 10_000_000
        llm_steps.append(
            {
                "step_id": f"{trace_id}-step-{number}",
                "step_number": number,
                "model_output": (scenario.good_final if success else scenario.bad_final)
                if final
                else None,
                "reasoning_content": ("Let me think. " + text(turn_bytes // 2))
                if reasoning
                else None,
                "tool_calls": calls,
                "duration_ms": 900.0,
                "input_tokens": 300 * number,
                "output_tokens": 60,
            }
        )
    metadata = {
        "schema_version": "0.3.0",
        "source": dataset,
        "task_id": rng.randint(1, 500),
        "run_id": f"run-{seed}",
        "serving": {"engine": "vllm", "dtype": "bfloat16"},
        "hardware": {"gpu": "A10G"},
    }
    row: dict[str, Any] = {
        "trace_id": trace_id,
        "timestamp_utc": "2026-03-28T13:31:44Z",
        "prompt": scenario.task,
        "model": model,
        "total_duration_ms": steps * 950.0,
    }
    if hub_form:
        row.update(
            dataset_name=dataset,
            task_id=metadata["task_id"],
            run_id=metadata["run_id"],
            tool_span_count=len(spans),
            llm_step_count=len(llm_steps),
            spans_json=_dumps(spans),
            llm_steps_json=_dumps(llm_steps),
            metadata_json=_dumps(metadata),
        )
    else:
        row.update(spans=spans, llm_steps=llm_steps, metadata=metadata)
    return row


def hermes_row(
    row_id: str,
    *,
    success: bool = True,
    seed: int = 0,
    tool_calls: int = 2,
    malformed_call: bool = False,
    category: str = "Terminal & Coding",
) -> dict[str, Any]:
    """One Hermes ShareGPT conversation with <think>, <tool_call> and <tool_response>."""
    rng = random.Random(f"{seed}:{row_id}")
    text = _Text(rng)
    tools = [
        {
            "type": "function",
            "function": {
                "name": "terminal",
                "description": "Run a command",
                "parameters": {"type": "object"},
            },
        }
    ]
    task = "Find which process listens on port 8080 and write its name to /tmp/port.txt."
    conversations: list[dict[str, str]] = [
        {
            "from": "system",
            "value": "You are Hermes, an agent with tools. <tools>" + _dumps(tools) + "</tools>",
        },
        {"from": "human", "value": task},
    ]
    for number in range(1, tool_calls + 1):
        command = (
            "ss -ltnp | grep 8080"
            if number == 1
            else "echo nginx > /tmp/port.txt && cat /tmp/port.txt"
        )
        call = (
            "<tool_call>"
            + _dumps({"name": "terminal", "arguments": {"command": command}})
            + "</tool_call>"
        )
        if malformed_call and number == 1:
            call = '<tool_call>{"name": "terminal", "arguments": {"command": "ss -ltnp"</tool_call>'
        conversations.append(
            {"from": "gpt", "value": f"<think>Step {number}. {text(160)}</think>\n{call}"}
        )
        output = (
            'LISTEN 0 511 0.0.0.0:8080 users:(("nginx",pid=912))'
            if number == 1
            else ("nginx" if success else "bash: /tmp/port.txt: Permission denied")
        )
        conversations.append(
            {
                "from": "tool",
                "value": "<tool_response>\n"
                + _dumps(
                    {
                        "name": "terminal",
                        "content": {
                            "output": output,
                            "exit_code": 0 if success or number == 1 else 1,
                        },
                    }
                )
                + "\n</tool_response>",
            }
        )
    final = (
        "nginx listens on port 8080; I wrote its name to /tmp/port.txt and checked the file."
        if success
        else "I found nginx on port 8080 but could not write /tmp/port.txt: permission denied."
    )
    conversations.append({"from": "gpt", "value": f"<think>{text(80)}</think>\n{final}"})
    return {
        "id": row_id,
        "category": category,
        "subcategory": "Networking",
        "task": task,
        "conversations": conversations,
        "tools": _dumps(tools),
    }


def openai_row(
    row_id: str,
    *,
    success: bool = True,
    model: str = "gpt-4.1",
    benchmark: str | None = None,
    harness: str | None = "custom_agent",
) -> dict[str, Any]:
    """One generic OpenAI chat session with a tool call and its result."""
    result = (
        "Deployed build 4411 to staging; health check: 200 OK"
        if success
        else ("Deploy failed: health check returned 503 Service Unavailable")
    )
    final = (
        "Build 4411 is live on staging and its health check returns 200."
        if success
        else ("The deploy failed; staging returns 503 and I rolled back.")
    )
    row: dict[str, Any] = {
        "id": row_id,
        "model": model,
        "messages": [
            {"role": "system", "content": "You are a release engineer agent."},
            {"role": "user", "content": "Deploy build 4411 to staging and check it is healthy."},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {
                            "name": "deploy",
                            "arguments": '{"build": 4411, "env": "staging"}',
                        },
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "name": "deploy", "content": result},
            {"role": "assistant", "content": final},
        ],
        "metadata": {"team": "release", "duration_s": 42.5},
    }
    if benchmark:
        row["benchmark"] = benchmark
    if harness:
        row["harness"] = harness
    return row
