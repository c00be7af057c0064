"""The normalized session: what every adapter produces and every later stage reads.

In: nothing (plain records). Out: `Session`, `Message`, `ToolCall`, `SourceRef`,
`Rejection` and the `BadRow` exception adapters raise for rows they cannot use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: Roles of the OpenAI chat shape that sessions use.
ROLES = ("system", "user", "assistant", "tool")


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool call an assistant message made, in the OpenAI shape."""

    id: str
    name: str
    #: JSON text, as OpenAI sends it; kept verbatim when the source's JSON was malformed.
    arguments: str

    def to_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message: system, user, assistant (maybe with tool calls) or tool result."""

    role: str
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    #: For role "tool": the id of the call this result answers.
    tool_call_id: str | None = None
    #: For role "tool": the tool's name when the source records it.
    name: str | None = None
    #: Reasoning the model showed (`<think>`, `reasoning_content`, thinking parts).
    reasoning: str | None = None
    #: For role "tool": the source marked this result as an error (non-zero exit code...).
    is_error: bool = False

    def to_openai(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [call.to_openai() for call in self.tool_calls]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            out["name"] = self.name
        if self.reasoning:
            out["reasoning_content"] = self.reasoning
        return out


@dataclass(frozen=True, slots=True)
class SourceRef:
    """Where a session came from: the source as given, the row's 0-based index, the format."""

    source: str
    row: int
    format: str


@dataclass(frozen=True, slots=True)
class Session:
    """One agent trace, normalized."""

    session_id: str
    #: The first user request (empty when the trace has none).
    task: str
    messages: tuple[Message, ...]
    #: Every model the session names, in the order first named (may be empty: unknown).
    agent_models: tuple[str, ...]
    benchmark: str | None
    harness: str | None
    #: Token counts, durations and the source's own scalar columns.
    metadata: Mapping[str, Any] = field(default_factory=dict)
    source: SourceRef = SourceRef("", 0, "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "task": self.task,
            "messages": [m.to_openai() for m in self.messages],
            "agent_models": list(self.agent_models),
            "benchmark": self.benchmark,
            "harness": self.harness,
            "metadata": dict(self.metadata),
            "source": {
                "source": self.source.source,
                "row": self.source.row,
                "format": self.source.format,
            },
        }


@dataclass(frozen=True, slots=True)
class Rejection:
    """A row that could not become a session, and why."""

    source: str
    row: int
    #: A short code: invalid_json, invalid_utf8, unknown_schema, no_conversation,
    #: duplicate_session_id, missing_id, malformed_row.
    reason: str
    detail: str
    session_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source, "row": self.row}
        if self.session_id is not None:
            out["session_id"] = self.session_id
        out["reason"] = self.reason
        out["detail"] = self.detail
        return out


class BadRow(Exception):
    """Raised by an adapter for a row it cannot turn into a session."""

    def __init__(self, reason: str, detail: str, session_id: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.session_id = session_id
