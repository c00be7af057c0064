"""Sessions in: rows from every source, each turned into a normalized `Session`.

In: source specs (files, folders, globs, `-`, `hf://OWNER/NAME?config=C&split=S`).
Out: a stream of `Session`s and `Rejection`s, in source order. The format is
detected per row by the registry of adapters (or forced); raw OTLP export lines are
grouped into sessions across lines and files first (`otlp`). A row that cannot
become a session, or repeats a session id already seen in this run, becomes a
`Rejection` with its reason.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, overload

import orjson

from ..models import main_model
from . import agenttrace, hermes, openai_chat, otel, otlp
from .fidelity import Census, census
from .model import (
    EVENT,
    BadRow,
    Hints,
    Known,
    Message,
    Reading,
    Rejection,
    Session,
    SourceRef,
    ToolCall,
)
from .sources import (
    DEFAULT_MAX_ROW_MB,
    KnownRows,
    RawLine,
    RawRow,
    RawSpan,
    SourceError,
    SpanFiles,
    count_rows,
    decode_line,
    expand,
    iter_rows,
    line_print,
)

__all__ = [
    "ADAPTERS",
    "DEFAULT_MAX_OPEN_MB",
    "DEFAULT_MAX_ROW_MB",
    "EVENT",
    "FORMATS",
    "Adapter",
    "BadRow",
    "Census",
    "Hints",
    "IdSet",
    "Known",
    "KnownRows",
    "Message",
    "RawLine",
    "RawRow",
    "RawSpan",
    "ReadOptions",
    "Reading",
    "Rejection",
    "Session",
    "SessionReader",
    "SourceError",
    "SourceRef",
    "SpanFiles",
    "ToolCall",
    "census",
    "count_rows",
    "detect_format",
    "expand",
    "iter_rows",
    "line_print",
    "parse_row",
    "read_piece",
    "read_sessions",
]


@dataclass(frozen=True, slots=True)
class Adapter:
    """One trace format: how to recognize its rows and how to read one."""

    name: str
    matches: Callable[[Mapping[str, Any]], bool]
    parse: Callable[[Mapping[str, Any], SourceRef, Hints], Session]
    #: Rows of this format are grouped across lines before they are read (OTLP).
    grouped: bool = False


#: Estimated MB the raw OTLP sessions still open may hold together (`--max-open-mb`).
DEFAULT_MAX_OPEN_MB = 1024

#: The formats, in detection order: the first whose `matches` accepts a row reads it.
#: AgentTrace rows also carry `spans`, so they are tried before OTel rows.
ADAPTERS: tuple[Adapter, ...] = (
    Adapter(otlp.FORMAT, otlp.matches, otlp.parse, grouped=True),
    Adapter(agenttrace.FORMAT, agenttrace.matches, agenttrace.parse),
    Adapter(hermes.FORMAT, hermes.matches, hermes.parse),
    Adapter(otel.FORMAT, otel.matches, otel.parse),
    Adapter(openai_chat.FORMAT, openai_chat.matches, openai_chat.parse),
)
_BY_NAME = {adapter.name: adapter for adapter in ADAPTERS}
FORMATS = tuple(adapter.name for adapter in ADAPTERS)


def detect_format(row: Mapping[str, Any]) -> str | None:
    for adapter in ADAPTERS:
        if adapter.matches(row):
            return adapter.name
    return None


def parse_row(
    raw: RawRow,
    fmt: str | None = None,
    agent_model: str | None = None,
    *,
    benchmark: str | None = None,
    benchmark_from: str | None = None,
) -> Session | Rejection:
    """One decoded row -> a Session, or a Rejection saying why not. A session whose
    row names no benchmark takes it from `benchmark_from` (`benchmark_of`), else
    `benchmark`; its model for grouping is its main model (`models.main_model`)."""
    fmt = fmt or detect_format(raw.data)
    adapter = _BY_NAME.get(fmt) if fmt else None
    if adapter is None:
        columns = ", ".join(sorted(str(k) for k in raw.data)[:12]) or "none"
        return Rejection(
            raw.source, raw.row, "unknown_schema", f"columns ({columns}) match no known format"
        )
    ref = SourceRef(raw.source, raw.row, adapter.name, raw.fingerprint)
    try:
        session = adapter.parse(raw.data, ref, Hints(agent_model, raw.hub_config))
        changes: dict[str, Any] = {}
        if session.benchmark is None and (benchmark_from or benchmark):
            found = benchmark_of(raw, benchmark_from) if benchmark_from else None
            changes["benchmark"] = found or benchmark
        if session.agent_model is None and session.agent_models:
            changes["agent_model"] = main_model(session.agent_models)[0]
        return replace(session, **changes) if changes else session
    except BadRow as bad:
        return Rejection(raw.source, raw.row, bad.reason, bad.detail, bad.session_id)
    except Exception as exc:
        # An adapter met a shape it does not expect: reject the row, keep the run.
        return Rejection(
            raw.source,
            raw.row,
            "malformed_row",
            f"{adapter.name} row: {type(exc).__name__}: {exc}"[:500],
        )


def benchmark_of(raw: RawRow, spec: str) -> str | None:
    """The benchmark `--benchmark-from` finds for a row: with `file:REGEX`, in the
    source file's name (the group named `benchmark`, else the first group, else the
    whole match); else the row's own field of that name, or the first span attribute
    of that name (OTel spans, and raw OTLP with its resource attributes)."""
    if spec.startswith("file:"):
        match = re.search(spec[5:], Path(raw.source).name)
        if match is None:
            return None
        if "benchmark" in match.re.groupindex:
            return match.group("benchmark") or None
        return (match.group(1) if match.re.groups else match.group(0)) or None
    value = raw.data.get(spec)
    if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
        return str(value).strip()
    spans = raw.data.get("spans")
    for span in spans if isinstance(spans, list) else []:
        attrs = span.get("attributes") if isinstance(span, Mapping) else None
        if isinstance(attrs, str) and spec in attrs:
            try:
                attrs = orjson.loads(attrs)
            except orjson.JSONDecodeError:
                continue
        if isinstance(attrs, Mapping):
            value = attrs.get(spec)
            if isinstance(value, str) and value.strip():
                return value.strip()
    return None


class IdSet:
    """Session ids seen in a run, exactly, at about 8 bytes an id: a 64-bit hash each,
    kept in a sorted array (looked up by bisection), with the latest ones in a small
    Python set merged into it now and then (a Python set alone costs about 70 bytes an
    id)."""

    _MERGE = 1 << 16

    def __init__(self) -> None:
        self._sorted = array("Q")
        self._recent: set[int] = set()

    @staticmethod
    def number(session_id: str) -> int:
        """The 64-bit number an id is kept as."""
        return int.from_bytes(hashlib.blake2b(session_id.encode(), digest_size=8).digest(), "big")

    def add(self, session_id: str) -> bool:
        """Add an id; False if it was there already."""
        return self.add_number(self.number(session_id))

    def add_number(self, number: int) -> bool:
        """Add an id by its `number`; False if it was there already."""
        if number in self._recent:
            return False
        ordered = self._sorted
        at = bisect.bisect_left(ordered, number)
        if at < len(ordered) and ordered[at] == number:
            return False
        self._recent.add(number)
        if len(self._recent) >= self._MERGE:
            import numpy as np  # only runs of 65,536 sessions or more pay for the import

            merged = np.concatenate(
                (
                    np.frombuffer(ordered, dtype=np.uint64),
                    np.fromiter(self._recent, dtype=np.uint64, count=len(self._recent)),
                )
            )
            merged.sort()
            self._sorted = array("Q", merged.tobytes())
            self._recent = set()
        return True

    def __len__(self) -> int:
        return len(self._sorted) + len(self._recent)


@overload
def read_sessions(
    sources: Sequence[str],
    *,
    fmt: str | None = ...,
    agent_model: str | None = ...,
    max_row_mb: int = ...,
    max_open_mb: int = ...,
    session_by: str = ...,
    benchmark: str | None = ...,
    benchmark_from: str | None = ...,
    known: None = ...,
) -> Iterator[Session | Rejection]: ...


@overload
def read_sessions(
    sources: Sequence[str],
    *,
    fmt: str | None = ...,
    agent_model: str | None = ...,
    max_row_mb: int = ...,
    max_open_mb: int = ...,
    session_by: str = ...,
    benchmark: str | None = ...,
    benchmark_from: str | None = ...,
    known: KnownRows | None,
) -> Iterator[Session | Rejection | Known]: ...


def read_sessions(
    sources: Sequence[str],
    *,
    fmt: str | None = None,
    agent_model: str | None = None,
    max_row_mb: int = DEFAULT_MAX_ROW_MB,
    max_open_mb: int = DEFAULT_MAX_OPEN_MB,
    session_by: str = "auto",
    benchmark: str | None = None,
    benchmark_from: str | None = None,
    known: KnownRows | None = None,
) -> Iterator[Session | Rejection | Known]:
    """Stream sessions from every source in order; ids must be unique across the run.
    Rows over `max_row_mb` are rejected (`row_too_large`) without being held; raw OTLP
    spans are grouped by `session_by` and the sessions still open hold at most
    `max_open_mb` (`otlp`). A row
    `known` knows by its fingerprint (a resume's rows graded before) is not parsed: it
    comes as `Known`, its number taken as its session id's (`IdSet.number`)."""
    options = ReadOptions(fmt, agent_model, benchmark, benchmark_from)
    reader = SessionReader(
        options, max_row_bytes=max_row_mb << 20, max_open_mb=max_open_mb, session_by=session_by
    )
    for spec in expand(sources):
        for item in iter_rows(spec, reader.max_row_bytes, known):
            assert not isinstance(item, RawSpan), "spans come only from lazy reading"
            if isinstance(item, (Rejection, Known)):
                yield from reader.accept(item)
            else:
                yield from reader.accept(read_piece(item, options, known))
        yield from reader.end_source(spec)
    yield from reader.finish()


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """How a row becomes a session (`parse_row`'s options): what `read_piece` needs,
    small enough to hand to a worker process."""

    fmt: str | None = None
    agent_model: str | None = None
    benchmark: str | None = None
    benchmark_from: str | None = None


def read_piece(
    piece: RawRow | RawLine, options: ReadOptions, known: KnownRows | None = None
) -> Session | Rejection | Known | RawRow:
    """The part of reading a row that needs no other row, so any process may do it:
    decode it (a `RawLine`), check it against `known`, detect its format and parse it.
    A raw OTLP row comes back as its `RawRow`: its spans are grouped across rows
    (`SessionReader.accept`), in order, by the one reader."""
    if isinstance(piece, RawLine):
        decoded = decode_line(piece.line, piece.source, piece.row, known)
        if not isinstance(decoded, RawRow):
            return decoded
        piece = decoded
    elif known is not None and piece.fingerprint:
        number = known(piece.fingerprint)
        if number is not None:
            return Known(piece.source, piece.row, piece.fingerprint, number)
    kind = options.fmt or detect_format(piece.data)
    if kind == otlp.FORMAT:
        return piece
    return parse_row(
        piece,
        kind,
        options.agent_model,
        benchmark=options.benchmark,
        benchmark_from=options.benchmark_from,
    )


class SessionReader:
    """The part of reading that goes in row order, in one place: session ids unique
    across the run (a repeat is a `duplicate_session_id` rejection) and raw OTLP spans
    grouped into sessions across rows and files (`otlp.Assembler`).

    In: each row's `read_piece` result (or a `Known`, a `Rejection`), in source order.
    Out: the run's `Session`s, `Known`s and `Rejection`s, in that order."""

    def __init__(
        self,
        options: ReadOptions,
        *,
        max_row_bytes: int = DEFAULT_MAX_ROW_MB << 20,
        max_open_mb: int = DEFAULT_MAX_OPEN_MB,
        session_by: str = "auto",
    ) -> None:
        self.options = options
        self.max_row_bytes = max_row_bytes
        self._seen = IdSet()
        spec = options.benchmark_from
        attribute = spec if spec and not spec.startswith("file:") else None
        self._assembler = otlp.Assembler(
            max_row_bytes,
            max_open_bytes=max_open_mb << 20,
            session_by=session_by,
            keep=(attribute,) if attribute else (),
        )

    def accept(
        self, item: Session | Rejection | Known | RawRow
    ) -> Iterator[Session | Rejection | Known]:
        """One row's result, in order: what it yields now (a raw OTLP row may complete
        no session yet, or several)."""
        if isinstance(item, RawRow):
            yield from self._grouped(self._assembler.add(item))
        elif isinstance(item, Known):
            yield self._remembered(item)
        else:
            yield self._unique(item)

    def admit(self, session: Session) -> Rejection | None:
        """A session read elsewhere (a worker process), in its turn: None, or its
        `duplicate_session_id` rejection."""
        result = self._unique(session)
        return result if isinstance(result, Rejection) else None

    def end_source(self, spec: str) -> Iterator[Session | Rejection]:
        """The OTLP sessions a source's end completes."""
        return self._grouped(self._assembler.end_source(spec))

    def finish(self) -> Iterator[Session | Rejection]:
        """The OTLP sessions still open at the end of the run."""
        return self._grouped(self._assembler.finish())

    def _grouped(self, pieces: Iterator[RawRow | Rejection]) -> Iterator[Session | Rejection]:
        options = self.options
        for piece in pieces:
            if isinstance(piece, Rejection):
                yield piece
            else:
                yield self._unique(
                    parse_row(
                        piece,
                        otlp.FORMAT,
                        options.agent_model,
                        benchmark=options.benchmark,
                        benchmark_from=options.benchmark_from,
                    )
                )

    def _unique(self, result: Session | Rejection) -> Session | Rejection:
        if not isinstance(result, Session) or self._seen.add(result.session_id):
            return result
        return Rejection(
            result.source.source,
            result.source.row,
            "duplicate_session_id",
            "this session id was already read in this run",
            result.session_id,
        )

    def _remembered(self, item: Known) -> Known | Rejection:
        if self._seen.add_number(item.number):
            return item
        return Rejection(
            item.source, item.row, "duplicate_session_id",
            "this session id was already read in this run",
        )  # fmt: skip
