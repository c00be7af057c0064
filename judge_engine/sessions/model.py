"""The normalized session: what every adapter produces and every later stage reads.

In: nothing (plain records). Out: `Session`, `Message`, `ToolCall`, `SourceRef`,
`Hints`, `Reading` (how the adapter read the trace), `Rejection` and the `BadRow` exception
adapters raise for rows they cannot use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..models import canonical_model

#: Roles of the OpenAI chat shape that sessions use, and "event": something the trace
#: records that no participant said (a failed call, a restarted conversation).
ROLES = ("system", "user", "assistant", "tool", "event")
#: The role of trace events in `Message`.
EVENT = "event"


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
    """Where a session came from: the source as given, the row's 0-based index, the
    format, and a fingerprint of the row's content (a checksum of its bytes: a session
    graded before whose row has changed since is told apart by it)."""

    source: str
    row: int
    format: str
    fingerprint: str = ""


@dataclass(frozen=True, slots=True)
class Hints:
    """What the user or the source says of rows that do not say it themselves."""

    #: The agent model for rows that name none (`--agent-model`).
    agent_model: str | None = None
    #: The hub config a row came from (Hermes names its model by config).
    hub_config: str | None = None
    #: The benchmark of rows that name none (`--benchmark`).
    benchmark: str | None = None
    #: Where to read the benchmark of rows that name none (`--benchmark-from`).
    benchmark_from: str | None = None


@dataclass(frozen=True, slots=True)
class Reading:
    """How an adapter read a trace: what `show` explains and `sessions` counts.

    Every count is of something the judge would otherwise have been misled by, or that
    was replaced so it would not be: a user sees at a glance whether a trace was read well.
    """

    #: Where the task was taken from, in words ("call 2 of 9, user message 4; ...").
    task_from: str = ""
    #: One line per call left out of the transcript as a side call: which call and why.
    side_calls: tuple[str, ...] = ()
    #: LLM calls the trace records as failed (status ERROR or `error.type`).
    failed_calls: int = 0
    #: Binary parts (images, audio, files, base64 runs) replaced by a marker.
    binary_parts: int = 0
    #: Parts of an unknown type with no text, shown as a marker with type and size.
    unknown_parts: int = 0
    #: Messages the trace records with nothing in them (no text, call or result).
    empty_messages: int = 0
    #: Conversations of the agent after the first one (compaction, a new attempt).
    restarts: int = 0
    #: The agent's last call failed: the transcript ends with that failure's event.
    ended_with_failure: bool = False


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
    reading: Reading = Reading()
    #: The source's own verdict on the run (0/1), when it has one (Exgentic's `success`).
    label: int | None = None
    #: The agent's own token counts, as the trace records them (input, output, total).
    agent_usage: Mapping[str, int] = field(default_factory=dict)
    #: What the agent's run cost, when the source says (USD).
    agent_cost_usd: float | None = None
    #: Where that cost came from: "column" (the source's own cost column), "spans" (the
    #: sum of its spans' cost attributes); None when it says nothing.
    agent_cost_from: str | None = None
    #: The model the session is grouped by (`models.main_model`): the canonical name
    #: that made the most of the agent's calls; None when no call names a model.
    agent_model: str | None = None
    #: `llm_calls` of a session whose messages were left out (`without_messages`).
    calls_counted: int | None = None

    @property
    def llm_calls(self) -> int:
        """The agent's LLM calls the transcript shows: its assistant messages."""
        if self.calls_counted is not None:
            return self.calls_counted
        return sum(1 for message in self.messages if message.role == "assistant")

    def without_messages(self) -> Session:
        """The session as planning and records need it, its messages left out (a
        worker process rendered them already): small to hand between processes."""
        return replace(self, messages=(), calls_counted=self.llm_calls)

    @property
    def other_models(self) -> tuple[str, ...]:
        """The session's other models, canonical, for grouping's "also" lists."""
        names = {canonical_model(m) for m in self.agent_models}
        return tuple(sorted(n for n in names if n and n != self.agent_model))

    def to_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "task": self.task,
            "messages": [m.to_openai() for m in self.messages],
            "agent_models": list(self.agent_models),
            "benchmark": self.benchmark,
            "harness": self.harness,
            "metadata": dict(self.metadata),
            "label": self.label,
            "agent_usage": dict(self.agent_usage),
            "agent_cost_usd": self.agent_cost_usd,
            "agent_cost_from": self.agent_cost_from,
            "agent_model": self.agent_model,
            "source": {
                "source": self.source.source,
                "row": self.source.row,
                "format": self.source.format,
            },
        }


@dataclass(frozen=True, slots=True)
class Known:
    """A row the caller knew already (byte for byte, by its fingerprint): not parsed.
    A resumed run meets every row it graded before this way."""

    source: str
    row: int
    fingerprint: str
    #: The number the caller gave the row (`sources.KnownRows`).
    number: int


@dataclass(frozen=True, slots=True)
class Rejection:
    """A row that could not become a session, and why."""

    source: str
    row: int
    #: A short code: invalid_json, invalid_utf8, unknown_schema, no_conversation,
    #: duplicate_session_id, missing_id, malformed_row, row_too_large, worker_crashed.
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
