"""Generic OpenAI chat rows -> Session.

A row: `{"id", "messages": [...], "metadata": {...}}` with optional `model`,
`benchmark` and `harness` (at the top level or inside `metadata`). Messages may be in
any shape `parts` reads (chat, Responses items, Anthropic blocks, OTel parts).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import parts, preamble
from ._common import facts, load_json, model_names, optional_str, row_id, scalar_columns, unique
from .model import BadRow, Hints, Reading, Session, SourceRef

FORMAT = "openai"


def matches(row: Mapping[str, Any]) -> bool:
    return "messages" in row


def parse(row: Mapping[str, Any], source: SourceRef, hints: Hints) -> Session:
    session_id = row_id(row, "id", "session_id", "trace_id")
    raw = load_json(row.get("messages"), "messages", session_id)
    if not isinstance(raw, list):
        raise BadRow("malformed_row", "column 'messages' is not a list", session_id)
    tally = parts.Tally()
    messages = [
        message
        for position, item in enumerate(raw)
        if isinstance(item, dict)
        for message in parts.convert(item, position, tally)
    ]
    if not messages:
        raise BadRow("no_conversation", "the row has no messages", session_id)

    meta = load_json(row.get("metadata"), "metadata", session_id)
    if not isinstance(meta, dict):
        meta = {}
    models = model_names(row.get("model")) + model_names(row.get("models"))
    models += model_names(meta.get("model")) + model_names(meta.get("agent_model"))
    if not models and hints.agent_model:
        models.append(hints.agent_model)
    metadata: dict[str, Any] = scalar_columns(row, skip=("id", "metadata", "model", "models"))
    metadata.update(scalar_columns(meta))
    task = preamble.of_conversation(messages)
    reading = Reading(
        task_from=f"message {task.index + 1} of {len(messages)}" if task.index >= 0 else "",
        binary_parts=tally.binary,
        unknown_parts=tally.unknown,
    )
    known = facts(metadata)
    return Session(
        session_id=session_id,
        task=task.text,
        messages=tuple(messages),
        agent_models=unique(models),
        benchmark=optional_str(row.get("benchmark")) or optional_str(meta.get("benchmark")),
        harness=optional_str(row.get("harness")) or optional_str(meta.get("harness")),
        metadata=metadata,
        source=source,
        label=known.label,
        agent_usage=known.usage,
        agent_cost_usd=known.cost_usd,
        reading=reading,
    )
