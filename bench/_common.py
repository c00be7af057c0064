"""Helpers the benchmarks share: the simulator in its own process, generated sessions,
and child processes measured exactly (CPU seconds and peak RSS per process, from
os.wait4, so the simulator's work never counts as the engine's)."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from judge_engine.testing import synth

KEY = "sk-bench-not-a-real-key"
BENCHMARKS = ("swebench", "tau2_airline", "tau2_retail", "appworld", "browsecompplus")


def machine() -> str:
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {sys.version.split()[0]}, {platform.system()} {platform.release()}"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Sim:
    """`judge-engine sim` in its own process."""

    def __init__(self, *args: str) -> None:
        port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "judge_engine", "sim", "--port", str(port), *args],
            stdout=subprocess.DEVNULL,
        )
        self.base = f"http://127.0.0.1:{port}"
        self.url = self.base + "/v1"
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(self.base + "/health", timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the simulator did not start") from None
                time.sleep(0.1)

    def stats(self, times: bool = False) -> dict[str, Any]:
        with urllib.request.urlopen(
            self.base + "/sim/stats" + ("?times=1" if times else ""), timeout=60
        ) as reply:
            return orjson.loads(reply.read())  # type: ignore[no-any-return]

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)

    def __enter__(self) -> Sim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_sessions(
    path: Path,
    count: int,
    *,
    size: str = "small",
    seed: int = 0,
    calls: int | None = None,
    turn_bytes: int | None = None,
    fmt: str = "jsonl",
) -> Path:
    """`count` OTel sessions: "small" (4 calls, ~8 KB rows) or "large" (30 calls of 2 KB
    turns, ~1.4 MB rows), or `calls` and `turn_bytes` of your own; as JSONL or Parquet.
    A few templates reused under fresh ids keep generation fast."""
    default_calls, default_turn = (4, 300) if size == "small" else (30, 2000)
    templates = [
        synth.otel_row(
            "t",
            BENCHMARKS[i % len(BENCHMARKS)],
            calls=calls or default_calls,
            turn_bytes=turn_bytes or default_turn,
            seed=seed + i,
            reasoning=True,
            success=i % 3 > 0,
        )
        for i in range(5)
    ]

    def rows(start: int, stop: int) -> list[dict[str, Any]]:
        return [
            dict(templates[n % len(templates)], session_id=f"s{n:07d}") for n in range(start, stop)
        ]

    if fmt == "jsonl":
        with open(path, "wb") as handle:
            for number in range(count):
                handle.write(orjson.dumps(rows(number, number + 1)[0]) + b"\n")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pa.Table.from_pylist(templates[:1]).schema
        with pq.ParquetWriter(path, schema) as writer:
            for start in range(0, count, 16):
                writer.write_table(
                    pa.Table.from_pylist(rows(start, min(count, start + 16)), schema=schema)
                )
    return path


@dataclass
class Child:
    returncode: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    stdout: str


def run(command: list[str], *, env: dict[str, str] | None = None) -> Child:
    """Run a command; its exact CPU time and peak RSS come from wait4."""
    started = time.monotonic()
    process = subprocess.Popen(
        command, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out_r = process.stdout
    assert out_r is not None
    stdout = out_r.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    return Child(
        process.returncode,
        wall,
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss / 1024,
        stdout.decode(),
    )


def grade_command(sources: list[str], url: str, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "judge_engine",
        "grade",
        *sources,
        "--judge",
        "gpt-4.1",
        "--base-url",
        url,
        "--out",
        str(out),
        "--quiet",
        *extra,
    ]


def summary(out: Path) -> dict[str, Any]:
    return orjson.loads((out / "summary.json").read_bytes())  # type: ignore[no-any-return]
