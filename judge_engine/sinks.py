"""What a run writes besides the journal: rejected rows, previews and score columns.

In: `Rejection`s, `JudgeRequest`s and journal `Record`s. Out: `OUT/rejected.jsonl`
(one line per row that could not become a session, with its reason),
`OUT/requests.jsonl` (preview) and `OUT/scores.jsonl`: one row per (session, judge
slot of the current panel) keyed for upsert onto the sessions' root spans, read
through `results` like every other reader of the journal.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import os
import re
import sys
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

if sys.version_info >= (3, 11):
    from typing import Self
else:  # pragma: no cover - exercised on 3.10 only
    from typing_extensions import Self

import orjson

from . import transcripts
from .files import UnsafePath, open_state, write_atomic
from .journal import (
    ANTHROPIC_SUBMISSIONS,
    FAILED,
    JOURNAL,
    OK,
    SKIPPED,
    SUBMISSIONS,
    JournalError,
    Record,
    parse_record,
    request_key,
)
from .results import Results, open_results, read_panel, verdict_of
from .sessions import Rejection
from .verdict import CONFIDENCES


class JsonlWriter:
    """Append JSON lines to a file, flushed line by line (or when the caller says).

    An OS error (a full disk, a folder that cannot be written) becomes one clear
    `JournalError` naming the file."""

    def __init__(self, path: Path, *, append: bool = False) -> None:
        self.path = path
        self.count = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._handle: IO[bytes] = open_state(path, "ab" if append else "wb")
        except UnsafePath as exc:
            raise JournalError(str(exc)) from None
        except OSError as exc:
            raise JournalError(f"cannot write {path}: {exc.strerror or exc}") from None

    def write(self, record: dict[str, Any], *, flush: bool = True) -> None:
        try:
            self._handle.write(orjson.dumps(record, default=str) + b"\n")
            if flush:
                self._handle.flush()
        except OSError as exc:
            raise JournalError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        self.count += 1

    def flush(self) -> None:
        try:
            self._handle.flush()
        except OSError as exc:
            raise JournalError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def sync(self) -> None:
        """Flush and fsync: what was written is on disk."""
        self.flush()
        try:
            os.fsync(self._handle.fileno())
        except OSError as exc:
            raise JournalError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def close(self) -> None:
        # A failure here was already reported by write or flush, or the rebuild reports it.
        with contextlib.suppress(OSError):
            self._handle.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class RejectLog(JsonlWriter):
    """`OUT/rejected.jsonl`: every run adds the rows it rejects, and never wipes what
    another run wrote. A row rejected again for the same reason (the same command run
    twice) is counted but not written twice."""

    def __init__(self, out_dir: Path) -> None:
        path = out_dir / "rejected.jsonl"
        self._known = self._read_known(path)
        super().__init__(path, append=True)
        self.reasons: Counter[str] = Counter()

    @staticmethod
    def _identity(source: Any, row: Any, reason: Any, session_id: Any) -> int:
        text = f"{source}\x1f{row}\x1f{reason}\x1f{session_id}"
        return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")

    @classmethod
    def _read_known(cls, path: Path) -> set[int]:
        known: set[int] = set()
        try:
            with open(path, "rb") as handle:
                for line in handle:
                    try:
                        data = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        continue  # a torn line of a killed run
                    if isinstance(data, dict):
                        known.add(
                            cls._identity(
                                data.get("source"),
                                data.get("row"),
                                data.get("reason"),
                                data.get("session_id"),
                            )
                        )
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise JournalError(f"cannot read {path}: {exc.strerror or exc}") from None
        return known

    def add(self, rejection: Rejection) -> None:
        self.reasons[rejection.reason] += 1
        identity = self._identity(
            rejection.source, rejection.row, rejection.reason, rejection.session_id
        )
        if identity in self._known:
            return
        self._known.add(identity)
        self.write(rejection.to_dict())


# --- score columns ----------------------------------------------------------------

SCORES = "scores.jsonl"


def root_span_id(session_id: str) -> str:
    """The id Braintrust gives a trace's root span on import: rows upsert onto it."""
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, "root:" + session_id))


