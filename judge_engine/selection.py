"""From a question to a dataset: the graded sessions a filter picks, and their source
rows exactly as they were read.

In: a results folder (its journal through `results`, its kept transcripts for where
each session came from, `OUT/topics.json` when `topics` ran), `--where` filters and
labels. Out: the matching session ids, and their source rows written out: JSON-lines
sources line for line, byte for byte (compressed ones decompressed); Parquet sources as
Parquet with the source's own schema; a `.json` array's items and the hub's rows as
JSON lines. An OTLP export's session is every line that names its id.

The filter language: `KEY=VALUE` or `KEY!=VALUE`, several `--where` combined with AND.
Keys: `benchmark`, `harness`, `agent_model`, `session_id`, `success` (0/1, the
counted verdict: the first judge slot's), `failure_mode` (the first slot's code),
`judge` (`SLOT:0` or `SLOT:1`: that slot's verdict), `judge_vs_label` (`agree` or
`disagree`: the first slot against the label, where a session has one) and `topic`
(an id from `judge-engine topics`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from . import transcripts
from .results import open_results, verdict_of

KEYS = ("benchmark", "harness", "agent_model", "session_id", "success", "failure_mode",
        "judge", "judge_vs_label", "topic")  # fmt: skip
_WHERE = re.compile(r"^([a-z_]+)(!=|=)(.*)$", re.S)
TOPICS_FILE = "topics.json"


class SelectionError(ValueError):
    """A filter that cannot be applied: one line that says why."""


@dataclass(frozen=True)
class Where:
    key: str
    value: str
    negated: bool = False

    @classmethod
    def parse(cls, text: str) -> Where:
        match = _WHERE.match(text.strip())
        if not match or match.group(1) not in KEYS:
            raise SelectionError(
                f"--where {text!r}: expected KEY=VALUE or KEY!=VALUE, KEY one of {', '.join(KEYS)}"
            )
        key, op, value = match.groups()
        if key == "judge_vs_label" and value not in ("agree", "disagree"):
            raise SelectionError(f"--where {text!r}: judge_vs_label is agree or disagree")
        if key == "success" and value not in ("0", "1"):
            raise SelectionError(f"--where {text!r}: success is 0 or 1")
        if key == "judge" and not re.match(r"^.+:[01]$", value):
            raise SelectionError(f"--where {text!r}: judge is SLOT:0 or SLOT:1")
        return cls(key, value, op == "!=")


def _topics(out: Path) -> dict[str, str]:
    """session id -> topic id, from `topics --json`'s copy in OUT."""
    try:
        data = orjson.loads((out / TOPICS_FILE).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        raise SelectionError(
            f"--where topic=...: {out} holds no {TOPICS_FILE}: run judge-engine topics {out} first"
        ) from None
    return {
        str(session): str(topic["id"])
        for topic in data.get("topics", [])
        for session in topic.get("sessions", [])
    }


def select(
    out: Path, wheres: Sequence[Where], labels: Mapping[str, int] | None = None
) -> list[str]:
    """The sessions of OUT every filter picks, in journal order."""
    view = open_results(out)
    facts: dict[str, dict[str, Any]] = {}
    verdicts: dict[str, dict[str, int | None]] = {}
    modes: dict[str, dict[str, str | None]] = {}
    for record in view.latest(first_sample=True):
        facts.setdefault(record.session_id, {
            "benchmark": record.benchmark or "unknown", "harness": record.harness or "unknown",
            "agent_model": record.grouping_model, "label": record.label,
        })  # fmt: skip
        verdicts.setdefault(record.session_id, {})[record.slot] = verdict_of(record)
        modes.setdefault(record.session_id, {})[record.slot] = record.failure_mode
    slots = view.slot_order(s for v in verdicts.values() for s in v)
    first = slots[0] if slots else None
    topics = _topics(out) if any(w.key == "topic" for w in wheres) else {}
    given = dict(labels or {})
    chosen = []
    for session, fact in facts.items():
        counted = verdicts[session].get(first) if first else None
        label = given.get(session, fact["label"])
        values: dict[str, str | None] = {
            "benchmark": fact["benchmark"], "harness": fact["harness"],
            "agent_model": fact["agent_model"], "session_id": session,
            "success": None if counted is None else str(counted),
            "failure_mode": modes[session].get(first) if first else None,
            "judge_vs_label": None if counted is None or label is None
            else ("agree" if counted == label else "disagree"),
            "topic": topics.get(session),
        }  # fmt: skip
        if all(_holds(w, values, verdicts[session]) for w in wheres):
            chosen.append(session)
    return chosen


def _holds(where: Where, values: Mapping[str, str | None], votes: Mapping[str, int | None]) -> bool:
    if where.key == "judge":
        slot, _, wanted = where.value.rpartition(":")
        vote = votes.get(slot)
        value: str | None = None if vote is None else str(vote)
        match = value == wanted
    else:
        value = values.get(where.key)
        match = value == where.value
    # A session the key says nothing of (no verdict, no label) matches neither = nor !=.
    return value is not None and match != where.negated


def sources_of(out: Path, sessions: Iterable[str]) -> dict[str, list[tuple[str, int, str]]]:
    """Per source, the (session, row, format) of each wanted session, from the kept
    transcripts (a session graded before they were kept is not found)."""
    wanted = set(sessions)
    found: dict[str, list[tuple[str, int, str]]] = {}
    for session, item in transcripts.latest(out).items():
        if session in wanted:
            found.setdefault(item.source, []).append((session, item.row, item.format))
    return found


def write_rows(out: Path, sessions: Sequence[str], target: Path) -> tuple[int, list[str]]:
    """The sessions' source rows into `target` (module docstring): the rows written and
    the sessions not found (a source moved away, a transcript not kept)."""
    placed = sources_of(out, sessions)
    missing = sorted(set(sessions) - {s for items in placed.values() for s, _, _ in items})
    parquet = [s for s in placed if s.endswith(".parquet")]
    if (parquet and len(parquet) < len(placed)) or len(parquet) > 1:
        raise SelectionError(
            "the sessions come from several sources, some Parquet: export them per source "
            "(--where session_id=... or benchmark=...), or to a .jsonl file"
        )
    if parquet and target.suffix == ".parquet":
        return _parquet(parquet[0], placed[parquet[0]], target), missing
    written = 0
    with open(target, "wb") as handle:
        for source, items in placed.items():
            written += _lines(source, items, handle)
    return written, missing


def _lines(source: str, items: Sequence[tuple[str, int, str]], handle: IO[bytes]) -> int:
    """One source's rows as lines: JSON lines byte for byte; other sources as JSON."""
    from .sessions.sources import RawRow, _open_compressed, iter_rows

    rows = {row for _, row, fmt in items if fmt != "otlp"}
    ids = [session.encode() for session, _, fmt in items if fmt == "otlp"]
    path = Path(source)
    written = 0
    if source.endswith((".jsonl", ".ndjson", ".gz", ".bz2", ".xz", ".zst")) or (
        path.suffix not in (".json", ".parquet") and "://" not in source
    ):
        packed = source.endswith((".gz", ".bz2", ".xz", ".zst"))
        with _open_compressed(source) if packed else open(source, "rb") as lines:
            for number, line in enumerate(_read_lines(lines)):
                if number in rows or (ids and any(_names(line, i) for i in ids)):
                    handle.write(line if line.endswith(b"\n") else line + b"\n")
                    written += 1
        return written
    for raw in iter_rows(source):
        if isinstance(raw, RawRow) and raw.row in rows:
            handle.write(orjson.dumps(dict(raw.data)) + b"\n")
            written += 1
    return written


def _read_lines(handle: IO[bytes]) -> Iterator[bytes]:
    while True:
        line = handle.readline()
        if not line:
            return
        yield line


def _names(line: bytes, session: bytes) -> bool:
    """Whether an OTLP line names the session's id (as a JSON string)."""
    return b'"' + session + b'"' in line


def _parquet(source: str, items: Sequence[tuple[str, int, str]], target: Path) -> int:
    import pyarrow.parquet as pq

    table = pq.read_table(source)
    rows = sorted({row for _, row, _ in items})
    picked = table.take(rows)
    pq.write_table(picked, target)
    return int(picked.num_rows)


__all__ = ["KEYS", "SelectionError", "Where", "select", "sources_of", "write_rows"]
