"""OTel GenAI spans (the Exgentic agent-llm-traces rows, and raw OTLP via `otlp`) -> Session.

In: one row: `session_id` (or `trace_id`), `spans` (name, ids, times, status,
attributes with `gen_ai.input.messages` / `gen_ai.output.messages`), and the source's
own columns (`benchmark`, `harness`, `models`, ...). Out: a `Session` whose transcript
is the agent's own conversation, chosen among all the trace's LLM calls by the rule in
`conversation` (threads, the main thread, side calls, failed calls in place).

Spans are taken in start-time order when every call has a start time, else (and on
equal times) in the order the source lists them. The session's agent models are those
of the agent's own calls, and any model the row's `models` column declares that no
call names; models only side calls use go to metadata (`side_call_models`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ..models import main_model
from . import conversation
from ._common import (
    as_int,
    facts,
    load_json,
    model_names,
    optional_str,
    parse_time,
    row_id,
    scalar_columns,
    span_cost,
    unique,
)
from .model import BadRow, Hints, Session, SourceRef

FORMAT = "otel"

_INPUT = "gen_ai.input.messages"
_OUTPUT = "gen_ai.output.messages"
_SYSTEM = "gen_ai.system_instructions"
#: Span types and operations that record a tool execution rather than an LLM call.
_TOOL_SPAN_TYPES = frozenset({"tool_call", "tool", "execute_tool", "tool_execution"})
#: Operations of an LLM call (a failed call may record nothing else).
_LLM_OPERATIONS = frozenset(
    {"chat", "text_completion", "generate_content", "completion", "responses", "invoke_agent"}
)
_ERROR_CODES = frozenset({"2", "error", "status_code_error"})


def matches(row: Mapping[str, Any]) -> bool:
    return "spans" in row and ("session_id" in row or "trace_id" in row)


def _uniform_iso(values: list[Any]) -> bool:
    """Whether ISO timestamps share one layout, so that they sort as strings (the
    common case: one exporter wrote them all) and need not each be parsed."""
    if not values or not all(isinstance(v, str) for v in values):
        return False
    first = values[0]
    return all(len(v) == len(first) and v[-1:] == first[-1:] for v in values)


def _time_order(values: list[Any]) -> list[int]:
    """Indexes of `values` (start times) in time order, file order on ties; file order
    alone when any time is missing."""
    if _uniform_iso(values):
        return sorted(range(len(values)), key=lambda i: (values[i], i))
    parsed = [parse_time(v) for v in values]
    if any(t is None for t in parsed):
        return list(range(len(values)))
    return sorted(range(len(values)), key=lambda i: (parsed[i] or 0.0, i))


def _bounds(starts: list[Any], ends: list[Any]) -> float | None:
    if not starts or not ends:
        return None
    if _uniform_iso(starts) and _uniform_iso(ends):
        began, ended = parse_time(min(starts)), parse_time(max(ends))
    else:
        first = [t for t in map(parse_time, starts) if t is not None]
        last = [t for t in map(parse_time, ends) if t is not None]
        began, ended = (min(first), max(last)) if first and last else (None, None)
    if began is None or ended is None:
        return None
    return round(ended - began, 3)


def _raw(value: Any) -> str:
    """An attribute holding messages, as JSON text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        return str(value)


def _failure(span: Mapping[str, Any], attrs: Mapping[str, Any]) -> str | None:
    """'Type: message' when the span records a failure, else None."""
    status = span.get("status")
    if (
        isinstance(status, dict)
        and status.get("code") in (1, 0, "1", "0", "OK", "STATUS_CODE_OK", "UNSET", None)
        and "error.type" not in attrs
        and not span.get("events")
    ):
        return None  # the common case, decided without a look at the rest
    code = status.get("code") if isinstance(status, Mapping) else status
    status_message = status.get("message") if isinstance(status, Mapping) else None
    kind = optional_str(attrs.get("error.type"))
    message = optional_str(attrs.get("error.message")) or optional_str(status_message)
    events = span.get("events")
    for event in events if isinstance(events, list) else []:
        event_attrs = event.get("attributes") if isinstance(event, Mapping) else None
        if isinstance(event_attrs, Mapping) and event.get("name") == "exception":
            kind = kind or optional_str(event_attrs.get("exception.type"))
            message = message or optional_str(event_attrs.get("exception.message"))
    if str(code).lower() not in _ERROR_CODES and kind is None:
        return None
    kind = kind or "error"
    if message is None:
        return kind
    message = " ".join(message.split())
    return message if kind in message[: len(kind) + 40] else f"{kind}: {message}"


def _is_tool_span(span: Mapping[str, Any], attrs: Mapping[str, Any]) -> bool:
    kind = str(span.get("type") or "").lower()
    operation = str(attrs.get("gen_ai.operation.name") or "").lower()
    return kind in _TOOL_SPAN_TYPES or operation in _TOOL_SPAN_TYPES


