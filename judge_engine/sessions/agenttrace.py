"""AgentTrace rows (pagarsky/agent-trace; raw JSONL or the hub's Parquet) -> Session.

A row holds the task `prompt`, the model's `llm_steps` (visible output, reasoning,
parsed tool calls, token counts) and the tool executions as `spans` (input, output,
exit code, telemetry). The hub's Parquet form carries the same as the JSON strings
`spans_json`, `llm_steps_json` and `metadata_json`.

The release has no call id joining a step's tool calls to the spans, and tool spans
can outnumber the calls the steps propose. A call is paired with a span by tool name
and input, never by position alone: the first span (in start-time order) not yet
paired whose tool name is the call's and whose input holds every argument value of the
call (compared on letters and digits only, so quoting and escaping do not matter). A
span that records no input pairs by name alone. A span no call proposed is shown as
such, after the result it followed in time. The exit code is shown whenever it is
recorded, 0 included.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from typing import Any

import orjson

from ._common import (
    as_int,
    facts,
    json_text,
    load_json,
    model_names,
    optional_str,
    row_id,
    scalar_columns,
    text_of,
    unique,
)
from .model import BadRow, Hints, Message, Session, SourceRef, ToolCall

FORMAT = "agenttrace"


def matches(row: Mapping[str, Any]) -> bool:
    return "trace_id" in row and ("llm_steps" in row or "llm_steps_json" in row)


def _column(row: Mapping[str, Any], name: str, session_id: str) -> Any:
    if row.get(name) is not None:
        return load_json(row[name], name, session_id)
    return load_json(row.get(f"{name}_json"), f"{name}_json", session_id)


def _list_of_dicts(value: Any, name: str, session_id: str) -> list[Mapping[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRow("malformed_row", f"{name} is not a list", session_id)
    return [item for item in value if isinstance(item, dict)]


def parse(row: Mapping[str, Any], source: SourceRef, hints: Hints) -> Session:
    session_id = row_id(row, "trace_id")
    steps = _list_of_dicts(_column(row, "llm_steps", session_id), "llm_steps", session_id)
    spans = _list_of_dicts(_column(row, "spans", session_id), "spans", session_id)
    meta = _column(row, "metadata", session_id)
    if not isinstance(meta, dict):
        meta = {}

    prompt = text_of(row.get("prompt"))
    messages: list[Message] = [Message("user", prompt)] if prompt else []
    queue = [
        span
        for _, span in sorted(
            enumerate(spans), key=lambda item: (as_int(item[1].get("start_ns")) or 0, item[0])
        )
    ]
    paired: dict[int, str] = {}  # position in `queue` -> the call id it answers
    input_tokens = output_tokens = 0
    for number, step in enumerate(steps, start=1):
        input_tokens += as_int(step.get("input_tokens", step.get("prompt_tokens"))) or 0
        output_tokens += as_int(step.get("output_tokens", step.get("completion_tokens"))) or 0
        calls = _calls(step, number)
        output = step.get("model_output", step.get("output", step.get("content")))
        messages.append(
            Message(
                "assistant",
                text_of(output),
                tool_calls=tuple(calls),
                reasoning=text_of(step.get("reasoning_content")) or None,
            )
        )
        for call in calls:
            found = _pair(call, queue, paired)
            if found is not None:
                paired[found] = call.id
                messages.append(_tool_message(queue[found], call.id))
    messages = _place_unpaired(messages, queue, paired)
    if not steps and not spans:
        raise BadRow("no_conversation", "the row has no llm_steps and no spans", session_id)

    exit_codes = [as_int(span.get("exit_code")) for span in spans]
    models = model_names(row.get("model")) or model_names(meta.get("model"))
    if not models and hints.agent_model:
        models.append(hints.agent_model)
    benchmark = (
        optional_str(meta.get("dataset"))
        or optional_str(meta.get("dataset_name"))
        or optional_str(meta.get("source"))
        or optional_str(row.get("dataset_name"))
        or optional_str(row.get("benchmark"))
    )
    metadata: dict[str, Any] = scalar_columns(
        row, skip=("trace_id", "metadata", "metadata_json", "model")
    )
    metadata.update(scalar_columns(meta, skip=("model",)))
    metadata.update(
        {
            "llm_steps": len(steps),
            "tool_spans": len(spans),
            "tool_errors": sum(1 for code in exit_codes if code not in (None, 0)),
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
        }
    )
    known = facts(metadata)
    return Session(
        session_id=session_id,
        task=prompt,
        messages=tuple(messages),
        agent_models=unique(models),
        benchmark=benchmark.lower() if benchmark else None,
        harness=optional_str(meta.get("harness")) or optional_str(row.get("harness")),
        metadata=metadata,
        source=source,
        label=known.label,
        agent_usage=known.usage,
        agent_cost_usd=known.cost_usd,
    )


def _calls(step: Mapping[str, Any], number: int) -> list[ToolCall]:
    calls = []
    raw_calls = step.get("tool_calls")
    for index, call in enumerate(raw_calls if isinstance(raw_calls, list) else [], start=1):
        if isinstance(call, dict):
            function = call.get("function")
            spec = function if isinstance(function, dict) else call
            calls.append(
                ToolCall(
                    id=str(call.get("id") or f"step{number}_call{index}"),
                    name=str(spec.get("name") or "unknown"),
                    arguments=json_text(spec.get("arguments", spec.get("args"))),
                )
            )
    return calls


_NOT_ALNUM = re.compile(r"[^0-9A-Za-z]+")


def _letters(text: str) -> str:
    return _NOT_ALNUM.sub("", text)


def _decoded(recorded: Any) -> str:
    """A span's input as the text of its values: the release writes `kwargs={...}` as a
    Python literal, others JSON; quoting and escaping are undone where they parse."""
    if not isinstance(recorded, str):
        return _flatten(recorded)
    text = recorded.strip()
    body = text.split("=", 1)[1].strip() if re.match(r"^\w+\s*=", text) else text
    if len(body) > _MAX_LITERAL:
        return text
    for decode in (orjson.loads, ast.literal_eval):
        try:
            return _flatten(decode(body))
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return text


def _flatten(value: Any) -> str:
    if isinstance(value, dict):
        return " ".join(_flatten(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return " ".join(_flatten(v) for v in value)
    return value if isinstance(value, str) else json_text(value)


#: Inputs longer than this are compared as they are, not parsed as literals.
_MAX_LITERAL = 200_000


def _values(arguments: str) -> list[str]:
    """The argument values of a call, as text, for comparing with a span's input."""
    try:
        data = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return [arguments]
    if isinstance(data, dict):
        return [v if isinstance(v, str) else json_text(v) for v in data.values()]
    return [arguments] if data not in (None, "", [], {}) else []


