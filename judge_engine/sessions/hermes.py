"""Hermes ShareGPT rows (lambda/hermes-agent-reasoning-traces) -> Session.

`conversations` is a list of `{"from": system|human|gpt|tool, "value"}`. Assistant
values hold `<think>…</think>` and one or more `<tool_call>{json}</tool_call>`; tool
values hold `<tool_response>…</tool_response>`. A tool call whose JSON is malformed
stays in the message text, where the judge can still read it.

The dataset names no model per row: the agent model is the hub config (`kimi`,
`glm-5.1`) when loaded from the hub, else `--agent-model`, else unknown.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Mapping
from typing import Any

import orjson

from ._common import json_text, load_json, model_names, optional_str, row_id, scalar_columns
from .model import BadRow, Hints, Message, Session, SourceRef, ToolCall

FORMAT = "hermes"

_THINK = re.compile(r"<think>(.*?)(?:</think>|\Z)", re.DOTALL)
_TOOL_CALL = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.DOTALL)
_TOOL_RESPONSE = re.compile(r"<tool_response>(.*?)(?:</tool_response>|\Z)", re.DOTALL)
_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "tool": "tool",
    "function": "tool",
    "observation": "tool",
}


def matches(row: Mapping[str, Any]) -> bool:
    return "conversations" in row


def parse(row: Mapping[str, Any], source: SourceRef, hints: Hints) -> Session:
    session_id = row_id(row, "id", "session_id", "trace_id")
    turns = load_json(row.get("conversations"), "conversations", session_id)
    if not isinstance(turns, list):
        raise BadRow("malformed_row", "column 'conversations' is not a list", session_id)

    messages: list[Message] = []
    pending: deque[str] = deque()  # ids of tool calls still waiting for their result
    malformed_calls = 0
    for number, turn in enumerate(turns):
        if not isinstance(turn, dict):
            continue
        role = _ROLES.get(str(turn.get("from") or turn.get("role") or "").lower(), "user")
        value = turn.get("value", turn.get("content"))
        text = value if isinstance(value, str) else json_text(value)
        if role == "assistant":
            message, bad = _assistant(text, number)
            malformed_calls += bad
            pending.extend(call.id for call in message.tool_calls)
            messages.append(message)
        elif role == "tool":
            for body in _TOOL_RESPONSE.findall(text) or [text]:
                call_id = pending.popleft() if pending else None
                messages.append(Message("tool", body.strip(), tool_call_id=call_id))
        else:
            messages.append(Message(role, text))
    if not messages:
        raise BadRow("no_conversation", "the conversation is empty", session_id)

    models = [hints.hub_config] if hints.hub_config else []
    if not models and hints.agent_model:
        models.append(hints.agent_model)
    if not models:
        models = model_names(row.get("model"))
    task_column = optional_str(row.get("task"))
    first_user = next((m.content for m in messages if m.role == "user" and m.content.strip()), "")
    metadata: dict[str, Any] = scalar_columns(row, skip=("id",))
    if malformed_calls:
        metadata["malformed_tool_calls"] = malformed_calls
    return Session(
        session_id=session_id,
        task=first_user or task_column or "",
        messages=tuple(messages),
        agent_models=tuple(models),
        benchmark=optional_str(row.get("benchmark")),
        harness=optional_str(row.get("harness")) or "hermes-agent",
        metadata=metadata,
        source=source,
    )


def _assistant(text: str, number: int) -> tuple[Message, int]:
    """Split an assistant value into reasoning, tool calls and the remaining text."""
    reasoning = "\n".join(part.strip() for part in _THINK.findall(text)) or None
    rest = _THINK.sub("", text)
    calls: list[ToolCall] = []
    malformed = 0
    kept: list[str] = []
    position = 0
    for match in _TOOL_CALL.finditer(rest):
        kept.append(rest[position : match.start()])
        position = match.end()
        call = _tool_call(match.group(1), f"call_{number}_{len(calls) + 1}")
        if call is None:
            malformed += 1
            kept.append(match.group(0))  # keep the malformed call as text
        else:
            calls.append(call)
    kept.append(rest[position:])
    content = "".join(kept).strip()
    return Message("assistant", content, tool_calls=tuple(calls), reasoning=reasoning), malformed


def _tool_call(body: str, call_id: str) -> ToolCall | None:
    try:
        data = orjson.loads(body.strip())
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return None
    return ToolCall(id=call_id, name=data["name"], arguments=json_text(data.get("arguments")))
