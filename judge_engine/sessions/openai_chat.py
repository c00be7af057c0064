"""Generic OpenAI chat rows -> Session.

A row: `{"id", "messages": [...], "metadata": {...}}` with optional `model`,
`benchmark` and `harness` (at the top level or inside `metadata`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._common import (
    first_user_text,
    json_text,
    load_json,
    model_names,
    optional_str,
    row_id,
    scalar_columns,
    text_of,
    unique,
)
from .model import BadRow, Message, Session, SourceRef, ToolCall

FORMAT = "openai"

_ROLE_ALIASES = {"developer": "system", "function": "tool", "human": "user", "ai": "assistant"}


def matches(row: Mapping[str, Any]) -> bool:
    return "messages" in row


def convert_message(message: Mapping[str, Any], position: int = 0) -> Message:
    """One OpenAI-shape message (content string or content blocks) -> Message."""
    role = str(message.get("role") or "user").lower()
    role = _ROLE_ALIASES.get(role, role)
    calls = []
    raw_calls = message.get("tool_calls")
    if isinstance(raw_calls, list):
        for number, call in enumerate(raw_calls):
            if not isinstance(call, dict):
                continue
            function = call.get("function")
            if not isinstance(function, dict):
                function = call
            calls.append(
                ToolCall(
                    id=str(call.get("id") or f"call_{position}_{number}"),
                    name=str(function.get("name") or "unknown"),
                    arguments=json_text(function.get("arguments")),
                )
            )
    legacy = message.get("function_call")
    if isinstance(legacy, dict):
        calls.append(
            ToolCall(
                id=f"call_{position}_legacy",
                name=str(legacy.get("name") or "unknown"),
                arguments=json_text(legacy.get("arguments")),
            )
        )
    reasoning = message.get("reasoning_content", message.get("reasoning"))
    return Message(
        role,
        text_of(message.get("content")),
        tool_calls=tuple(calls),
        tool_call_id=optional_str(message.get("tool_call_id")),
        name=optional_str(message.get("name")) if role == "tool" else None,
        reasoning=text_of(reasoning) or None,
    )


def parse(row: Mapping[str, Any], source: SourceRef, agent_model: str | None = None) -> Session:
    session_id = row_id(row, "id", "session_id", "trace_id")
    raw = load_json(row.get("messages"), "messages", session_id)
    if not isinstance(raw, list):
        raise BadRow("malformed_row", "column 'messages' is not a list", session_id)
    messages = [
        convert_message(item, position)
        for position, item in enumerate(raw)
        if isinstance(item, dict)
    ]
    if not messages:
        raise BadRow("no_conversation", "the row has no messages", session_id)

    meta = load_json(row.get("metadata"), "metadata", session_id)
    if not isinstance(meta, dict):
        meta = {}
    models = model_names(row.get("model")) + model_names(row.get("models"))
    models += model_names(meta.get("model")) + model_names(meta.get("agent_model"))
    if not models and agent_model:
        models.append(agent_model)
    metadata: dict[str, Any] = scalar_columns(row, skip=("id", "metadata", "model", "models"))
    metadata.update(scalar_columns(meta))
    return Session(
        session_id=session_id,
        task=first_user_text(messages),
        messages=tuple(messages),
        agent_models=unique(models),
        benchmark=optional_str(row.get("benchmark")) or optional_str(meta.get("benchmark")),
        harness=optional_str(row.get("harness")) or optional_str(meta.get("harness")),
        metadata=metadata,
        source=source,
    )