def score_row(record: Record) -> dict[str, Any]:
    """One row of `OUT/scores.jsonl` for a (session, judge slot) record."""
    return {
        "id": root_span_id(record.session_id),
        "session_id": record.session_id,
        "judge_slot": record.slot,
        "judge_model": record.judge,
        "scores": {
            "task_success": record.success if record.status == OK else None,
            **{
                f"criterion:{name}": value if record.status == OK else None
                for name, value in (record.criteria or {}).items()
            },
        },
        "metadata": {
            "judge_confidence": record.confidence,
            "judge_reasoning": record.reasoning,
            "failure_mode": record.failure_mode,
            "failure_step": record.failure_step,
            "failure_note": record.failure_note,
            "rubric": record.rubric,
            "rubric_version": record.rubric_version,
            "benchmark": record.benchmark,
            "harness": record.harness,
            "agent_model": record.grouping_model,
            "agent_models": list(record.agent_models),
            "guard": record.guard,
            "status": record.status,
            "error": record.error,
        },
        "usage": record.usage,
        "latency_ms": record.latency_ms,
    }


#: What the score columns were last made from: the journal's size and the panel.
SCORES_STATE = ".scores-state"
#: The score rows' shape; a folder whose scores.jsonl has another is rewritten.
SCORES_FORMAT = 2


def scores_state(out_dir: Path) -> dict[str, Any]:
    """The state `mark_scores` wrote, or {} when there is none to trust."""
    with contextlib.suppress(OSError, orjson.JSONDecodeError):
        data = orjson.loads((out_dir / SCORES_STATE).read_bytes())
        if isinstance(data, dict):
            return data
    return {}


def mark_scores(out_dir: Path, journal_bytes: int, panel: list[str], rows: int) -> None:
    """Record that scores.jsonl is complete for this journal size and panel, so a run
    that finds both unchanged need not rewrite it (a finished run of 100,000 sessions
    resumes in seconds)."""
    state = {"journal_bytes": journal_bytes, "panel": panel, "rows": rows, "v": SCORES_FORMAT}
    with contextlib.suppress(OSError, UnsafePath):
        write_atomic(out_dir / SCORES_STATE, orjson.dumps(state))


def scores_current(out_dir: Path, journal_bytes: int, panel: list[str]) -> int | None:
    """The rows of scores.jsonl if it is complete for this journal size and panel."""
    state = scores_state(out_dir)
    if (
        state.get("journal_bytes") == journal_bytes
        and state.get("v") == SCORES_FORMAT
        and state.get("panel") == panel
        and isinstance(state.get("rows"), int)
        and (out_dir / SCORES).is_file()
    ):
        return int(state["rows"])
    return None


def rebuild_scores(out_dir: Path) -> int:
    """Rewrite `OUT/scores.jsonl` from the journal: exactly one row per (session, slot)
    of the current panel, from the latest record of each (`results`).

    During a run rows stream in as verdicts finish; a resumed or re-graded run may have
    left a row twice or not at all, so every completed run ends with this rewrite
    (written to a temporary file, fsync'd, then renamed over the old one).
    """
    target = out_dir / SCORES
    temporary = out_dir / (SCORES + ".tmp")
    rows = 0
    view = Results(out_dir, read_panel(out_dir))
    with open(temporary, "wb") as handle:
        # Repeats feed `agree`; the score column is the first sample.
        for record in view.latest(first_sample=True):
            handle.write(orjson.dumps(score_row(record)) + b"\n")
            rows += 1
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, target)
    return rows


# --- export -------------------------------------------------------------------------

EXPORT_FORMATS = ("parquet", "csv", "jsonl", "braintrust")


def column_name(slot: str) -> str:
    """A judge slot as a column-name prefix: letters, digits and underscores."""
    return re.sub(r"[^0-9A-Za-z]+", "_", slot).strip("_") or "judge"


