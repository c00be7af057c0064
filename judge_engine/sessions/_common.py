"""Small helpers the adapters share: JSON text, timestamps, ids and models."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson

from . import parts
from .model import BadRow
from .parts import json_text

__all__ = ["json_text", "text_of"]

#: Row columns never copied into session metadata (they are the conversation itself).
BULKY_COLUMNS = frozenset(
    {
        "spans",
        "spans_json",
        "llm_steps",
        "llm_steps_json",
        "conversations",
        "messages",
        "tools",
        "prompt",
    }
)


def text_of(value: Any) -> str:
    """Readable text of a content value: a string, blocks or parts, or anything JSON."""
    return parts.text_of(value)


def load_json(value: Any, column: str, session_id: str | None = None) -> Any:
    """A column that may hold JSON text or the already-parsed value."""
    if isinstance(value, (str, bytes)):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise BadRow(
                "malformed_row", f"column {column!r} is not valid JSON: {exc}", session_id
            ) from None
    return value


def row_id(row: Mapping[str, Any], *columns: str) -> str:
    """The row's own id from the first non-empty column, as a string."""
    for column in columns:
        value = row.get(column)
        if value is not None and not isinstance(value, (dict, list)):
            text = str(value).strip()
            if text:
                return text
    raise BadRow("missing_id", f"no id in column(s) {', '.join(columns)}")


def parse_time(value: Any) -> float | None:
    """Seconds since the epoch from an ISO string or a number (s, ms, us or ns)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
        if not math.isfinite(number):
            return None
        # Epoch values this large are finer than seconds: scale to seconds.
        while abs(number) > 1e11:
            number /= 1000.0
        return number
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return moment.timestamp()
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Python 3.10 reads at most 6 fractional digits; OTel exporters write 9.
    dot = text.find(".")
    if dot != -1:
        end = dot + 1
        while end < len(text) and text[end].isdigit():
            end += 1
        text = text[: dot + 1] + text[dot + 1 : end][:6].ljust(6, "0") + text[end:]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def as_int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    if isinstance(value, str):
        try:
            return int(float(value))
        except ValueError:
            return None
    return None


def model_names(value: Any) -> list[str]:
    """Model names from a column holding a string, a JSON list, a list or a comma list."""
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                return model_names(orjson.loads(text))
            except orjson.JSONDecodeError:
                pass
        return [part.strip() for part in text.split(",") if part.strip()]
    if isinstance(value, (list, tuple)):
        names: list[str] = []
        for item in value:
            names.extend(model_names(item))
        return names
    return [str(value)]


def unique(items: Iterable[str]) -> tuple[str, ...]:
    """Items in first-seen order without repeats or blanks."""
    seen: dict[str, None] = {}
    for item in items:
        if item and item not in seen:
            seen[item] = None
    return tuple(seen)


def scalar_columns(row: Mapping[str, Any], skip: Iterable[str] = ()) -> dict[str, Any]:
    """The row's own columns worth carrying as metadata: everything but the bulky ones."""
    skipped = BULKY_COLUMNS.union(skip)
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key in skipped:
            continue
        if isinstance(value, (str, int, float, bool)) or value is None:
            out[str(key)] = value
        elif isinstance(value, datetime):
            out[str(key)] = value.isoformat()
        elif isinstance(value, (list, dict)) and len(json_text(value)) <= 2000:
            out[str(key)] = value
    return out


def optional_str(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    return text or None


#: Columns that hold the source's own 0/1 verdict on a run, and its cost, in that order.
LABEL_COLUMNS = ("success", "label", "resolved", "passed")
COST_COLUMNS = ("agent_cost", "cost_usd", "total_cost")


#: Span attributes that carry what a call cost (USD): OTel GenAI as LiteLLM writes it,
#: the usage form, LiteLLM's own callback field.
SPAN_COST_ATTRIBUTES = ("gen_ai.cost.total_cost", "gen_ai.usage.cost", "response_cost")


def span_cost(attrs: Mapping[str, Any]) -> float | None:
    """What one span says its call cost, or None."""
    for name in SPAN_COST_ATTRIBUTES:
        value = attrs.get(name)
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                continue
        if isinstance(value, (int, float)) and _number(value):
            return float(value)
    return None


@dataclass(frozen=True, slots=True)
class Facts:
    """What later stages read of a session besides its conversation."""

    label: int | None
    usage: dict[str, int]
    cost_usd: float | None


def facts(metadata: Mapping[str, Any]) -> Facts:
    """The label, the agent's token usage and its cost, from a session's metadata: the
    first label column holding 0/1 (or a boolean), the token counts, the first cost
    column holding a number."""
    label = None
    for column in LABEL_COLUMNS:
        value = metadata.get(column)
        if isinstance(value, (bool, int)) and value in (0, 1):
            label = int(value)
            break
    usage = {
        name: int(metadata[name])
        for name in ("input_tokens", "output_tokens", "total_tokens")
        if _number(metadata.get(name))
    }
    if "total_tokens" not in usage and {"input_tokens", "output_tokens"} <= set(usage):
        usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
    cost = next((float(metadata[c]) for c in COST_COLUMNS if _number(metadata.get(c))), None)
    return Facts(label, usage, cost)


def _number(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )
