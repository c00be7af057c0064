"""Write the bundled sample sessions (judge_engine/samples/) from judge_engine.testing.synth.

The samples cover every format and every benchmark family, successes and failures,
several agent models and harnesses, and one broken row (to show rejected.jsonl).
Deterministic: running it again writes the same files.

    python bench/make_samples.py
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from judge_engine.testing import synth

OUT = Path(__file__).resolve().parent.parent / "judge_engine" / "samples"

OTEL = [
    # (benchmark, harness, models, success)
    ("swebench", "claude_code", ("claude-opus-4-5",), True),
    ("swebench", "tool_calling", ("Az/gpt-4.1",), False),
    ("swebench", "openai_solo", ("gpt-5.2-2025-12-11",), True),
    ("appworld", "smolagents_code", ("o/Kimi-K2.5",), True),
    ("appworld", "tool_calling_with_shortlisting", ("Az/gpt-4.1",), False),
    ("browsecompplus", "tool_calling", ("gemini-3-pro-preview",), True),
    ("browsecompplus", "smolagents_code", ("DeepSeek-V3.2",), False),
    ("tau2_airline", "tool_calling", ("claude-opus-4-5",), True),
    ("tau2_airline", "smolagents_code", ("Az/gpt-4.1", "gpt-4.1-mini"), False),
    ("tau2_retail", "tool_calling", ("o/Kimi-K2.5",), True),
    ("tau2_retail", "claude_code", ("claude-opus-4-5",), False),
    ("tau2_telecom", "tool_calling", ("gemini-3-pro-preview",), True),
    ("tau2_telecom", "openai_solo", ("gpt-5.2-2025-12-11",), False),
]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    otel_rows = [
        synth.otel_row(
            f"exg-{number:03d}",
            benchmark,
            harness=harness,
            models=models,
            success=success,
            calls=3 + number % 4,
            seed=number,
            reasoning=number % 3 == 0,
            parallel_calls=number % 4 == 1,
            tool_error=number % 5 == 2,
            side_call=harness == "tool_calling_with_shortlisting",
        )
        for number, (benchmark, harness, models, success) in enumerate(OTEL)
    ]
    pq.write_table(pa.Table.from_pylist(otel_rows), OUT / "exgentic-otel.parquet")

    raw = [
        synth.agenttrace_row(f"mbpp-qwen3-{n}", "mbpp", model=model, success=ok, seed=n)
        for n, (model, ok) in enumerate(
            [("Qwen/Qwen3-1.7B", True), ("Qwen/Qwen3-0.6B", False), ("Qwen/Qwen3-1.7B", False)]
        )
    ]
    _jsonl(OUT / "agenttrace.jsonl", raw)
    hub = [
        synth.agenttrace_row(
            f"nl2bash-qwen3-{n}", "nl2bash", model=model, success=ok, seed=n, hub_form=True
        )
        for n, (model, ok) in enumerate([("Qwen/Qwen3-1.7B", True), ("Qwen/Qwen3-0.6B", False)])
    ]
    pq.write_table(pa.Table.from_pylist(hub), OUT / "agenttrace-hub.parquet")

    hermes = [
        synth.hermes_row(f"hermes-{n:04d}", success=ok, seed=n, malformed_call=n == 2)
        for n, ok in enumerate([True, False, True])
    ]
    _jsonl(OUT / "hermes.jsonl", hermes)

    chat = [
        synth.openai_row("chat-001", success=True, model="gpt-4.1"),
        synth.openai_row("chat-002", success=False, model="claude-sonnet-4-5"),
    ]
    with open(OUT / "openai-chat.jsonl", "wb") as handle:
        for row in chat:
            handle.write(orjson.dumps(row) + b"\n")
        # One broken row, cut off mid-write: the run reports it in rejected.jsonl.
        handle.write(orjson.dumps(synth.openai_row("chat-003"))[:90] + b"\n")
    # Raw OTLP/JSON as a collector's file exporter writes it: two agent runs whose
    # spans arrive interleaved over four lines, one with a title-generator side call
    # and two failed calls before its last one.
    first = synth.otlp_spans(
        synth.otel_row("otlp-run-1", "swebench", models=("gpt-4.1-mini",), calls=3, seed=21),
        failed_calls=2,
    )
    second = synth.otlp_spans(
        synth.otel_row(
            "otlp-run-2",
            "tau2_retail",
            models=("o/Kimi-K2.5",),
            calls=4,
            seed=22,
            success=False,
            side_call=True,
        )
    )
    lines = [first[:3], second[:3], first[3:], second[3:]]
    _jsonl(OUT / "otlp-export.jsonl", [synth.otlp_request(spans) for spans in lines])
    print(f"wrote samples to {OUT}")


def _jsonl(path: Path, rows: list[dict[str, object]]) -> None:
    with open(path, "wb") as handle:
        for row in rows:
            handle.write(orjson.dumps(row) + b"\n")


if __name__ == "__main__":
    main()
