"""OTel GenAI spans (the Exgentic agent-llm-traces schema) -> Session.

A row holds one session's spans. Every LLM call's `gen_ai.input.messages` already
holds the conversation so far, so the transcript is the input of the last call of
the main conversation plus that call's output. Only that call's messages are parsed:
the others are read for their model names, token counts and times, never decoded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ._common import (
    as_int,
    first_user_text,
    json_text,
    load_json,
    model_names,
    optional_str,
    parse_time,
    row_id,
    scalar_columns,
    text_of,
    unique,
)
from .model import BadRow, Message, Session, SourceRef, ToolCall
from .openai_chat import convert_message

FORMAT = "otel"

_INPUT = "gen_ai.input.messages"
_OUTPUT = "gen_ai.output.messages"
_SYSTEM = "gen_ai.system_instructions"
#: Span types that record a tool execution rather than an LLM call.
_TOOL_SPAN_TYPES = frozenset({"tool_call", "tool", "execute_tool", "tool_execution"})
_ROLE_ALIASES = {
    "developer": "system",
    "model": "assistant",
    "ai": "assistant",
    "human": "user",
    "function": "tool",
}
#: At most this many characters of a call's first input message identify its
#: conversation: calls of the main conversation open the same way (the same system
#: prompt), side calls (e.g. the
#: tool-shortlisting harness's stateless classification queries) do not. Comparing
#: openings instead of sizes keeps a main call whose context was compacted.
_OPENING = 256


def matches(row: Mapping[str, Any]) -> bool:
    return "spans" in row and ("session_id" in row or "trace_id" in row)


def _uniform_iso(values: list[Any]) -> bool:
    """Whether ISO timestamps share one layout, so that they sort as strings (the
    common case: one exporter wrote them all) and need not each be parsed."""
    if not values or not all(isinstance(v, str) for v in values):
        return False
    first = values[0]
    return all(len(v) == len(first) and v[-1:] == first[-1:] for v in values)


def _time_order(values: list[Any]) -> list[int]:
    """Indexes of `values` (span start times) in time order; unknown times last."""
    if _uniform_iso(values):
        return sorted(range(len(values)), key=lambda i: (values[i], i))
    parsed = [parse_time(v) for v in values]
    return sorted(range(len(values)), key=lambda i: (parsed[i] is None, parsed[i] or 0.0, i))


def _earliest(values: list[Any]) -> float | None:
    if _uniform_iso(values):
        return parse_time(min(values))
    times = [t for t in map(parse_time, values) if t is not None]
    return min(times) if times else None


def _latest(values: list[Any]) -> float | None:
    if _uniform_iso(values):
        return parse_time(max(values))
    times = [t for t in map(parse_time, values) if t is not None]
    return max(times) if times else None


class _Call:
    __slots__ = ("attrs", "index", "input", "opening", "output", "size", "start")

    def __init__(self, index: int, start: Any, attrs: Mapping[str, Any]) -> None:
        self.index = index
        self.start = start
        self.attrs = attrs
        self.input = attrs.get(_INPUT)
        self.output = attrs.get(_OUTPUT)
        value = self.input
        if isinstance(value, str):
            self.size = len(value)
            # The first message only: up to where the second one names its role.
            cut = value.find('"role"', 12)
            self.opening = value[: cut if 0 < cut < _OPENING else _OPENING]
        elif isinstance(value, list):  # already parsed: compare the first message
            self.size = len(value) * 1000
            self.opening = json_text(value[0])[:_OPENING] if value else ""
        else:
            self.size = 0
            self.opening = ""


def parse(row: Mapping[str, Any], source: SourceRef, agent_model: str | None = None) -> Session:
    session_id = row_id(row, "session_id", "trace_id")
    spans = load_json(row.get("spans"), "spans", session_id)
    if not isinstance(spans, list):
        raise BadRow("malformed_row", "column 'spans' is not a list of spans", session_id)

    models = model_names(row.get("models"))
    if not models:
        models = model_names(row.get("model"))
    calls: list[_Call] = []
    input_tokens = output_tokens = 0
    starts: list[Any] = []
    ends: list[Any] = []
    for index, span in enumerate(spans):
        if not isinstance(span, dict):
            continue
        attrs = load_json(span.get("attributes"), "attributes", session_id) or {}
        if not isinstance(attrs, dict):
            continue
        for key in ("gen_ai.request.model", "gen_ai.response.model"):
            models.extend(model_names(attrs.get(key)))
        input_tokens += as_int(attrs.get("gen_ai.usage.input_tokens")) or 0
        output_tokens += as_int(attrs.get("gen_ai.usage.output_tokens")) or 0
        start = span.get("start_time")
        end = span.get("end_time")
        if start is not None:
            starts.append(start)
        if end is not None:
            ends.append(end)
        if attrs.get(_INPUT) is None and attrs.get(_OUTPUT) is None:
            continue
        if str(span.get("type") or "").lower() in _TOOL_SPAN_TYPES:
            continue
        calls.append(_Call(index, start, attrs))
    if not calls:
        raise BadRow(
            "no_conversation",
            "no LLM-call span carries gen_ai.input.messages or gen_ai.output.messages",
            session_id,
        )

    order = _time_order([c.start for c in calls])
    calls = [calls[i] for i in order]
    opening = max(calls, key=lambda c: c.size).opening
    main = [c for c in calls if c.opening == opening]
    last = main[-1]

    messages: list[Message] = []
    system_text = _system_instructions(last.attrs.get(_SYSTEM))
    inputs, bad_inputs = _messages(last.input, "user")
    if system_text and not any(m.role == "system" for m in inputs):
        messages.append(Message("system", system_text))
    messages.extend(inputs)
    outputs, bad_outputs = _messages(last.output, "assistant")
    messages.extend(outputs)
    if not messages:
        raise BadRow("no_conversation", "the last LLM call has no messages", session_id)

    task = "" if bad_inputs else first_user_text(inputs)
    if not task and calls[0] is not last:
        # The transcript's input did not parse (or names no user): the first call's
        # input usually holds the task. Parsed only in this case.
        first_inputs, bad_first = _messages(calls[0].input, "user")
        task = "" if bad_first else first_user_text(first_inputs)
    task = task or first_user_text(inputs)
    malformed = bad_inputs + bad_outputs

    metadata: dict[str, Any] = scalar_columns(row, skip=("models", "session_id"))
    metadata.update(
        {
            "llm_calls": len(calls),
            "side_calls": len(calls) - len(main),
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
        }
    )
    if starts and ends:
        began, ended = _earliest(starts), _latest(ends)
        if began is not None and ended is not None:
            metadata["duration_s"] = round(ended - began, 3)
    if malformed:
        metadata["malformed_messages"] = malformed
    if not models and agent_model:
        models.append(agent_model)
    return Session(
        session_id=session_id,
        task=task,
        messages=tuple(messages),
        agent_models=unique(models),
        benchmark=optional_str(row.get("benchmark")),
        harness=optional_str(row.get("harness")),
        metadata=metadata,
        source=source,
    )


def _system_instructions(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return str(value)
    if isinstance(value, list):
        return "\n".join(
            text_of(p.get("content", p.get("text"))) if isinstance(p, dict) else str(p)
            for p in value
        )
    return text_of(value)


def _messages(value: Any, default_role: str) -> tuple[list[Message], int]:
    """Messages from an input/output attribute, and how many survived only as raw text."""
    if value is None:
        return [], 0
    if isinstance(value, (str, bytes)):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
            return [Message(default_role, text)], 1
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        return [Message(default_role, json_text(value))], 1
    out: list[Message] = []
    raw = 0
    for position, item in enumerate(value):
        if isinstance(item, dict):
            out.extend(_convert(item, position))
        else:
            out.append(Message(default_role, text_of(item)))
            raw += 1
    return out, raw


def _convert(message: Mapping[str, Any], position: int) -> list[Message]:
    """One OTel message ("parts" form, or plain content) -> one or more chat messages."""
    role = str(message.get("role") or "user").lower()
    role = _ROLE_ALIASES.get(role, role)
    parts = message.get("parts")
    if not isinstance(parts, list):
        return [convert_message(message, position)]

    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[ToolCall] = []
    results: list[Message] = []
    for number, part in enumerate(parts):
        if not isinstance(part, dict):
            texts.append(text_of(part))
            continue
        kind = str(part.get("type") or "text")
        if kind == "text":
            texts.append(text_of(part.get("content", part.get("text"))))
        elif kind in ("thinking", "reasoning"):
            reasoning.append(text_of(part.get("content", part.get("thinking", part.get("text")))))
        elif kind in ("tool_call", "function_call"):
            calls.append(
                ToolCall(
                    id=str(part.get("id") or f"call_{position}_{number}"),
                    name=str(part.get("name") or "unknown"),
                    arguments=json_text(part.get("arguments")),
                )
            )
        elif kind in ("tool_call_response", "tool_result", "function_call_output"):
            result = part.get("result", part.get("response", part.get("content")))
            results.append(
                Message(
                    "tool",
                    text_of(result),
                    tool_call_id=optional_str(part.get("id")),
                    is_error=bool(part.get("is_error") or part.get("error")),
                )
            )
        else:
            texts.append(f"[{kind} part]")

    out = list(results)
    text = "\n".join(t for t in texts if t)
    if role == "tool" and not results:
        out.append(Message("tool", text, tool_call_id=optional_str(message.get("tool_call_id"))))
    elif text or calls or reasoning or not results:
        out.append(
            Message(
                role if role != "tool" else "user",
                text,
                tool_calls=tuple(calls),
                reasoning="\n".join(r for r in reasoning if r) or None,
            )
        )
    return out
