"""Sessions in: rows from every source, each turned into a normalized `Session`.

In: source specs (files, folders, globs, `-`, `hf://OWNER/NAME?config=C&split=S`).
Out: a stream of `Session`s and `Rejection`s, in source order. The format is
detected per row (or forced); a row that cannot become a session, or repeats a
session id already seen in this run, becomes a `Rejection` with its reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from . import agenttrace, hermes, openai_chat, otel
from .model import BadRow, Message, Rejection, Session, SourceRef, ToolCall
from .sources import RawRow, SourceError, count_rows, expand, iter_rows

__all__ = [
    "FORMATS",
    "BadRow",
    "Message",
    "Rejection",
    "Session",
    "SourceError",
    "SourceRef",
    "ToolCall",
    "count_rows",
    "detect_format",
    "expand",
    "parse_row",
    "read_sessions",
]

#: Format names, in detection order (AgentTrace rows also carry `spans`).
FORMATS = ("agenttrace", "hermes", "otel", "openai")

_MATCHERS: tuple[tuple[str, Callable[[Mapping[str, Any]], bool]], ...] = (
    (agenttrace.FORMAT, agenttrace.matches),
    (hermes.FORMAT, hermes.matches),
    (otel.FORMAT, otel.matches),
    (openai_chat.FORMAT, openai_chat.matches),
)


def detect_format(row: Mapping[str, Any]) -> str | None:
    for name, matches in _MATCHERS:
        if matches(row):
            return name
    return None


def parse_row(
    raw: RawRow, fmt: str | None = None, agent_model: str | None = None
) -> Session | Rejection:
    """One decoded row -> a Session, or a Rejection saying why not."""
    fmt = fmt or detect_format(raw.data)
    if fmt is None:
        columns = ", ".join(sorted(str(k) for k in raw.data)[:12]) or "none"
        return Rejection(
            raw.source, raw.row, "unknown_schema", f"columns ({columns}) match no known format"
        )
    ref = SourceRef(raw.source, raw.row, fmt)
    try:
        if fmt == hermes.FORMAT:
            return hermes.parse(raw.data, ref, agent_model, raw.hub_config)
        if fmt == otel.FORMAT:
            return otel.parse(raw.data, ref, agent_model)
        if fmt == agenttrace.FORMAT:
            return agenttrace.parse(raw.data, ref, agent_model)
        return openai_chat.parse(raw.data, ref, agent_model)
    except BadRow as bad:
        return Rejection(raw.source, raw.row, bad.reason, bad.detail, bad.session_id)
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
        # An adapter met a shape it does not expect: reject the row, keep the run.
        return Rejection(
            raw.source, raw.row, "malformed_row", f"{fmt} row: {type(exc).__name__}: {exc}"[:500]
        )


def read_sessions(
    sources: Sequence[str],
    *,
    fmt: str | None = None,
    agent_model: str | None = None,
) -> Iterator[Session | Rejection]:
    """Stream sessions from every source in order; ids must be unique across the run."""
    # 64-bit hashes, not the ids: 8 bytes of key a session whatever the ids' length.
    seen: set[int] = set()
    for spec in expand(sources):
        for item in iter_rows(spec):
            if isinstance(item, Rejection):
                yield item
                continue
            result = parse_row(item, fmt, agent_model)
            if isinstance(result, Session):
                digest = hashlib.blake2b(result.session_id.encode(), digest_size=8).digest()
                number = int.from_bytes(digest, "big")
                if number in seen:
                    result = Rejection(
                        item.source,
                        item.row,
                        "duplicate_session_id",
                        "this session id was already read in this run",
                        result.session_id,
                    )
                else:
                    seen.add(number)
            yield result
