"""Raw OTLP/JSON (an OpenTelemetry Collector's file exporter) -> OTel session rows.

In: decoded lines, each one `ExportTraceServiceRequest` (`resourceSpans` ->
`scopeSpans` -> `spans`, attributes as typed key/value pairs, unix-nanosecond times).
Out: one row per session in the layout `otel` reads (`session_id`, `spans` with
`name`, `span_id`, `trace_id`, `parent_span_id`, `start_time`, `end_time`, `status`,
`attributes`, `events`), and `Rejection`s for what cannot be grouped.

Which spans make one session (`session_by`, the `--session-by` option):
- by default ("auto"), spans that carry `session.id` or `gen_ai.conversation.id` (on
  the span or its resource) form one session per such id, across traces, lines and
  files; otherwise one session per trace id; spans with neither (exports that dropped
  their ids) form one session per file, named after the file;
- "trace": one session per trace id, whatever session ids the spans carry;
- "file": one session per file, named after it (a proxy that records each LLM call of
  one agent run as its own trace);
- any other value names an attribute (on the span or its resource, such as an agent
  run id): spans that carry it form one session per value; spans without it follow the
  default rule.

Memory is bounded by what is held, not by the input: a session whose spans pass the
row limit drops them and is rejected at its end (`row_too_large`); and when the
sessions still open together hold more than `max_open_bytes` (estimated: each span's
share of its line, plus a fixed cost per attribute and event), the largest is dropped
and rejected at once (`incomplete_trace`), and its later spans are rejected as late.

When a session is emitted (streaming, so memory is held by the sessions still open,
not by the file):
- a trace's session as soon as it is complete in the input: at the end of a line after
  which it has a root span (no parent) and every parent its spans name has arrived.
  Spans of a trace that arrive after it was emitted are rejected (`late_spans`);
- a file's session at the end of its file;
- a session id's session, and any trace never completed, at the end of the input.
Spans keep the order of the input; `otel` sorts them by start time (file order on
equal or missing times).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import otel
from .model import BadRow, Hints, Rejection, Session, SourceRef
from .sources import DIGEST_HEX, RawRow, fingerprint_of

FORMAT = "otlp"
_SESSION_KEYS = ("session.id", "gen_ai.conversation.id")
#: The ways spans can be grouped besides an attribute's name (`--session-by`).
GROUPINGS = ("auto", "trace", "file")
#: Estimated bytes a held span costs beyond its share of the line: per span, and per
#: attribute or event (a Python dict entry and its key and value objects).
_SPAN_COST = 400
_ITEM_COST = 120
_FILE_SUFFIXES = (".jsonl", ".ndjson", ".json", ".traces", ".spans", ".otlp", ".otel")


def matches(row: Mapping[str, Any]) -> bool:
    return "resourceSpans" in row or "resource_spans" in row


def value_of(typed: Any) -> Any:
    """An OTLP `AnyValue` (`{"stringValue": ...}`, `{"intValue": "7"}`, arrays, kv lists)
    as a plain value."""
    if not isinstance(typed, Mapping):
        return typed
    for key, item in typed.items():
        if key in ("stringValue", "string_value", "boolValue", "bool_value"):
            return item
        if key in ("intValue", "int_value"):
            try:
                return int(item)
            except (TypeError, ValueError):
                return item
        if key in ("doubleValue", "double_value"):
            try:
                return float(item)
            except (TypeError, ValueError):
                return item
        if key in ("arrayValue", "array_value"):
            values = item.get("values") if isinstance(item, Mapping) else None
            return [value_of(v) for v in values] if isinstance(values, list) else []
        if key in ("kvlistValue", "kvlist_value"):
            values = item.get("values") if isinstance(item, Mapping) else None
            return attributes(values)
        if key in ("bytesValue", "bytes_value"):
            return item
    return None


def attributes(pairs: Any) -> dict[str, Any]:
    """OTLP `KeyValue` pairs as a dict."""
    out: dict[str, Any] = {}
    for pair in pairs if isinstance(pairs, list) else []:
        if isinstance(pair, Mapping) and isinstance(pair.get("key"), str):
            out[pair["key"]] = value_of(pair.get("value"))
    return out


def _nanos(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _span(
    span: Mapping[str, Any],
    resource: Mapping[str, Any],
    line: int,
    extra_keys: tuple[str, ...] = (),
) -> dict[str, Any]:
    status = span.get("status")
    events = []
    raw_events = span.get("events")
    for event in raw_events if isinstance(raw_events, list) else []:
        if isinstance(event, Mapping):
            events.append(
                {
                    "name": event.get("name"),
                    "time": _nanos(event.get("timeUnixNano")),
                    "attributes": attributes(event.get("attributes")),
                }
            )
    attrs = attributes(span.get("attributes"))
    for key in (*_SESSION_KEYS, *extra_keys):
        if key not in attrs and key in resource:
            attrs[key] = resource[key]
    return {
        "name": span.get("name") if isinstance(span.get("name"), str) else None,
        "span_id": _text(span.get("spanId", span.get("span_id"))),
        "trace_id": _text(span.get("traceId", span.get("trace_id"))),
        "parent_span_id": _text(span.get("parentSpanId", span.get("parent_span_id"))),
        "start_time": _nanos(span.get("startTimeUnixNano", span.get("start_time_unix_nano"))),
        "end_time": _nanos(span.get("endTimeUnixNano", span.get("end_time_unix_nano"))),
        "status": dict(status) if isinstance(status, Mapping) else {},
        "attributes": attrs,
        "events": events,
        "service": resource.get("service.name"),
        "line": line,
    }


def spans_of(
    request: Mapping[str, Any], line: int, extra_keys: tuple[str, ...] = ()
) -> Iterator[dict[str, Any]]:
    """Every span of one export request, in the row layout (resource attributes named
    by `extra_keys` copied onto each span, as the session ids are)."""
    resources = request.get("resourceSpans", request.get("resource_spans"))
    for resource_spans in resources if isinstance(resources, list) else []:
        if not isinstance(resource_spans, Mapping):
            continue
        resource = resource_spans.get("resource")
        resource_attrs = (
            attributes(resource.get("attributes")) if isinstance(resource, Mapping) else {}
        )
        scopes = resource_spans.get("scopeSpans", resource_spans.get("scope_spans"))
        for scope in scopes if isinstance(scopes, list) else []:
            spans = scope.get("spans") if isinstance(scope, Mapping) else None
            for span in spans if isinstance(spans, list) else []:
                if isinstance(span, Mapping):
                    yield _span(span, resource_attrs, line, extra_keys)


def raw_size(raw: RawRow) -> int:
    """The byte size of an export line, read from its fingerprint (checksum and length)."""
    try:
        return int(raw.fingerprint[DIGEST_HEX:] or "0", 16)
    except ValueError:
        return 0


def file_session_id(source: str) -> str:
    """The session id of a file's spans that carry no id: its name, endings removed."""
    name = Path(source).name
    changed = True
    while changed:
        changed = False
        for suffix in _FILE_SUFFIXES:
            if name.lower().endswith(suffix) and len(name) > len(suffix):
                name = name[: -len(suffix)]
                changed = True
    return name or source


