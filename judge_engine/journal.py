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

import bisect
import contextlib
import fcntl
import hashlib
import math
import os
import sys
import time
from array import array
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from .files import UnsafePath, open_state, refuse_state_links, write_atomic
from .models import main_model

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

JOURNAL = "journal.jsonl"
_LOCK = ".judge-engine.lock"
#: Journal line format; bump on incompatible change.
FORMAT_VERSION = 1
OK, FAILED, SKIPPED = "ok", "failed", "skipped"


class JournalError(Exception):
    """The results folder cannot be opened, locked or written (the journal or any file
    beside it): the run stops with this one line, and what is durable stays so."""


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
    #: The failure mode the judge named (a code of the rubric's taxonomy; "none" for a
    #: success; None: not asked, or not said), the message where the session first went
    #: wrong, and the judge's one-sentence note.
    failure_mode: str | None = None
    failure_step: int | None = None
    failure_note: str | None = None
    #: The rubric's other criteria: name -> value (`taxonomy.Criterion`).
    criteria: dict[str, int] | None = None
    #: A reasoning model's own thinking before its verdict (reasoning_content, a
    #: `<think>` block, Anthropic's thinking), kept apart and never read as the verdict.
    thinking: str | None = None
    #: The provider's id of the reply (`request-id`, a completion's id).
    request_id: str | None = None
    #: For failures and skips: why (unparseable, bad_response, client_error 400, self-grading).
    error: str | None = None
    #: For failures: the last raw reply, kept for inspection.
    raw: str | None = None
    #: For failures: whether another try may pass (a connection, a timeout, a 5xx, a
    #: 429 after the last retry). The next run asks a transient failure again; a
    #: permanent one (a 4xx, a verdict never parsed) waits for --retry-failed.
    transient: bool = False
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
    #: The agent's LLM calls (its assistant messages), for `report`'s spending figures.
    agent_calls: int | None = None
    #: Where that cost came from: "column", "spans" (None: the trace says nothing).
    agent_cost_from: str | None = None
    #: The session's model for grouping (`models.main_model`); None in records written
    #: before it was kept (`grouping_model` works it out from `agent_models`).
    agent_model: str | None = None
    #: The graded row's fingerprint (`sessions.sources.fingerprint`).
    fingerprint: str | None = None
    #: A digest of what the judges read (`transcripts.digest`): a session whose kept
    #: text is the same is not kept again by a later run.
    text: str | None = None
    at: float = 0.0
    #: The line format's version.
    v: int = FORMAT_VERSION

    def to_json(self) -> bytes:
        # orjson writes dataclasses natively (tuples as arrays), far faster than asdict.
        return orjson.dumps(self) + b"\n"

    @property
    def grouping_model(self) -> str:
        """The model a session is grouped by: its main model, canonical."""
        if self.agent_model:
            return self.agent_model
        return main_model(self.agent_models)[0] or "unknown"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        fields = cls.__dataclass_fields__
        # A line this version wrote holds only known fields: no copy to filter it.
        known = (
            data if data.keys() <= fields.keys() else {k: v for k, v in data.items() if k in fields}
        )
        known["agent_models"] = tuple(known.get("agent_models") or ())
        return cls(**known)


_HEX_DIGITS = "0123456789abcdef"
_TEXT_FIELDS = ("session_id", "slot", "rubric", "rubric_version", "prompt_version")


def _fields(line: bytes) -> dict[str, Any] | str:
    """One journal line's fields, checked as `parse_record` checks them, without
    building a `Record` (resuming reads only a few fields of every line)."""
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return f"not JSON ({exc})"
    if not isinstance(data, dict):
        return f"a JSON {type(data).__name__}, not a record"
    key = data.get("key")
    if not isinstance(key, str) or len(key) != 32 or key.strip(_HEX_DIGITS):
        return "its key is not 32 hex digits"
    for name in _TEXT_FIELDS:
        if not isinstance(data.get(name), str):
            return "a field that must be text is not"
    if data.get("status") not in (OK, FAILED, SKIPPED):
        return f"unknown status {str(data.get('status'))[:40]!r}"
    sample = data.get("sample")
    if not isinstance(sample, int) or isinstance(sample, bool) or sample < 0:
        return "its sample is not a whole number"
    if data.get("judge") is not None and not isinstance(data.get("judge"), str):
        return "its judge is not text"
    if "judge" not in data:  # the other required fields were checked above
        return "a field is missing"
    return data


