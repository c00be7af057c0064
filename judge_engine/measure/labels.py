"""Labels: people's verdicts on sessions, read in, merged, and sampled for labelling.

In: a labels file (JSONL, CSV or Parquet with `session_id` and `label`, or `success`,
`passed`, `resolved` as its name; optional `labeler`, `failure_mode`, `note`), the
labels the source rows carry (from the journal), and for sampling the graded sessions.
Out: `Labels` (one 0/1 label a session, where each came from, how many disagreed and
whether they were drawn at random from the graded sessions), and a seeded, stratified
random sample of graded sessions written as a sheet to fill in.

Labels are never sent to a judge: they are read only by `report` and `agree`.
"""

from __future__ import annotations

import csv
import io
import random
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

from ..files import TABLE_FILE, read_small

#: The names a label column goes by, first found wins.
LABEL_NAMES = ("label", "success", "passed", "resolved")
_VALUES = {
    "1": 1, "0": 0, "true": 1, "false": 0, "yes": 1, "no": 0, "success": 1, "failure": 0,
    "pass": 1, "fail": 0, "passed": 1, "failed": 0, "1.0": 1, "0.0": 0,
}  # fmt: skip
#: The column of a sheet `sample` writes that says how it was drawn; a labels file that
#: carries it is a random sample of the graded sessions (PPI++ may use it).
DRAWN = "drawn"


class LabelsError(ValueError):
    """A labels file that cannot be used: one line that says why."""


def parse_label(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)) and value in (0, 1):
        return int(value)
    if isinstance(value, str):
        return _VALUES.get(value.strip().lower())
    return None


@dataclass
class Labels:
    """One 0/1 label a session, and what is known of them."""

    by_session: dict[str, int] = field(default_factory=dict)
    #: Where they came from, in words ("the file x.csv, then the source rows").
    sources: list[str] = field(default_factory=list)
    #: Sessions both the file and the source rows label, differently (the file wins).
    conflicts: int = 0
    #: A failure mode, a labeler and a note a session's label came with (the file's).
    failure_mode: dict[str, str] = field(default_factory=dict)
    labeler: dict[str, str] = field(default_factory=dict)
    #: Whether the labelled sessions were drawn at random from the graded ones
    #: (`sample` wrote the sheet), as PPI++ needs: its description, else "".
    drawn: str = ""
    #: Rows of the file whose label was left empty (a sheet not wholly filled in).
    left_empty: int = 0

    def __len__(self) -> int:
        return len(self.by_session)

    def to_json(self) -> dict[str, Any]:
        return {"n": len(self), "sources": self.sources, "conflicts": self.conflicts,
                "drawn": self.drawn or None, "left_empty": self.left_empty}  # fmt: skip


def _rows(path: Path) -> Iterator[Mapping[str, Any]]:
    name = path.name.lower()
    if name.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (pa.ArrowException, OSError) as exc:
            raise LabelsError(f"--labels {path}: not a Parquet file ({exc})") from None
        yield from table.to_pylist()
        return
    text = read_small(path, "--labels", TABLE_FILE).decode("utf-8-sig")
    if name.endswith((".jsonl", ".json", ".ndjson")):
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:
                raise LabelsError(f"--labels {path} line {number}: not JSON") from None
            if not isinstance(row, dict):
                raise LabelsError(f"--labels {path} line {number}: not an object")
            yield row
        return
    yield from csv.DictReader(io.StringIO(text))