def session_rows(
    out_dir: Path, *, all_judges: bool = False
) -> tuple[list[str], list[dict[str, Any]]]:
    """One row per session with a column group per judge slot, keyed by session_id;
    slots in panel order (`results`), the first also as task_success."""
    view = open_results(out_dir, all_judges=all_judges)
    rows: dict[str, dict[str, Any]] = {}
    seen: list[str] = []
    criteria: dict[str, None] = {}
    for record in view.latest(first_sample=True):
        session_id, slot = record.session_id, record.slot
        if slot not in seen:
            seen.append(slot)
        row = rows.setdefault(
            session_id,
            {
                "session_id": session_id,
                "benchmark": record.benchmark,
                "harness": record.harness,
                "agent_model": record.grouping_model,
                "agent_models": ", ".join(record.agent_models),
            },
        )
        prefix = column_name(slot)
        row[f"{prefix}__success"] = verdict_of(record)
        row[f"{prefix}__confidence"] = record.confidence
        row[f"{prefix}__reasoning"] = record.reasoning
        row[f"{prefix}__judge_model"] = record.judge
        row[f"{prefix}__status"] = record.status
        row[f"{prefix}__error"] = record.error
        row[f"{prefix}__failure_mode"] = record.failure_mode
        row[f"{prefix}__failure_step"] = record.failure_step
        row[f"{prefix}__failure_note"] = record.failure_note
        for name, value in (record.criteria or {}).items():
            criteria[name] = None
            row[f"{prefix}__criterion:{name}"] = value if record.status == OK else None
    slots = view.slot_order(seen)
    columns = [
        "session_id", "benchmark", "harness", "agent_model", "agent_models", "task_success",
        "failure_mode", *(f"criterion:{name}" for name in criteria),
    ]  # fmt: skip
    for slot in slots:
        prefix = column_name(slot)
        columns += [
            f"{prefix}__{c}"
            for c in ("success", "confidence", "reasoning", "judge_model", "status", "error",
                      "failure_mode", "failure_step", "failure_note")
        ]  # fmt: skip
        columns += [f"{prefix}__criterion:{name}" for name in criteria]
    first = column_name(slots[0]) if slots else None
    out = []
    for row in rows.values():
        row["task_success"] = row.get(f"{first}__success") if first else None
        row["failure_mode"] = row.get(f"{first}__failure_mode") if first else None
        for name in criteria:
            row[f"criterion:{name}"] = row.get(f"{first}__criterion:{name}") if first else None
        out.append({c: row.get(c) for c in columns})
    return slots, out


def export(
    out_dir: Path,
    to: str,
    target: Path | None = None,
    *,
    all_judges: bool = False,
    stream: IO[bytes] | None = None,
) -> tuple[Path, int]:
    """Write the score columns, one row per session, for joining or upserting: to
    `target` (default OUT/scores-by-session.*), or to `stream` (stdout)."""
    if to not in EXPORT_FORMATS:
        raise ValueError(f"--to must be one of {', '.join(EXPORT_FORMATS)}")
    slots, rows = session_rows(out_dir, all_judges=all_judges)
    if stream is not None:
        _write_rows(stream, to, slots, rows)
        stream.flush()
        return Path("-"), len(rows)
    suffix = {"parquet": ".parquet", "csv": ".csv", "jsonl": ".jsonl", "braintrust": ".jsonl"}[to]
    name = "scores-braintrust" if to == "braintrust" else "scores-by-session"
    path = target or out_dir / f"{name}{suffix}"
    # Written beside the target and renamed over it: a kill never leaves a truncated
    # file that looks complete.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            _write_rows(handle, to, slots, rows)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    return path, len(rows)


def _write_rows(handle: IO[bytes], to: str, slots: list[str], rows: list[dict[str, Any]]) -> None:
    """The session rows in one format, written to a binary stream."""
    if to == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows, schema=_schema(rows)), handle)
    elif to == "csv":
        text = io.TextIOWrapper(handle, encoding="utf-8", newline="", write_through=True)
        fields = list(rows[0]) if rows else ["session_id"]
        writer = csv.DictWriter(text, fieldnames=fields)
        writer.writeheader()
        writer.writerows({k: _csv_cell(v) for k, v in row.items()} for row in rows)
        text.detach()  # the caller's stream stays open
    else:
        for row in rows:
            line = _braintrust_row(row, slots) if to == "braintrust" else row
            handle.write(orjson.dumps(line) + b"\n")