@dataclass
class _Group:
    key: str
    kind: str  # "session", "trace" or "file"
    source: str
    row: int
    spans: list[dict[str, Any]] = field(default_factory=list)
    span_ids: set[str] = field(default_factory=set)
    parents: set[str] = field(default_factory=set)
    roots: int = 0
    #: Bytes of export lines its spans came from (each span's share of its line).
    size: int = 0
    #: Estimated bytes its spans hold in memory (0 once they were dropped).
    held: int = 0
    #: Set once the session passed the row limit: its spans are dropped, not held.
    too_large: bool = False

    def add(self, span: dict[str, Any], share: int) -> int:
        """Add a span; the bytes it holds now."""
        self.size += share
        if self.too_large:
            return 0
        cost = share + _SPAN_COST + _ITEM_COST * (len(span["attributes"]) + len(span["events"]))
        self.held += cost
        self.spans.append(span)
        if span["span_id"]:
            self.span_ids.add(span["span_id"])
        if span["parent_span_id"]:
            self.parents.add(span["parent_span_id"])
        else:
            self.roots += 1
        return cost

    def complete(self) -> bool:
        return self.roots > 0 and self.parents <= self.span_ids

    def row_data(self) -> dict[str, Any]:
        return {"session_id": self.key, "spans": self.spans, "otlp_grouping": self.kind}