def read_labels(path: Path) -> Labels:
    """The labels of a file (module docstring); `LabelsError` names a bad row. Rows
    whose label is empty (a sheet not filled in yet) are left out."""
    labels = Labels(sources=[f"the file {path.name}"])
    drawn: set[str] = set()
    for number, row in enumerate(_rows(path), 1):
        session = row.get("session_id")
        raw = next((row[n] for n in LABEL_NAMES if n in row and row[n] not in (None, "")), None)
        if session in (None, "") or raw is None:
            if session not in (None, "") and any(n in row for n in LABEL_NAMES):
                labels.left_empty += 1  # not labelled yet
                continue
            raise LabelsError(f"--labels {path} row {number}: needs session_id and a label")
        label = parse_label(raw)
        if label is None:
            raise LabelsError(f"--labels {path} row {number}: the label {raw!r} is not 0/1")
        key = _uncell(str(session))
        labels.by_session[key] = label
        for column, store in (("failure_mode", labels.failure_mode), ("labeler", labels.labeler)):
            value = row.get(column)
            if isinstance(value, str) and value.strip():
                store[key] = value.strip()
        if isinstance(row.get(DRAWN), str) and row[DRAWN].strip():
            drawn.add(row[DRAWN].strip())
    if len(drawn) == 1:
        labels.drawn = drawn.pop()
    return labels


def merge(carried: Mapping[str, int], given: Labels | None) -> Labels:
    """The labels the source rows carry, then the file's over them (the file wins
    where both say, and the disagreements are counted)."""
    if given is None:
        merged = Labels(dict(carried))
        if carried:
            merged.sources = ["the source rows (their success/label/resolved/passed field)"]
        return merged
    merged = Labels(
        dict(carried),
        list(given.sources),
        failure_mode=dict(given.failure_mode),
        labeler=dict(given.labeler),
        drawn=given.drawn,
        left_empty=given.left_empty,
    )
    for session, label in given.by_session.items():
        if session in carried and carried[session] != label:
            merged.conflicts += 1
        merged.by_session[session] = label
    if carried:
        merged.sources.append("the source rows where the file says nothing")
        merged.drawn = ""  # labels beside the sample: no longer a random sample
    return merged


@dataclass(frozen=True)
class Candidate:
    """A graded session that may be drawn for labelling."""

    session_id: str
    benchmark: str
    harness: str
    agent_model: str
    task: str = ""
    answer: str = ""
    verdicts: Mapping[str, int | None] = field(default_factory=dict)


_TURN = re.compile(r"\n\[\d+\] assistant\n")
_END = re.compile(r"\n<<<END UNTRUSTED RECORD [0-9a-f]+>>>")


def final_answer(text: str) -> str:
    """The agent's last message as the judges read it (the transcript's last assistant
    turn), or "" when it has none."""
    turns = list(_TURN.finditer(text))
    if not turns:
        return ""
    tail = text[turns[-1].end() :]
    end = _END.search(tail)
    return (tail[: end.start()] if end else tail).strip()


def task_of(text: str) -> str:
    """The task as the judges read it (the record's Task section)."""
    start = text.find("## Task\n")
    if start < 0:
        return ""
    start += len("## Task\n")
    end = text.find("\n## ", start)
    return text[start : end if end >= 0 else None].strip()


def candidates(out_dir: Path) -> list[Candidate]:
    """The sessions of a results folder that hold a verdict of the current panel, with
    what a person labelling them reads: the task and the agent's final answer as the
    judges read them, and every slot's verdict (hidden from the sheet by default)."""
    from .. import transcripts
    from ..results import open_results, verdict_of

    view = open_results(out_dir)
    facts: dict[str, dict[str, Any]] = {}
    for record in view.latest(first_sample=True):
        fact = facts.setdefault(
            record.session_id,
            {"benchmark": record.benchmark or "unknown", "harness": record.harness or "unknown",
             "agent_model": record.grouping_model, "verdicts": {}},
        )  # fmt: skip
        fact["verdicts"][record.slot] = verdict_of(record)
    kept = transcripts.latest(out_dir)
    out = []
    for session, fact in sorted(facts.items()):
        if all(v is None for v in fact["verdicts"].values()):
            continue  # never graded: nothing to measure a judge against
        item = kept.get(session)
        text = item.text() if item is not None else ""
        out.append(
            Candidate(
                session, fact["benchmark"], fact["harness"], fact["agent_model"],
                task_of(text), final_answer(text), fact["verdicts"],
            )
        )  # fmt: skip
    return out


