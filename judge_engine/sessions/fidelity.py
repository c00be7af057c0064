"""How well a trace was read: counts a user checks before trusting the verdicts.

In: `Session`s. Out: per-session counts (`census`) and their sums per format
(`Census`): markers left for parts of an unknown type, tool results whose call is not
shown, empty assistant turns, failed calls, side calls left out, binary parts
replaced, messages the trace recorded empty, and restarted conversations.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .model import Session

#: The counts, in the order `sessions` prints them, with what each means.
MEASURES: dict[str, str] = {
    "unknown_parts": "parts of an unknown type shown as a marker",
    "orphan_results": "tool results whose call is not shown",
    "empty_assistant": "empty assistant turns",
    "failed_calls": "failed LLM calls (shown as events)",
    "ended_with_failure": "sessions whose last call failed (said at the end)",
    "side_calls": "side calls left out",
    "binary_parts": "binary parts replaced by a marker",
    "empty_messages": "messages recorded empty (left out)",
    "restarts": "conversations restarted (compaction, new attempt)",
}


def census(session: Session) -> dict[str, int]:
    """The counts of `MEASURES` for one session."""
    called: set[str] = set()
    orphans = empty = 0
    for message in session.messages:
        if message.role == "assistant":
            called.update(call.id for call in message.tool_calls)
            if not (message.content.strip() or message.tool_calls or message.reasoning):
                empty += 1
        elif message.role == "tool" and message.tool_call_id and message.tool_call_id not in called:
            orphans += 1
    reading = session.reading
    return {
        "unknown_parts": reading.unknown_parts,
        "orphan_results": orphans,
        "empty_assistant": empty,
        "failed_calls": reading.failed_calls,
        "ended_with_failure": int(reading.ended_with_failure),
        "side_calls": len(reading.side_calls),
        "binary_parts": reading.binary_parts,
        "empty_messages": reading.empty_messages,
        "restarts": reading.restarts,
    }


@dataclass
class Census:
    """Sums of `census` per format, and how many sessions had each count above zero."""

    sessions: Counter[str] = field(default_factory=Counter)
    totals: dict[str, Counter[str]] = field(default_factory=dict)
    affected: dict[str, Counter[str]] = field(default_factory=dict)

    def add(self, session: Session) -> None:
        fmt = session.source.format
        self.sessions[fmt] += 1
        totals = self.totals.setdefault(fmt, Counter())
        affected = self.affected.setdefault(fmt, Counter())
        for name, count in census(session).items():
            totals[name] += count
            affected[name] += count > 0

    def to_dict(self) -> dict[str, dict[str, dict[str, int]]]:
        return {
            fmt: {
                name: {"total": self.totals[fmt][name], "sessions": self.affected[fmt][name]}
                for name in MEASURES
            }
            for fmt in self.sessions
        }


@dataclass
class SplitRuns:
    """Raw OTLP files whose sessions look like one agent run split into many: several
    sessions from one file, all opening on the same task, each with a longer history
    (a proxy that records every LLM call as its own trace, with no session id).
    `--session-by file` (or an attribute) makes such a file one session."""

    #: Per file: sessions, the task's digest (None once two differ), and whether the
    #: histories grew in the order read.
    files: dict[str, list[Any]] = field(default_factory=dict)

    def add(self, session: Session) -> None:
        opening = next((m.content for m in session.messages if m.role == "user"), "")
        if session.source.format != "otlp" or not opening:
            return
        digest = hash(opening)
        entry = self.files.setdefault(session.source.source, [0, digest, True, 0])
        entry[0] += 1
        if entry[1] != digest:
            entry[1] = None
        entry[2] = entry[2] and len(session.messages) >= entry[3]
        entry[3] = len(session.messages)

    def suspects(self) -> list[tuple[str, int]]:
        """(file, sessions) of the files that look split."""
        return [
            (name, count)
            for name, (count, digest, growing, _) in self.files.items()
            if count > 1 and digest is not None and growing
        ]
