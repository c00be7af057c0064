"""Typed mutations of real rows (tests/data/realdata, Apache-2.0, see its NOTICE): every
reader meets a value of the wrong type anywhere (a span's `events` a number, an
`arrayValue`'s `values` not a list, ids that are not strings, times that are not
numbers) and turns it into a rejection with a reason, never an exception that stops
the run. Every line of a mutated file is accounted for: a session or a rejection."""

from __future__ import annotations

import copy
import gzip
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from judge_engine.prompt import render_request
from judge_engine.rubrics import RubricSet
from judge_engine.sessions import Rejection, Session, read_sessions

DATA = Path(__file__).parent / "data" / "realdata"
RUBRICS = RubricSet.load()


def _lines(name: str, most: int) -> list[dict[str, Any]]:
    with gzip.open(DATA / name, "rb") as handle:
        return [orjson.loads(line) for line in handle.read().splitlines()[:most] if line.strip()]


#: Small real OTLP export lines, and one agent-llm-traces row cut to a few spans.
OTLP_LINES = _lines("math-500-199-ra-aid.traces.jsonl.gz", 1) + _lines(
    "alpaca-eval-0-ra-aid.traces.jsonl.gz", 2
)
_ROW = _lines("agent-llm-traces-rows.jsonl.gz", 1)[0]
ROWS = [{**_ROW, "spans": _ROW["spans"][:6]}]

#: Values of every JSON type, and the shapes readers most often assume.
WRONG = st.sampled_from(
    [None, True, 0, -1, 7, 1.5, 1e308, "", "x", "123", [], [1, "a"], {}, {"a": 1},
     {"values": 5}, {"stringValue": 3}, {"arrayValue": {"values": 5}},
     {"kvlistValue": {"values": "no"}}, {"intValue": "NaN"}, {"arrayValue": 3},
     [{"key": 1}], [{"key": "k", "value": []}], "\x00\x1b[31m\u202e"]
)  # fmt: skip


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value[:8]):
            found += _paths(child, (*prefix, index))
    return found


@st.composite
def mutated(draw: st.DrawFn, seeds: list[dict[str, Any]]) -> dict[str, Any]:
    row = copy.deepcopy(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 5))):
        paths = [p for p in _paths(row) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent: Any = row
        for step in path[:-1]:
            parent = parent[step]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(draw(WRONG))
    return row


def _read_all(tmp_path: Path, rows: list[dict[str, Any]]) -> None:
    path = tmp_path / "mutated.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    items = list(read_sessions([str(path)]))
    for item in items:
        assert isinstance(item, (Session, Rejection)), item
        if isinstance(item, Rejection):
            assert item.reason and item.detail
        else:
            request = render_request(
                item, RUBRICS.for_benchmark(item.benchmark), "judge", max_prompt_tokens=4000
            )
            orjson.dumps(request.body)


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(mutated(OTLP_LINES), min_size=1, max_size=3))
def test_mutated_otlp_lines_never_stop_a_run(tmp_path: Path, rows: list[dict[str, Any]]) -> None:
    _read_all(tmp_path, rows)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(mutated(ROWS))
def test_mutated_agent_llm_traces_rows_never_stop_a_run(
    tmp_path: Path, row: dict[str, Any]
) -> None:
    _read_all(tmp_path, [row])


def test_the_shapes_named_in_the_issue_reject_their_line_and_keep_the_rest(
    tmp_path: Path,
) -> None:
    good = OTLP_LINES[0]
    bad_events = copy.deepcopy(good)
    spans = bad_events["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[0]["events"] = 5
    bad_array = copy.deepcopy(OTLP_LINES[1])
    span = bad_array["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span["attributes"].append({"key": "list", "value": {"arrayValue": {"values": 7}}})
    span["traceId"] = 12345
    span["startTimeUnixNano"] = {"no": "time"}
    path = tmp_path / "mixed.otlp.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in (bad_events, bad_array, good)))
    items = list(read_sessions([str(path)]))
    assert all(isinstance(i, (Session, Rejection)) for i in items)
    assert any(isinstance(i, Session) for i in items)
