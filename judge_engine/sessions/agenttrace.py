"""AgentTrace rows (pagarsky/agent-trace; raw JSONL or the hub's Parquet) -> Session.

A row holds the task `prompt`, the model's `llm_steps` (visible output, reasoning,
parsed tool calls, token counts) and the tool executions as `spans` (input, output,
exit code, telemetry). The hub's Parquet form carries the same as the JSON strings
`spans_json`, `llm_steps_json` and `metadata_json`.

The release has no call id joining a step's tool calls to the spans, so they are
interleaved in order: each tool call takes the next span (spans sorted by start time).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._common import (
    as_int,
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
    queue = sorted(
        enumerate(spans),
        key=lambda item: (as_int(item[1].get("start_ns")) or 0, item[0]),
    )
    next_span = 0
    input_tokens = output_tokens = 0
    for number, step in enumerate(steps, start=1):
        input_tokens += as_int(step.get("input_tokens", step.get("prompt_tokens"))) or 0
        output_tokens += as_int(step.get("output_tokens", step.get("completion_tokens"))) or 0
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
                        arguments=json_text(spec.get("arguments")),
                    )
                )
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
            if next_span >= len(queue):
                break
            messages.append(_tool_message(queue[next_span][1], call.id))
            next_span += 1
    # Tool executions no step asked for (or more than the steps named) stay visible.
    for _, span in queue[next_span:]:
        messages.append(_tool_message(span, None))

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
    return Session(
        session_id=session_id,
        task=prompt,
        messages=tuple(messages),
        agent_models=unique(models),
        benchmark=benchmark.lower() if benchmark else None,
        harness=optional_str(meta.get("harness")) or optional_str(row.get("harness")),
        metadata=metadata,
        source=source,
    )


def _tool_message(span: Mapping[str, Any], call_id: str | None) -> Message:
    output = text_of(span.get("tool_output"))
    code = as_int(span.get("exit_code"))
    if code not in (None, 0):
        output = f"{output}\n[exit code {code}]" if output else f"[exit code {code}]"
    if call_id is None:
        # No call asked for this execution: show what ran.
        output = f"(input: {text_of(span.get('tool_input'))})\n{output}"
    return Message(
        "tool",
        output,
        tool_call_id=call_id,
        name=optional_str(span.get("tool_name")),
        is_error=code not in (None, 0),
    )