def parse(row: Mapping[str, Any], source: SourceRef, hints: Hints) -> Session:
    session_id = row_id(row, "session_id", "trace_id")
    spans = load_json(row.get("spans"), "spans", session_id)
    if not isinstance(spans, list):
        raise BadRow("malformed_row", "column 'spans' is not a list of spans", session_id)

    found: list[tuple[Any, conversation.Call]] = []
    known_models: dict[tuple[Any, Any], tuple[str, ...]] = {}
    input_tokens = output_tokens = 0
    #: What the spans say the calls cost (None: no span says).
    spans_cost: float | None = None
    starts: list[Any] = []
    ends: list[Any] = []
    for position, span in enumerate(spans):
        if not isinstance(span, dict):
            continue
        attrs = load_json(span.get("attributes"), "attributes", session_id) or {}
        if not isinstance(attrs, dict):
            continue
        input_tokens += (
            as_int(attrs.get("gen_ai.usage.input_tokens"))
            or as_int(attrs.get("gen_ai.usage.prompt_tokens"))
            or 0
        )
        output_tokens += (
            as_int(attrs.get("gen_ai.usage.output_tokens"))
            or as_int(attrs.get("gen_ai.usage.completion_tokens"))
            or 0
        )
        cost = span_cost(attrs)
        if cost is not None:
            spans_cost = (spans_cost or 0.0) + cost
        start, end = span.get("start_time"), span.get("end_time")
        if start is not None:
            starts.append(start)
        if end is not None:
            ends.append(end)
        if _is_tool_span(span, attrs):
            continue
        error = _failure(span, attrs)
        has_messages = attrs.get(_INPUT) is not None or attrs.get(_OUTPUT) is not None
        is_llm = (
            attrs.get("gen_ai.request.model") is not None
            or str(attrs.get("gen_ai.operation.name") or "").lower() in _LLM_OPERATIONS
        )
        if not has_messages and not (error is not None and is_llm):
            continue
        pair = (attrs.get("gen_ai.request.model"), attrs.get("gen_ai.response.model"))
        call_models = known_models.get(pair) if isinstance(pair[0], str) else None
        if call_models is None:
            call_models = unique(model_names(pair[0]) + model_names(pair[1]))
            if isinstance(pair[0], str) and (pair[1] is None or isinstance(pair[1], str)):
                known_models[pair] = call_models  # a trace's spans name the same few models
        where = span.get("line")
        place = f"line {int(where) + 1}" if isinstance(where, int) else f"span {position + 1}"
        call = conversation.Call(
            index=0,
            label=f"{span.get('name') or 'span'!s:.60}, {place}",
            raw_input=_raw(attrs.get(_INPUT)),
            raw_output=_raw(attrs.get(_OUTPUT)),
            raw_system=_raw(attrs.get(_SYSTEM)),
            models=call_models,
            failed=error is not None,
            error=error or "",
            span_id=optional_str(span.get("span_id")),
            parent_id=optional_str(span.get("parent_span_id", span.get("parent_id"))),
        )
        found.append((start, call))
    if not found:
        raise BadRow(
            "no_conversation",
            "no LLM-call span carries gen_ai.input.messages or gen_ai.output.messages",
            session_id,
        )
    calls = [found[i][1] for i in _time_order([start for start, _ in found])]
    for index, call in enumerate(calls):
        call.index = index
    read = conversation.read(calls)
    if read is None or not read.messages:
        raise BadRow("no_conversation", "no LLM call of the trace has messages", session_id)

    # The agent's calls name its models. A model the source's own column declares
    # that no call of the trace names is kept too (its role is unknown: the guard
    # errs on the safe side); one that only side calls use is not the agent's.
    seen = {m for call in calls for m in call.models}
    declared = model_names(row.get("models")) + model_names(row.get("model"))
    models = list(read.agent_models) + [m for m in declared if m not in seen]
    if not models and hints.agent_model:
        models.append(hints.agent_model)
    metadata: dict[str, Any] = scalar_columns(row, skip=("session_id",))
    metadata.update(
        {
            "llm_calls": len(calls),
            "side_calls": read.side_calls,
            "failed_calls": read.reading.failed_calls,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
        }
    )
    if read.side_models:
        metadata["side_call_models"] = list(read.side_models)
    duration = _bounds(starts, ends)
    if duration is not None:
        metadata["duration_s"] = duration
    if read.malformed:
        metadata["malformed_messages"] = read.malformed
    known = facts(metadata)
    return Session(
        session_id=session_id,
        task=read.task,
        messages=tuple(read.messages),
        agent_models=unique(models),
        benchmark=optional_str(row.get("benchmark")),
        harness=optional_str(row.get("harness")),
        metadata=metadata,
        source=source,
        label=known.label,
        agent_usage=known.usage,
        agent_cost_usd=known.cost_usd if known.cost_usd is not None else spans_cost,
        agent_cost_from="column"
        if known.cost_usd is not None
        else ("spans" if spans_cost is not None else None),
        agent_model=main_model(read.model_calls or models)[0],
        reading=read.reading,
    )
