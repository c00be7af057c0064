"""One session as the judge reads it, and how the trace was read: for `show`.

In: a `Session` and the `JudgeRequest` rendered for it. Out: text for the terminal:
where the session came from, which message was taken as the task, which calls were
left out as side calls and why, what was replaced or counted, and the user message
the judge receives (optionally the system message too).
"""

from __future__ import annotations

from .prompt import JudgeRequest
from .sessions import Session, census
from .sessions.fidelity import MEASURES


def describe(session: Session, request: JudgeRequest, *, system: bool = False) -> str:
    reading = session.reading
    source = session.source
    lines = [
        f"session {session.session_id}",
        f"  source: {source.source}, row {source.row + 1} ({source.format})",
        f"  benchmark: {session.benchmark or 'unknown'}; harness: {session.harness or 'unknown'}"
        f"; agent models: {', '.join(session.agent_models) or 'unknown'}",
        f"  rubric: {request.rubric} {request.rubric_version}; judge body for "
        f"{request.judge_model}: about {request.prompt_tokens:,} prompt tokens",
        f"  task: {reading.task_from or 'the first user message'}",
    ]
    counts = census(session)
    noted = [f"{MEASURES[name]}: {count}" for name, count in counts.items() if count]
    if noted:
        lines.append("  read: " + "; ".join(noted))
    if request.omitted_turns or request.shortened_parts or request.redactions:
        lines.append(
            f"  budget: {request.omitted_turns} turns omitted, {request.shortened_parts} "
            f"parts shortened; {request.redactions} credentials redacted"
        )
    if request.binary_replaced:
        lines.append(f"  base64 data in text replaced by a marker: {request.binary_replaced}")
    if reading.side_calls:
        lines.append(f"  side calls left out ({len(reading.side_calls)}):")
        lines.extend(f"    - {line}" for line in reading.side_calls)
    messages = request.body["messages"]
    if system:
        lines += ["", "=" * 30 + " system message " + "=" * 30, messages[0]["content"]]
    lines += ["", "=" * 24 + " what the judge reads (user message) " + "=" * 24]
    lines.append(messages[-1]["content"])
    return "\n".join(lines)