def _digest(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


class Assembler:
    """Groups the spans of OTLP export lines into sessions (the module docstring)."""

    def __init__(
        self,
        max_session_bytes: int = 1 << 62,
        *,
        max_open_bytes: int = 1 << 62,
        session_by: str = "auto",
        keep: tuple[str, ...] = (),
    ) -> None:
        self._open: dict[tuple[str, str], _Group] = {}
        self._limit = max_session_bytes
        self._open_limit = max_open_bytes
        #: Estimated bytes the open sessions hold, together.
        self._held = 0
        self._by = session_by
        #: Resource attributes copied onto every span (a grouping or benchmark attribute).
        self._extra = (*(() if session_by in GROUPINGS else (session_by,)), *keep)
        #: Sessions already emitted or dropped, as 64-bit hashes: 8 bytes a session.
        self._done: set[int] = set()

    def _key(self, span: dict[str, Any], source: str) -> tuple[str, str]:
        """Which session a span joins, by the grouping rule."""
        attrs = span["attributes"]
        by = self._by
        if by == "file":
            return ("file", source)
        if by != "auto" and by != "trace":
            value = attrs.get(by)
            if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
                return ("session", str(value))
        if by != "trace":
            session = next(
                (_text(attrs.get(k)) for k in _SESSION_KEYS if _text(attrs.get(k))), None
            )
            if session is not None:
                return ("session", session)
        if span["trace_id"]:
            return ("trace", span["trace_id"])
        return ("file", source)

    def add(self, raw: RawRow) -> Iterator[RawRow | Rejection]:
        """One decoded export line: the sessions it completes, in order. A line whose
        spans cannot be read (a value of a shape OTLP does not allow) is rejected
        whole, before any of its spans joins a session."""
        touched: dict[tuple[str, str], _Group] = {}
        late: dict[str, int] = {}
        count = 0
        try:
            spans = list(spans_of(raw.data, raw.row, self._extra))
        except Exception as exc:  # a malformed line is that line's rejection, never the run's
            yield Rejection(
                raw.source,
                raw.row,
                "malformed_row",
                f"an OTLP span or attribute of an unexpected shape: {type(exc).__name__}: {exc}"[
                    :500
                ],
            )
            return
        share = raw_size(raw) // max(1, len(spans))  # each span's part of its line
        for span in spans:
            count += 1
            key = self._key(span, raw.source)
            if key[0] != "file" and _digest(f"{key[0]}\x1f{key[1]}") in self._done:
                late[key[1]] = late.get(key[1], 0) + 1
                continue
            group = self._open.get(key)
            if group is None:
                name = key[1] if key[0] != "file" else file_session_id(raw.source)
                group = self._open[key] = _Group(name, key[0], raw.source, raw.row)
            self._held += group.add(span, share)
            if group.size > self._limit and not group.too_large:
                group.too_large = True
                self._held -= group.held
                group.held = 0
                group.spans = []  # what was held goes; the session is rejected at its end
            touched[key] = group
        if count == 0:
            yield Rejection(raw.source, raw.row, "no_conversation", "the export line holds no span")
        for name, number in late.items():
            yield Rejection(
                raw.source,
                raw.row,
                "late_spans",
                f"{number} span(s) of {name} arrived after its session was complete and "
                "graded, or dropped",
                name,
            )
        for key, group in touched.items():
            if key[0] == "trace" and group.complete() and key in self._open:
                yield self._emit(key)
        while self._held > self._open_limit and self._open:
            yield self._drop_largest()

    def _drop_largest(self) -> Rejection:
        """The open sessions hold more than the limit: the largest goes, rejected."""
        key = max(self._open, key=lambda k: self._open[k].held)
        group = self._open.pop(key)
        self._held -= group.held
        if key[0] != "file":
            self._done.add(_digest(f"{key[0]}\x1f{key[1]}"))
        return Rejection(
            group.source,
            group.row,
            "incomplete_trace",
            f"{len(group.spans):,} spans of this {group.kind} were still waiting for the rest "
            f"of it when the sessions still open passed --max-open-mb "
            f"{self._open_limit >> 20:,} (about {group.held / (1 << 20):,.1f} MB of it held): "
            "dropped so that memory stays bounded; raise --max-open-mb to keep such traces",
            group.key,
        )

    def end_source(self, source: str) -> Iterator[RawRow | Rejection]:
        """The end of one file: its spans without ids are a session now."""
        if ("file", source) in self._open:
            yield self._emit(("file", source))

    def finish(self) -> Iterator[RawRow | Rejection]:
        """The end of the input: every session still open, in the order it began."""
        for key in list(self._open):
            yield self._emit(key)

    def _emit(self, key: tuple[str, str]) -> RawRow | Rejection:
        group = self._open.pop(key)
        self._held -= group.held
        if key[0] == "trace":
            self._done.add(_digest("trace\x1f" + key[1]))
        if group.too_large:
            return Rejection(
                group.source,
                group.row,
                "row_too_large",
                f"the session's spans hold {group.size / (1 << 20):,.0f} MB or more, over "
                f"--max-row-mb {self._limit >> 20:,}: they were read past, never held",
                group.key,
            )
        data = group.row_data()
        return RawRow(group.source, group.row, data, fingerprint=fingerprint_of(data))


def parse(row: Mapping[str, Any], source: SourceRef, hints: Hints) -> Session:
    """An assembled OTLP session row, read as OTel spans."""
    if matches(row):
        raise BadRow(
            "malformed_row",
            "an OTLP export line is grouped into sessions when read as a source, not alone",
        )
    return otel.parse(row, source, hints)