def parse_record(line: bytes) -> Record | str:
    """One journal line as a `Record`, or why it is not one: a line may be valid JSON
    and still no record (`null`, a list, a key that is not hex, a field of a wrong
    type): such a line is skipped by every reader and reported by `journal verify`."""
    data = _fields(line)
    if isinstance(data, str):
        return data
    try:
        return Record.from_dict(data)
    except (TypeError, ValueError) as exc:
        return f"not a record ({exc})"


def _lines(path: Path) -> Iterator[bytes]:
    """Every whole line of a journal; a torn last line is left out."""
    if not path.exists():
        return
    with open(path, "rb") as handle:
        for line in handle:
            if not line.endswith(b"\n"):
                return  # the torn last line of a killed run
            yield line


def read_records(path: Path) -> Iterator[Record]:
    """Every whole record of a journal, in order; a torn or foreign line is skipped."""
    for line in _lines(path):
        record = parse_record(line)
        if isinstance(record, Record):
            yield record


def read_fields(path: Path) -> Iterator[dict[str, Any]]:
    """The fields of every whole record, in order, as `read_records` would give them
    (the same lines skipped), without building records: for the readers that need
    only a few fields of every line."""
    for line in _lines(path):
        data = _fields(line)
        if not isinstance(data, str):
            yield data


def key_number(key: str) -> int:
    """A request key as a 64-bit number (its first 16 hex digits): 8 bytes a key."""
    return int(key[:16], 16)


#: Hex digits of a row fingerprint that are its digest (`sessions.sources.fingerprint`).
_DIGEST_HEX = 16


def fingerprint_number(fingerprint: Any) -> int:
    """A row fingerprint as a 64-bit number; 0 when unknown (journals written before
    fingerprints were kept)."""
    if not isinstance(fingerprint, str) or len(fingerprint) <= _DIGEST_HEX:
        return 0  # none, or the CRC-32 kind of the first journals: unknown
    try:
        return int(fingerprint[:_DIGEST_HEX], 16)
    except ValueError:
        return 0


def text_number(session_id: str, text: str) -> int:
    """A (session, text digest) pair as a 64-bit number."""
    joined = f"{session_id}\x1f{text}".encode()
    return int.from_bytes(hashlib.blake2b(joined, digest_size=8).digest(), "big")


def _find(keys: array[int], number: int) -> int:
    """The index of `number` in sorted `keys`, or -1 (a bisection: a microsecond)."""
    at = bisect.bisect_left(keys, number)
    return at if at < len(keys) and keys[at] == number else -1


@dataclass(frozen=True)
class _Done:
    """Requests earlier runs finished, as sorted arrays: 16 bytes a request (its key's
    first 64 bits and its row's fingerprint), however long the journal. Plain arrays,
    not numpy's: a lookup is a bisection, many times faster than numpy on one value."""

    finished: array[int]
    finished_prints: array[int]
    #: Requests whose latest record is a permanent failure.
    failed: array[int]
    #: What every record cost (USD): what the folder's runs spent.
    spent: float = 0.0
    #: Sorted numbers of (session, text digest) pairs the records carry: the texts
    #: kept in transcripts.jsonl (`text_number`).
    texts: array[int] = field(default_factory=lambda: array("Q"))


#: What the journal knows of a request (`Journal.lookup`).
NEW, DONE, FAILED_BEFORE = "new", "done", "failed"