def _schema(rows: list[dict[str, Any]]) -> Any:
    """The Parquet schema of the session rows: text columns are strings even when every
    value is empty (a null-typed column breaks the next append or join), verdicts are
    small integers."""
    import pyarrow as pa

    names = list(rows[0]) if rows else ["session_id"]

    def kind(name: str) -> Any:
        if name == "task_success" or name.endswith("__success") or "criterion:" in name:
            return pa.int8()
        if name.endswith("__failure_step"):
            return pa.int32()
        return pa.string()

    return pa.schema([pa.field(n, kind(n)) for n in names])


#: A spreadsheet runs a cell that starts with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> Any:
    """A value fit for a CSV cell that a spreadsheet will open: text that would start a
    formula (a judge's reasoning, a session id from a trace) gets a leading quote."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _braintrust_row(row: dict[str, Any], slots: list[str]) -> dict[str, Any]:
    """A merge-upsert onto the session's root span: every slot under its own score name
    (`task_success` is the first slot), so panel verdicts do not overwrite each other."""
    scores: dict[str, Any] = {"task_success": row["task_success"]}
    scores.update((k, v) for k, v in row.items() if k.startswith("criterion:"))
    metadata: dict[str, Any] = {"failure_mode": row.get("failure_mode")}
    for slot in slots:
        prefix = column_name(slot)
        scores[f"task_success_{prefix}"] = row.get(f"{prefix}__success")
        metadata[f"judge_{prefix}"] = {
            "model": row.get(f"{prefix}__judge_model"),
            "confidence": row.get(f"{prefix}__confidence"),
            "reasoning": row.get(f"{prefix}__reasoning"),
            "status": row.get(f"{prefix}__status"),
            "failure_mode": row.get(f"{prefix}__failure_mode"),
            "failure_step": row.get(f"{prefix}__failure_step"),
            "failure_note": row.get(f"{prefix}__failure_note"),
        }
    return {
        "id": root_span_id(row["session_id"]),
        "_is_merge": True,
        "scores": scores,
        "metadata": metadata,
    }


# --- verification ---------------------------------------------------------------------


@dataclass
class Verification:
    records: int = 0
    keys: int = 0
    verdicts: int = 0
    failures: int = 0
    skips: int = 0
    score_rows: int = 0
    #: Lines of transcripts.jsonl checked (what the judges read).
    transcripts: int = 0
    torn_tail: bool = False
    problems: list[str] = field(default_factory=list)
    #: Failures by reason (the error's first word), for the run's record.
    failure_reasons: Counter[str] = field(default_factory=Counter)
    #: Requests a batch's files answered twice, differently (`batches.jsonl`): neither
    #: answer was taken and they were asked again.
    conflicting: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def _conflicts(out_dir: Path) -> int:
    """Requests a batch's files answered twice, differently, as the log of submissions
    records them."""
    keys: set[str] = set()
    for name in (SUBMISSIONS, ANTHROPIC_SUBMISSIONS):
        path = out_dir / name
        if not path.exists():
            continue
        with open(path, "rb") as handle:
            for line in handle:
                with contextlib.suppress(orjson.JSONDecodeError, AttributeError, TypeError):
                    event = orjson.loads(line)
                    if event.get("event") == "conflict":
                        keys.update(k for k in event.get("keys", ()) if isinstance(k, str))
    return len(keys)


def verify(out_dir: Path, *, max_problems: int = 50, live: bool = False) -> Verification:
    """Check the journal's integrity and that scores.jsonl is exactly what it implies.

    Every line must parse, carry valid fields and the key its own fields hash to (an
    edited or corrupted line shows); no request may hold two verdicts; and every
    score row must equal the row the journal's latest record for its (session, slot)
    gives, with none missing or extra. A torn last line is reported, not an error:
    the next run cuts it. `live`: a run is writing OUT now, so only the journal up to
    its size at the start (and the kept transcripts) are checked: the score columns
    are final only when the run ends.
    """
    report = Verification()

    def problem(text: str) -> None:
        if len(report.problems) < max_problems:
            report.problems.append(text)
        elif len(report.problems) == max_problems:
            report.problems.append("(more problems not listed)")

    journal = out_dir / JOURNAL
    if not journal.exists():
        problem(f"no {JOURNAL} in {out_dir}")
        return report
    statuses: dict[str, list[str]] = {}
    end = journal.stat().st_size if live else None
    read = 0
    with open(journal, "rb") as handle:
        for number, line in enumerate(handle, 1):
            read += len(line)
            if end is not None and read > end:
                break  # appended since this check began
            if not line.endswith(b"\n"):
                report.torn_tail = not live  # a live run is mid-write
                break
            report.records += 1
            record = parse_record(line)
            if not isinstance(record, Record):
                problem(f"journal line {number}: skipped, {record}")
                continue
            expected = request_key(
                record.session_id,
                record.slot,
                record.judge or "",
                record.rubric_version,
                record.prompt_version,
                record.sample,
            )
            if record.key != expected:
                problem(f"journal line {number}: key does not match its fields (edited?)")
            if record.status == OK:
                report.verdicts += 1
                if record.success not in (0, 1) or record.confidence not in CONFIDENCES:
                    problem(f"journal line {number}: a verdict without valid success/confidence")
            elif record.status == FAILED:
                report.failures += 1
                report.failure_reasons[(record.error or "unknown").split(":")[0]] += 1
                if not record.error:
                    problem(f"journal line {number}: a failure without its reason")
            elif record.status == SKIPPED:
                report.skips += 1
                if record.judge is not None:
                    problem(f"journal line {number}: a skip that names a judge")
            else:
                problem(f"journal line {number}: unknown status {record.status!r}")
            seen = statuses.setdefault(record.key, [])
            # A second verdict is a duplicate, unless the row changed in between and
            # it was graded again (--regrade-changed): then its fingerprint differs.
            graded = f"{OK}:{record.fingerprint}"
            if record.status == OK and graded in seen:
                problem(
                    f"journal line {number}: a second verdict for session "
                    f"{record.session_id} slot {record.slot} (duplicated)"
                )
            seen.append(graded if record.status == OK else record.status)
    report.keys = len(statuses)
    report.conflicting = _conflicts(out_dir)
    if live:
        report.transcripts, kept_problems = transcripts.check(out_dir)
        for text in kept_problems:
            problem(text)
        return report

    view = Results(out_dir, read_panel(out_dir))
    expected_rows = {(r.session_id, r.slot): score_row(r) for r in view.latest(first_sample=True)}
    scores = out_dir / SCORES
    found: set[tuple[str, str]] = set()
    if scores.exists():
        with open(scores, "rb") as handle:
            for number, line in enumerate(handle, 1):
                report.score_rows += 1
                try:
                    row = orjson.loads(line)
                    pair = (row["session_id"], row["judge_slot"])
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    problem(f"scores line {number}: unreadable")
                    continue
                if pair in found:
                    problem(f"scores line {number}: a second row for {pair[0]} / {pair[1]}")
                found.add(pair)
                want = expected_rows.get(pair)
                if want is None:
                    problem(f"scores line {number}: {pair[0]} / {pair[1]} is not in the journal")
                elif orjson.loads(orjson.dumps(want)) != row:
                    problem(f"scores line {number}: differs from the journal's latest record")
    missing = set(expected_rows) - found
    for session, slot in sorted(missing)[:5]:
        problem(f"scores.jsonl lacks {session} / {slot}")
    if len(missing) > 5:
        problem(f"... and {len(missing) - 5} more rows missing from scores.jsonl")
    report.transcripts, kept_problems = transcripts.check(out_dir)
    for text in kept_problems:
        problem(text)
    return report