def sample(
    candidates: Sequence[Candidate], n: int, *, per: str | None = None, seed: int = 0
) -> tuple[list[Candidate], str]:
    """A seeded random sample of `n` graded sessions; with `per` ("benchmark",
    "harness" or "agent_model"), stratified: each stratum gets a share of `n` in
    proportion to its size (at least one each while `n` allows, largest remainders
    first), drawn at random within it. Returns the sample and how it was drawn."""
    rng = random.Random(seed)
    if per is None:
        simple = rng.sample(list(candidates), min(n, len(candidates)))
        return sorted(simple, key=lambda c: c.session_id), (
            f"judge-engine labels sample: {len(simple)} of {len(candidates)} graded "
            f"sessions, simple random, seed {seed}"
        )
    strata: dict[str, list[Candidate]] = defaultdict(list)
    for candidate in candidates:
        strata[getattr(candidate, per)].append(candidate)
    total = len(candidates)
    quota = {name: n * len(items) / total for name, items in strata.items()}
    take = {name: min(len(strata[name]), int(q)) for name, q in quota.items()}
    for name in sorted(strata, key=lambda k: (-(quota[k] - int(quota[k])), k)):
        if sum(take.values()) >= min(n, total):
            break
        if take[name] < len(strata[name]):
            take[name] += 1
    chosen: list[Candidate] = []
    for name in sorted(strata):
        chosen += rng.sample(strata[name], take[name])
    shares = ", ".join(f"{name} {take[name]} of {len(strata[name])}" for name in sorted(strata))
    return sorted(chosen, key=lambda c: c.session_id), (
        f"judge-engine labels sample: {len(chosen)} of {total} graded sessions, stratified "
        f"by {per} ({shares}), random within each, seed {seed}"
    )


SHEET_COLUMNS = (
    "session_id", "benchmark", "harness", "agent_model", "task", "final_answer", "label",
    "failure_mode", "labeler", "note", DRAWN,
)  # fmt: skip


def sheet(
    chosen: Iterable[Candidate], drawn: str, *, verdicts: bool = False, link: str | None = None
) -> str:
    """The sample as a CSV sheet to fill in: the `label` column empty, the judges'
    verdicts hidden unless asked for, every row saying how it was drawn; with `link`
    (an HTML report's URL), a column opening each session's view in it."""
    buffer = io.StringIO()
    columns = list(SHEET_COLUMNS) + (["view"] if link else [])
    rows = list(chosen)
    judges = sorted({j for c in rows for j in c.verdicts}) if verdicts else []
    writer = csv.writer(buffer)
    writer.writerow(columns + [f"judge:{j}" for j in judges])
    for candidate in rows:
        values = [
            _cell(candidate.session_id), _cell(candidate.benchmark), _cell(candidate.harness),
            _cell(candidate.agent_model), _cell(candidate.task), _cell(candidate.answer),
            "", "", "", "", drawn,
        ]  # fmt: skip
        if link:
            values.append(f"{link}#session={quote(candidate.session_id, safe='')}")
        values += ["" if candidate.verdicts.get(j) is None else str(candidate.verdicts[j])
                   for j in judges]  # fmt: skip
        writer.writerow(values)
    return buffer.getvalue()


#: A cell starting so is a formula to a spreadsheet: the sheet writes it after a quote.
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(text: str, limit: int = 2000) -> str:
    """A long text cut for a sheet's cell; a formula start neutralized."""
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return "'" + text if text[:1] in _FORMULA else text


def _uncell(text: str) -> str:
    """A session id as the sheet wrote it, back (the quote before a formula start off)."""
    return text[1:] if text[:1] == "'" and text[1:2] in _FORMULA and len(text) > 1 else text


__all__ = [
    "DRAWN",
    "LABEL_NAMES",
    "Candidate",
    "Labels",
    "LabelsError",
    "candidates",
    "final_answer",
    "merge",
    "parse_label",
    "read_labels",
    "sample",
    "sheet",
    "task_of",
]
