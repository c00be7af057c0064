"""Files a run writes besides the journal: rejected rows and previewed requests.

In: `Rejection`s and `JudgeRequest`s. Out: `OUT/rejected.jsonl` (one line per row that
could not become a session, with its reason) and `OUT/requests.jsonl` (preview).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import orjson

from .sessions import Rejection


class JsonlWriter:
    """Append JSON lines to a file, flushed line by line."""

    def __init__(self, path: Path, *, append: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._handle: IO[bytes] = open(path, "ab" if append else "wb")  # noqa: SIM115
        self.count = 0

    def write(self, record: dict[str, Any]) -> None:
        self._handle.write(orjson.dumps(record, default=str) + b"\n")
        self._handle.flush()
        self.count += 1

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class RejectLog(JsonlWriter):
    """`OUT/rejected.jsonl`, rewritten by every run (re-reading re-rejects the same rows)."""

    def __init__(self, out_dir: Path) -> None:
        super().__init__(out_dir / "rejected.jsonl")
        self.reasons: Counter[str] = Counter()

    def add(self, rejection: Rejection) -> None:
        self.write(rejection.to_dict())
        self.reasons[rejection.reason] += 1