def _load_keys(path: Path, visit: Callable[[dict[str, Any]], None] | None = None) -> _Done:
    """The requests a journal holds as finished and as failed for good (the last
    record of a key decides; a transient failure is as if never asked), with the
    fingerprint of the row each finished one graded."""
    numbers = array("Q")
    prints = array("Q")
    state = array("b")  # 0 finished, 1 failed for good, 2 failed for now
    spent = 0.0
    texts: set[int] = set()
    for data in read_fields(path):
        if visit is not None:
            visit(data)
        text = data.get("text")
        if isinstance(text, str):
            texts.add(text_number(data["session_id"], text))
        cost = data.get("cost_usd")
        if isinstance(cost, (int, float)) and not isinstance(cost, bool) and cost > 0:
            spent += cost
        numbers.append(key_number(data["key"]))
        prints.append(fingerprint_number(data.get("fingerprint")))
        state.append(0 if data["status"] != FAILED else (2 if data.get("transient") else 1))
    if not numbers:
        return _Done(array("Q"), array("Q"), array("Q"))  # a new run: no numpy import
    if not math.isfinite(spent):
        spent = 0.0
    kept = array("Q", sorted(texts))
    if len(numbers) < _SMALL:  # reduced in Python: a numpy import costs more
        latest = {key: (prints[i], state[i]) for i, key in enumerate(numbers)}
        finished = sorted((key, print_) for key, (print_, s) in latest.items() if s == 0)
        return _Done(
            array("Q", (key for key, _ in finished)),
            array("Q", (print_ for _, print_ in finished)),
            array("Q", sorted(key for key, (_, s) in latest.items() if s == 1)),
            spent,
            kept,
        )
    import numpy as np

    keys = np.frombuffer(numbers, dtype=np.uint64)
    last = _last_occurrences(keys)
    finals = keys[last]
    final_prints = np.frombuffer(prints, dtype=np.uint64)[last]
    final_state = np.frombuffer(state, dtype=np.int8)[last]
    finished = final_state == 0
    order = np.argsort(finals[finished], kind="stable")

    def packed(values: npt.NDArray[np.uint64]) -> array[int]:
        return array("Q", values.astype(np.uint64).tobytes())

    return _Done(
        packed(finals[finished][order]),
        packed(final_prints[finished][order]),
        packed(np.sort(finals[final_state == 1])),
        spent,
        kept,
    )


def _last_occurrences(keys: npt.NDArray[np.uint64]) -> npt.NDArray[np.intp]:
    """Indexes of the last occurrence of each distinct key."""
    import numpy as np

    _, first_from_end = np.unique(keys[::-1], return_index=True)
    result: npt.NDArray[np.intp] = keys.size - 1 - first_from_end
    return result


#: Journals with fewer records are reduced in Python (a numpy import costs more).
_SMALL = 50_000


def iter_latest(path: Path) -> Iterator[Record]:
    """The newest record per (session, slot, sample), in journal order: what the score
    columns show (`iter_latest_fields`, built as records; a line that passes the checks
    of `parse_record` but cannot be built is skipped, and still supersedes the older
    ones of its request)."""
    for data in iter_latest_fields(path):
        try:
            yield Record.from_dict(data)
        except (TypeError, ValueError):
            continue


def iter_latest_fields(path: Path) -> Iterator[dict[str, Any]]:
    """The fields of the newest record per (session, slot, sample), in journal order,
    checked as `parse_record` checks them. Two passes over the file: the first checks
    every line and keeps 16 bytes a record (its request's number and its line's), the
    second parses only the lines kept."""
    numbers = array("Q")
    places = array("Q")
    for place, line in enumerate(_lines(path)):
        data = _fields(line)
        if not isinstance(data, str):
            numbers.append(_number_of(data))
            places.append(place)
    if not numbers:
        return
    if len(numbers) < _SMALL:
        last = {number: index for index, number in enumerate(numbers)}
        wanted = {places[index] for index in last.values()}
    else:
        import numpy as np

        kept = _last_occurrences(np.frombuffer(numbers, dtype=np.uint64))
        wanted = set(np.frombuffer(places, dtype=np.uint64)[kept].tolist())
    for place, line in enumerate(_lines(path)):
        if place in wanted:
            data = _fields(line)  # as the first pass found it, unless the file changed
            if not isinstance(data, str):
                yield data


def _number_of(data: Mapping[str, Any]) -> int:
    text = f"{data['session_id']}\x1f{data['slot']}\x1f{data['sample']}"
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


#: A compact copy of what a journal holds (the keys done, and the caller's arrays), so
#: the next run need not read the journal line by line.
SNAPSHOT = ".journal-index"
_SNAPSHOT_VERSION = 2


def _identity(path: Path) -> list[int]:
    """What tells one state of the journal file from another: size, mtime, inode."""
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns, stat.st_ino]


def write_snapshot(out_dir: Path, tag: str, done: _Done, extra: dict[str, array[int]]) -> None:
    """Keep `done` and the caller's arrays beside the journal, for its present state
    and the caller's `tag` (what the arrays depend on). A convenience: a snapshot that
    cannot be written is no snapshot, and the next run reads the journal."""
    arrays = {
        "finished": done.finished,
        "finished_prints": done.finished_prints,
        "failed": done.failed,
        "texts": done.texts,
        **extra,
    }
    header = {
        "v": _SNAPSHOT_VERSION,
        "journal": _identity(out_dir / JOURNAL),
        "tag": tag,
        "spent": done.spent,
        "byteorder": sys.byteorder,
        "arrays": {name: len(values) for name, values in arrays.items()},
    }
    data = orjson.dumps(header) + b"\n" + b"".join(v.tobytes() for v in arrays.values())
    with contextlib.suppress(OSError, UnsafePath):
        write_atomic(out_dir / SNAPSHOT, data)


