"""A run's results read back: the one read model of the journal.

In: `OUT/journal.jsonl` and `OUT/run.json`. Out: a `Results` view that scores, export,
agree and report all read through, so they agree on three things:

- *latest*: the newest record of each request (a session's judge slot and sample)
  stands for it, whatever its status: a later failure replaces an earlier verdict, a
  later verdict (a re-grade, a new rubric version) replaces an earlier one;
- *order*: judge slots in the order of `--judge` in the run (the first is
  `task_success`), judge models in panel order, then fallbacks, then any other;
- *panel*: only the slots of the run's current panel count, so a judge dropped from
  the command (a typo fixed, a judge swapped) leaves scores, export, agree and report;
  its records stay in the journal, and `all_judges` shows them again.

A folder without `run.json` (a journal copied alone) shows every slot, in the order of
first appearance. `majority` is the one majority vote: the verdict more than half of
the votes give, none on a tie.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .journal import JOURNAL, OK, Record, iter_latest, iter_latest_fields

RUN_FILE = "run.json"


@dataclass(frozen=True)
class Panel:
    """The judges a run was asked to use, as its run.json records them."""

    judges: tuple[str, ...]
    fallbacks: tuple[str, ...] = ()


def read_panel(out_dir: Path) -> Panel | None:
    """The current panel from `OUT/run.json` (this version's grouped shape, or the
    first version's flat one), or None when there is none to read."""
    path = out_dir / RUN_FILE
    with contextlib.suppress(OSError, orjson.JSONDecodeError):
        data = orjson.loads(path.read_bytes())
        if isinstance(data, dict):
            inner = data.get("panel")
            group: dict[str, Any] = inner if isinstance(inner, dict) else data
            judges = group.get("judge", group.get("judges"))
            fallbacks = group.get("fallback_judge", group.get("fallback_judges")) or []
            if isinstance(judges, list) and judges and all(isinstance(j, str) for j in judges):
                return Panel(tuple(judges), tuple(str(f) for f in fallbacks if isinstance(f, str)))
    return None


def read_sources(out_dir: Path) -> tuple[str, ...]:
    """The sources the latest run on OUT read, as its run.json records them."""
    with contextlib.suppress(OSError, orjson.JSONDecodeError):
        data = orjson.loads((out_dir / RUN_FILE).read_bytes())
        group = data.get("sources") if isinstance(data, dict) else None
        sources = group.get("sources") if isinstance(group, dict) else None
        if isinstance(sources, list):
            return tuple(s for s in sources if isinstance(s, str))
    return ()


def majority(votes: Sequence[int]) -> int | None:
    """The verdict more than half the votes give; None on a tie or without votes."""
    if not votes:
        return None
    ones = sum(votes)
    if 2 * ones > len(votes):
        return 1
    if 2 * ones < len(votes):
        return 0
    return None


@dataclass(frozen=True)
class Results:
    """How to read one results folder (see the module docstring)."""

    out_dir: Path
    #: The run's current panel; None when the folder does not say.
    panel: Panel | None
    #: Show every slot the journal holds, not only the current panel's.
    all_judges: bool = False

    @property
    def journal(self) -> Path:
        return self.out_dir / JOURNAL

    def shows(self, slot: str) -> bool:
        """Whether records of this judge slot count."""
        return self.all_judges or self.panel is None or slot in self.panel.judges

    def latest(self, *, first_sample: bool = False) -> Iterator[Record]:
        """The newest record of each request whose slot counts, in journal order;
        with `first_sample`, only sample 0 (what the score columns show)."""
        for record in iter_latest(self.journal):
            if (not first_sample or record.sample == 0) and self.shows(record.slot):
                yield record

    def latest_fields(self, *, first_sample: bool = False) -> Iterator[dict[str, Any]]:
        """`latest`'s records as their fields (no `Record` built: for readers of a few
        fields of many records, such as the report)."""
        for data in iter_latest_fields(self.journal):
            if (not first_sample or data["sample"] == 0) and self.shows(data["slot"]):
                yield data

    def slot_order(self, seen: Iterable[str]) -> list[str]:
        """Slots in panel order (the first is task_success), then others as seen."""
        head = list(self.panel.judges) if self.panel else []
        seen = list(dict.fromkeys(seen))
        if self.panel is not None and not self.all_judges:
            return [slot for slot in head if slot in seen]
        return [slot for slot in head if slot in seen] + [s for s in seen if s not in head]

    def judge_order(self, seen: Iterable[str]) -> list[str]:
        """Judge models in panel order, then fallbacks, then any other as seen."""
        head = [*self.panel.judges, *self.panel.fallbacks] if self.panel else []
        seen = list(dict.fromkeys(seen))
        return [j for j in dict.fromkeys(head) if j in seen] + [s for s in seen if s not in head]

    def hidden_slots(self) -> list[str]:
        """Slots the journal holds that the current panel leaves out."""
        if self.all_judges or self.panel is None:
            return []
        return list(
            dict.fromkeys(
                r.slot for r in iter_latest(self.journal) if r.slot not in self.panel.judges
            )
        )


def open_results(out_dir: Path, *, all_judges: bool = False) -> Results:
    """The results of OUT, or FileNotFoundError (one line) when it holds no journal."""
    if not (out_dir / JOURNAL).is_file():
        what = "no such folder" if not out_dir.exists() else f"it holds no {JOURNAL}"
        raise FileNotFoundError(f"{out_dir}: {what}; grade into it first")
    return Results(out_dir, read_panel(out_dir), all_judges)


def verdict_of(record: Record) -> int | None:
    """A record's verdict: its success when it is one, else None."""
    return record.success if record.status == OK else None


__all__ = [
    "RUN_FILE",
    "Panel",
    "Results",
    "majority",
    "open_results",
    "read_panel",
    "read_sources",
    "verdict_of",
]
