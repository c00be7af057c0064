"""One session as the judge reads it, and how the trace was read: for `show`.

In: a `Session` and the `JudgeRequest` rendered for it. Out: text for the terminal:
where the session came from, which message was taken as the task, which calls were
left out as side calls and why, what was replaced or counted, and the user message
the judge receives (optionally the system message too). Or, for a results folder: a
session's kept transcript (`transcripts`) and the journal's latest records of it.
"""

from __future__ import annotations

from collections.abc import Sequence

from .journal import Record
from .prompt import JudgeRequest
from .sessions import Session, census
from .sessions.fidelity import MEASURES
from .transcripts import Transcript


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


def describe_graded(
    transcript: Transcript | None, records: Sequence[Record], session_id: str
) -> str:
    """One graded session of a results folder: where it came from, every judge's
    verdict, confidence and reasoning, and the user message the judges read (as kept
    by the run, not rendered again)."""
    lines = [f"session {session_id}"]
    if transcript is not None:
        lines.append(
            f"  source: {transcript.source}, row {transcript.row + 1} ({transcript.format})"
        )
    first = records[0] if records else None
    if first is not None:
        lines.append(
            f"  benchmark: {first.benchmark or 'unknown'}; harness: {first.harness or 'unknown'}"
            f"; agent models: {', '.join(first.agent_models) or 'unknown'}"
            + (f"; label: {first.label}" if first.label is not None else "")
        )
        lines.append(f"  rubric: {first.rubric} {first.rubric_version}")
    lines.append("")
    for record in records:
        head = f"{record.slot} ({record.judge or 'no judge'})"
        if record.status == "ok":
            lines.append(f"{head}: {record.success} ({record.confidence} confidence)")
            lines.append(f"  {record.reasoning or ''}")
        elif record.status == "skipped":
            lines.append(f"{head}: skipped by the guard")
        else:
            lines.append(f"{head}: failed: {record.error}")
    lines.append("")
    if transcript is None:
        lines.append("(this run kept no transcript of the session: graded before they were kept)")
    else:
        lines.append(f"--- what the judges read ({transcript.chars:,} characters) ---")
        lines.append(transcript.text())
    return "\n".join(lines)