def read_snapshot(out_dir: Path, tag: str) -> tuple[_Done, dict[str, array[int]]] | None:
    """The snapshot of the journal as it is now, for this `tag`; None when there is
    none, it is another state's or another tag's, or anything about it is off."""
    try:
        with open_state(out_dir / SNAPSHOT, "rb") as handle:
            header = orjson.loads(handle.readline(1 << 16))
            if (
                not isinstance(header, dict)
                or header.get("v") != _SNAPSHOT_VERSION
                or header.get("tag") != tag
                or header.get("byteorder") != sys.byteorder
                or header.get("journal") != _identity(out_dir / JOURNAL)
                or not isinstance(header.get("spent"), (int, float))
            ):
                return None
            arrays: dict[str, array[int]] = {}
            for name, length in header["arrays"].items():
                values = array("Q")
                data = handle.read(8 * int(length))
                if len(data) != 8 * int(length):
                    return None
                values.frombytes(data)
                arrays[name] = values
            if handle.read(1):
                return None
    except (OSError, ValueError, TypeError, KeyError, AttributeError):  # UnsafePath too
        return None
    done = _Done(
        arrays.pop("finished"),
        arrays.pop("finished_prints"),
        arrays.pop("failed"),
        float(header["spent"]),
        arrays.pop("texts"),
    )
    return done, arrays


class OutLock:
    """The results folder's lock: one writer at a time, held until every output is final.

    Every command that writes into OUT (grade, preview, sessions --out) takes it; a
    second one fails at once with one line. It is an advisory `flock` on `OUT/.lock`,
    released by the kernel if the holder dies. OUT itself may be a symbolic link to a
    folder; the files in it may not (`files.refuse_state_links`): none is ever written
    through a link."""

    def __init__(self, out_dir: Path) -> None:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            self._handle: IO[bytes] | None = open_state(out_dir / _LOCK, "ab")
        except UnsafePath as exc:
            raise JournalError(str(exc)) from None
        except OSError as exc:
            raise JournalError(f"cannot use {out_dir}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._handle.close()
            self._handle = None
            raise JournalError(
                f"another judge-engine command is using {out_dir} (wait for it to end)"
            ) from None
        try:
            refuse_state_links(out_dir)
        except UnsafePath as exc:
            self.release()
            raise JournalError(str(exc)) from None

    def release(self) -> None:
        if self._handle is not None:
            try:
                fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            finally:
                self._handle.close()
                self._handle = None

    def __enter__(self) -> OutLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class ReadLock:
    """A reader's hold on OUT (`journal verify`): a shared `flock` on the lock file, so
    no command that writes can start while it reads. `busy` says a writer holds OUT
    now (and, with `wait`, the reader waited for it to end instead)."""

    def __init__(self, out_dir: Path, *, wait: bool = False) -> None:
        self.busy = False
        self._fd: int | None = None
        path = out_dir / _LOCK
        if not path.exists():
            return  # no command ever wrote here
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_SH | (0 if wait else fcntl.LOCK_NB))
        except OSError:
            self.busy = True
            os.close(self._fd)
            self._fd = None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> ReadLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


#: The Batch API transport's log of submissions (`gateway.batch.LOG`): it goes aside
#: with the journal whose requests it carried.
SUBMISSIONS = "batches.jsonl"
ANTHROPIC_SUBMISSIONS = "anthropic-batches.jsonl"
#: What the judges read (`transcripts.FILE`), kept beside the journal.
TRANSCRIPTS = "transcripts.jsonl"
#: Exports and reports `export` and `demo` write into OUT by default: made from the
#: journal, they go aside with it.
EXPORTS = (
    "scores-by-session.parquet", "scores-by-session.csv", "scores-by-session.jsonl",
    "scores-braintrust.jsonl", "report.html",
)  # fmt: skip


