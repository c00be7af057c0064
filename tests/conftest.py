"""Shared test helpers: writing rows in each file format, and a clean environment."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import pytest

from judge_engine.journal import Record, request_key


def write_jsonl(path: Path, rows: Iterable[dict[str, Any] | bytes]) -> Path:
    with open(path, "wb") as handle:
        for row in rows:
            handle.write(row if isinstance(row, bytes) else orjson.dumps(row))
            handle.write(b"\n")
    return path


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def make_record(
    session: str,
    slot: str = "j",
    success: int | None = 1,
    *,
    judge: str | None = None,
    status: str = "ok",
    sample: int = 0,
    confidence: str = "high",
    **fields: Any,
) -> Record:
    """A journal record as a grade run writes it; its key hashed from its own fields."""
    judge = judge or slot
    versions = {"rubric_version": "r", "prompt_version": "p", "rubric": "default"}
    versions.update({k: fields.pop(k) for k in list(versions) if k in fields})
    return Record(
        key=request_key(
            session, slot, judge, versions["rubric_version"], versions["prompt_version"], sample
        ),
        session_id=session,
        slot=slot,
        judge=judge,
        sample=sample,
        status=status,
        success=success if status == "ok" else None,
        confidence=confidence if status == "ok" else None,
        **versions,
        **fields,
    )


def grade_argv(source: str, url: str, out: Path, *extra: str) -> list[str]:
    """`judge-engine grade` as a subprocess, one judge unless `extra` adds more."""
    return [
        sys.executable,
        "-m",
        "judge_engine",
        "grade",
        source,
        "--judge",
        "gpt-4.1",
        "--base-url",
        url,
        "--out",
        str(out),
        *extra,
    ]


def reset_peak() -> None:
    """Start this process's peak memory (VmHWM) afresh, so that what a test holds shows
    (ru_maxrss never goes down, and a child inherits it across exec)."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def memory_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (VmRSS:, VmHWM:), in MB."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


@pytest.fixture(autouse=True)
def _offline_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests talk only to loopback: never let the hub client probe the network.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
