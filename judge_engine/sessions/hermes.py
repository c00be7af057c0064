"""Hermes ShareGPT rows (lambda/hermes-agent-reasoning-traces) -> Session.

`conversations` is a list of `{"from": system|human|gpt|tool, "value"}`. Assistant
values hold `<think>…</think>` and one or more `<tool_call>{json}</tool_call>`; tool
values hold `<tool_response>…</tool_response>`. A tag's JSON body is read as JSON, so
text inside it (a literal `</tool_response>` in a tool's output, a `<think>` in a
call's arguments) cannot end or split it; reasoning is only taken outside tool calls.
A tool call whose JSON is malformed stays in the message text, where the judge can
still read it. A response pairs with the call whose id it names (`tool_call_id`),
else with the oldest call still waiting for its result.

The dataset names no model per row: the agent model is the hub config (`kimi`,
`glm-5.1`) when loaded from the hub, else `--agent-model`, else unknown.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Mapping
from typing import Any

from ._common import facts, json_text, load_json, model_names, optional_str, row_id, scalar_columns
from .model import BadRow, Hints, Message, Session, SourceRef, ToolCall

FORMAT = "hermes"

_THINK = re.compile(r"<think>(.*?)(?:</think>|\Z)", re.DOTALL)
_DECODER = json.JSONDecoder()
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
            for body, named in _tagged(text, "tool_response") or [(text, None)]:
                call_id = named if named in pending else None
                if call_id is not None:
                    pending.remove(call_id)
                elif pending:
                    call_id = pending.popleft()
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
    known = facts(metadata)
    return Session(
        session_id=session_id,
        task=first_user or task_column or "",
        messages=tuple(messages),
        agent_models=tuple(models),
        benchmark=optional_str(row.get("benchmark")),
        harness=optional_str(row.get("harness")) or "hermes-agent",
        metadata=metadata,
        source=source,
        label=known.label,
        agent_usage=known.usage,
        agent_cost_usd=known.cost_usd,
    )


def _json_body(text: str, start: int, close: str) -> tuple[Any, int] | None:
    """The JSON value right after `start` and the end of its closing tag, when the text
    there is JSON followed by `close`; None otherwise."""
    position = start
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    if position >= len(text) or text[position] not in "{[":
        return None
    try:
        value, end = _DECODER.raw_decode(text, position)
    except (json.JSONDecodeError, RecursionError):
        return None
    rest = text[end:]
    stripped = rest.lstrip()
    if not stripped.startswith(close):
        return None
    return value, end + (len(rest) - len(stripped)) + len(close)


def _tagged(text: str, tag: str) -> list[tuple[str, str | None]]:
    """Every `<tag>...</tag>` body in order, with the call id a JSON body names.

    A JSON body ends where its JSON ends; another body ends at the last closing tag
    before the next opening one (or the end), so a closing tag inside it does not cut it.
    """
    opening, closing = f"<{tag}>", f"</{tag}>"
    out: list[tuple[str, str | None]] = []
    position = text.find(opening)
    while position != -1:
        start = position + len(opening)
        parsed = _json_body(text, start, closing)
        if parsed is not None:
            value, end = parsed
            body = text[start : end - len(closing)]
            named = value.get("tool_call_id", value.get("id")) if isinstance(value, dict) else None
            out.append((body, str(named) if named is not None else None))
            position = text.find(opening, end)
            continue
        following = text.find(opening, start)
        limit = following if following != -1 else len(text)
        close = text.rfind(closing, start, limit)
        end = close if close != -1 else limit
        out.append((text[start:end], None))
        position = following
    return out


def _assistant(text: str, number: int) -> tuple[Message, int]:
    """Split an assistant value into reasoning, tool calls and the remaining text."""
    calls: list[ToolCall] = []
    malformed = 0
    kept: list[str] = []
    position = 0
    opening, closing = "<tool_call>", "</tool_call>"
    while (found := text.find(opening, position)) != -1:
        kept.append(text[position:found])
        start = found + len(opening)
        parsed = _json_body(text, start, closing)
        call = None
        if parsed is not None:
            value, end = parsed
            call = _tool_call(value, f"call_{number}_{len(calls) + 1}")
        else:
            close = text.find(closing, start)
            end = close + len(closing) if close != -1 else len(text)
        if call is None:
            malformed += 1
            kept.append(text[found:end])  # keep the malformed call as text
        else:
            calls.append(call)
        position = end
    kept.append(text[position:])
    rest = "".join(kept)
    reasoning = "\n".join(part.strip() for part in _THINK.findall(rest)) or None
    content = _THINK.sub("", rest).strip()
    return Message("assistant", content, tool_calls=tuple(calls), reasoning=reasoning), malformed


def _tool_call(data: Any, call_id: str) -> ToolCall | None:
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return None
    named = data.get("id")
    return ToolCall(
        id=str(named) if isinstance(named, (str, int)) and named != "" else call_id,
        name=data["name"],
        arguments=json_text(data.get("arguments")),
    )