def _pair(call: ToolCall, queue: list[Mapping[str, Any]], paired: dict[int, str]) -> int | None:
    """The span that ran this call (see the module docstring), or None."""
    wanted = [v for v in (_letters(value) for value in _values(call.arguments)) if v]
    for position, span in enumerate(queue):
        if position in paired:
            continue
        name = optional_str(span.get("tool_name"))
        if name is not None and name != call.name:
            continue
        recorded = span.get("tool_input")
        if recorded in (None, "", {}, []):
            return position
        have = _letters(_decoded(recorded))
        if all(value in have for value in wanted):
            return position
    return None


def _place_unpaired(
    messages: list[Message], queue: list[Mapping[str, Any]], paired: dict[int, str]
) -> list[Message]:
    """Spans no call proposed, each after the result it followed in time."""
    unpaired = [p for p in range(len(queue)) if p not in paired]
    if not unpaired:
        return messages
    after: dict[str, list[int]] = {}  # a call id -> unpaired spans that followed its result
    leading: list[int] = []
    for position in unpaired:
        earlier = [p for p in paired if p < position]
        if earlier:
            after.setdefault(paired[max(earlier)], []).append(position)
        else:
            leading.append(position)
    out: list[Message] = []
    for message in messages:
        out.append(message)
        if message.role == "tool" and message.tool_call_id in after:
            out.extend(_tool_message(queue[p], None) for p in after[message.tool_call_id])
    if leading:
        start = 1 if out and out[0].role == "user" else 0
        out[start:start] = [_tool_message(queue[p], None) for p in leading]
    return out


def _tool_message(span: Mapping[str, Any], call_id: str | None) -> Message:
    output = text_of(span.get("tool_output"))
    code = as_int(span.get("exit_code"))
    if code is not None:
        output = f"{output}\n[exit code {code}]" if output else f"[exit code {code}]"
    if call_id is None:
        # No call asked for this execution: say so, and show what ran.
        ran = text_of(span.get("tool_input"))
        output = f"(no call proposed this execution; input: {ran})\n{output}"
    return Message(
        "tool",
        output,
        tool_call_id=call_id,
        name=optional_str(span.get("tool_name")),
        is_error=code not in (None, 0),
    )