def _aside(path: Path) -> Path:
    """A dated name beside `path` that no file has: journal-20261121-093000.jsonl."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime())
    candidate = path.with_name(f"{path.stem}-{stamp}{path.suffix}")
    number = 1
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.stem}-{stamp}-{number}{path.suffix}")
    return candidate


class Journal:
    """The append side: open, load what is done, append batches durably.

    It holds OUT's lock (its own, or the `lock` its caller holds for longer)."""

    def __init__(
        self,
        out_dir: Path,
        *,
        fresh: bool = False,
        lock: OutLock | None = None,
        visit: Callable[[dict[str, Any]], None] | None = None,
        snapshot_tag: str | None = None,
    ) -> None:
        """Open OUT's journal (moved aside first with `fresh`) and load what is done:
        from its snapshot when one matches the journal and `snapshot_tag` (then
        `snapshot` holds the caller's arrays and `visit` is not called), else line by
        line, `visit` seeing the fields of every record."""
        self.path = out_dir / JOURNAL
        self._own_lock = lock is None
        self._lock = lock if lock is not None else OutLock(out_dir)
        self._handle: IO[bytes] | None = None
        #: Where `fresh` moved the earlier journal (paid verdicts are never deleted).
        self.moved_aside: Path | None = None
        #: Records this run appended.
        self.appended = 0
        try:
            if fresh and self.path.exists() and self.path.stat().st_size:
                self.moved_aside = _aside(self.path)
                os.replace(self.path, self.moved_aside)
            for companion in (SUBMISSIONS, ANTHROPIC_SUBMISSIONS, TRANSCRIPTS, *EXPORTS):
                path = out_dir / companion
                if fresh and path.exists():
                    os.replace(path, _aside(path))
            self._truncate_torn_tail()
            #: The journal's size when this run began (0: a new journal).
            self.size_at_start = self.path.stat().st_size if self.path.exists() else 0
            found = read_snapshot(out_dir, snapshot_tag) if snapshot_tag else None
            #: The caller's arrays from the snapshot, when the journal was loaded from it.
            self.snapshot: dict[str, array[int]] | None = None
            if found is not None:
                self._done, self.snapshot = found
            else:
                self._done = _load_keys(self.path, visit)
            self._handle = open_state(self.path, "ab")
        except UnsafePath as exc:
            self.close()
            raise JournalError(str(exc)) from None
        except OSError as exc:
            self.close()
            raise JournalError(f"cannot open {self.path}: {exc.strerror or exc}") from None

    def _truncate_torn_tail(self) -> None:
        """Cut a last line without its newline, so the next append starts clean."""
        if not self.path.exists():
            return
        with open_state(self.path, "rb+") as handle:
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

    @property
    def known(self) -> int:
        """How many requests earlier runs finished (verdict, skip, or failed for good)."""
        return len(self._done.finished) + len(self._done.failed)

    def is_done(self, key: str, *, retry_failed: bool = False) -> bool:
        """Whether the next run leaves this request alone (see `lookup`)."""
        return self.lookup(key, retry_failed=retry_failed)[0] != NEW

    def has_text(self, session_id: str, text: str) -> bool:
        """Whether an earlier run kept this text of this session already."""
        return _find(self._done.texts, text_number(session_id, text)) != -1

    @property
    def spent_before(self) -> float:
        """What the folder's earlier runs spent (USD), from every record's cost."""
        return self._done.spent

    def lookup(self, key: str, *, retry_failed: bool = False) -> tuple[str, int]:
        """What an earlier run left of this request: `DONE` (a verdict or a skip),
        `FAILED_BEFORE` (failed for good; `NEW` with `retry_failed`) or `NEW` (never
        asked, or failed in a way another try may pass); and the fingerprint of the row
        it graded (0: unknown, or not a verdict). Keys finished in this run are not
        looked up: sessions are unique within a run, so a run meets each key once."""
        return self.lookup_number(key_number(key), retry_failed=retry_failed)

    def lookup_number(self, number: int, *, retry_failed: bool = False) -> tuple[str, int]:
        """`lookup` by a key's number (`key_number`)."""
        at = _find(self._done.finished, number)
        if at != -1:
            return DONE, int(self._done.finished_prints[at])
        if not retry_failed and _find(self._done.failed, number) != -1:
            return FAILED_BEFORE, 0
        return NEW, 0

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
        self.appended += len(records)

    def reload(self, visit: Callable[[dict[str, Any]], None] | None = None) -> None:
        """Load what is done again, from the journal as it is now (after appends)."""
        self._done = _load_keys(self.path, visit)

    def save_snapshot(self, tag: str, extra: dict[str, array[int]]) -> None:
        """Snapshot what is done now (see `write_snapshot`); the journal must be flushed."""
        write_snapshot(self.path.parent, tag, self._done, extra)

    def close(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):  # a full disk fails the flush; the lines are written
                self._handle.close()
            self._handle = None
        if self._own_lock:
            self._lock.release()
