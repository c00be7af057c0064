"""The journal: every finished request, made durable before it counts.

In: `Record`s (a verdict, a permanent failure or a guard skip). Out:
`OUT/journal.jsonl`, one JSON line per record, appended and fsync'd in batches; and
on start, the set of keys already done, so a run resumes where it stopped.

A key is a digest of (session id, judge slot, judge model, rubric version, prompt
version, sample). A record is durable once its batch is fsync'd; only then is it
counted. A run killed at any moment loses at most the requests in flight; the torn
last line it may leave is ignored and cut off before the next append. A lock file
keeps two runs from writing one journal.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

JOURNAL = "journal.jsonl"
_LOCK = ".lock"
#: Journal line format; bump on incompatible change.
FORMAT_VERSION = 1
OK, FAILED, SKIPPED = "ok", "failed", "skipped"


class JournalError(Exception):
    """The journal cannot be opened, locked or written."""


def request_key(
    session_id: str, slot: str, judge: str, rubric_version: str, prompt_version: str, sample: int
) -> str:
    text = "\x1f".join((session_id, slot, judge, rubric_version, prompt_version, str(sample)))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class Record:
    key: str
    session_id: str
    slot: str
    judge: str | None
    sample: int
    status: str  # ok | failed | skipped
    rubric: str
    rubric_version: str
    prompt_version: str
    success: int | None = None
    confidence: str | None = None
    reasoning: str | None = None
    #: For failures and skips: why (unparseable, bad_response, client_error 400, self-grading).
    error: str | None = None
    #: For failures: the last raw reply, kept for inspection.
    raw: str | None = None
    guard: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, int] = field(default_factory=dict)
    latency_ms: float | None = None
    attempts: int = 0
    cost_usd: float | None = None
    served_model: str | None = None
    benchmark: str | None = None
    harness: str | None = None
    agent_models: tuple[str, ...] = ()
    #: Labels the source carries (e.g. Exgentic's success column), for `agree`.
    label: int | None = None
    #: The agent's own token counts and cost as the trace records them, for `report`.
    agent_usage: dict[str, int] = field(default_factory=dict)
    agent_cost_usd: float | None = None
    at: float = 0.0
    #: The line format's version.
    v: int = FORMAT_VERSION

    def to_json(self) -> bytes:
        # orjson writes dataclasses natively (tuples as arrays), far faster than asdict.
        return orjson.dumps(self) + b"\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["agent_models"] = tuple(known.get("agent_models") or ())
        return cls(**known)


def read_records(path: Path) -> Iterator[Record]:
    """Every whole record of a journal, in order; a torn or foreign line is skipped."""
    if not path.exists():
        return
    with open(path, "rb") as handle:
        for line in handle:
            if not line.endswith(b"\n"):
                return  # the torn last line of a killed run
            try:
                data = orjson.loads(line)
                yield Record.from_dict(data)
            except (orjson.JSONDecodeError, TypeError, ValueError):
                continue


def _slot_key(record: Record) -> bytes:
    text = f"{record.session_id}\x1f{record.slot}\x1f{record.sample}"
    return hashlib.blake2b(text.encode(), digest_size=12).digest()


def iter_latest(path: Path) -> Iterator[Record]:
    """The newest record per (session, slot, sample), in journal order: what the score
    columns show. Two passes over the file, so memory holds one small digest per key,
    not every record."""
    newest: dict[bytes, int] = {}
    for number, record in enumerate(read_records(path)):
        newest[_slot_key(record)] = number
    for number, record in enumerate(read_records(path)):
        if newest.get(_slot_key(record)) == number:
            yield record


class Journal:
    """The append side: open (locked), load what is done, append batches durably."""

    def __init__(self, out_dir: Path, *, fresh: bool = False) -> None:
        self.path = out_dir / JOURNAL
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            self._lock = open(out_dir / _LOCK, "a")  # noqa: SIM115 - held for the run
        except OSError as exc:
            raise JournalError(f"cannot use {out_dir}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            raise JournalError(
                f"another judge-engine run is using {out_dir} (remove it or wait)"
            ) from None
        #: key -> status of every finished request (the last record of a key wins).
        self.done: dict[str, str] = {}
        self._handle: IO[bytes] | None = None
        try:
            if fresh and self.path.exists():
                self.path.unlink()
            self._truncate_torn_tail()
            for record in read_records(self.path):
                self.done[record.key] = record.status
            self._handle = open(self.path, "ab")  # noqa: SIM115
        except OSError as exc:
            self.close()
            raise JournalError(f"cannot open {self.path}: {exc.strerror or exc}") from None

    def _truncate_torn_tail(self) -> None:
        """Cut a last line without its newline, so the next append starts clean."""
        if not self.path.exists():
            return
        with open(self.path, "rb+") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size == 0:
                return
            handle.seek(size - 1)
            if handle.read(1) == b"\n":
                return
            # Walk back to the last newline.
            position = size
            block = 1 << 16
            while position > 0:
                start = max(0, position - block)
                handle.seek(start)
                chunk = handle.read(position - start)
                cut = chunk.rfind(b"\n")
                if cut != -1:
                    handle.truncate(start + cut + 1)
                    return
                position = start
            handle.truncate(0)

    def is_done(self, key: str, *, retry_failed: bool = False) -> bool:
        status = self.done.get(key)
        if status is None:
            return False
        return not (retry_failed and status == FAILED)

    def append(self, records: list[Record]) -> None:
        """Write a batch and make it durable (flush + fsync) before returning."""
        if self._handle is None:
            raise JournalError("the journal is closed")
        try:
            self._handle.write(b"".join(r.to_json() for r in records))
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as exc:
            raise JournalError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        for record in records:
            self.done[record.key] = record.status

    def close(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):  # a full disk fails the flush; the lines are written
                self._handle.close()
            self._handle = None
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)
        finally:
            self._lock.close()
