"""Raw OTLP/JSON files: sessions by id across lines and files, emitted as they complete."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from judge_engine.sessions import Rejection, Session, read_sessions
from judge_engine.sessions.otlp import Assembler
from judge_engine.sessions.sources import RawRow


def _value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": value}


def _span(
    trace: str | None,
    span: str,
    parent: str | None,
    start: int | None,
    task: str,
    reply: str,
    **attrs: Any,
) -> dict[str, Any]:
    inputs = [{"role": "user", "parts": [{"type": "text", "content": task}]}]
    outputs = [{"role": "assistant", "parts": [{"type": "text", "content": reply}]}]
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-5",
        "gen_ai.input.messages": orjson.dumps(inputs).decode(),
        "gen_ai.output.messages": orjson.dumps(outputs).decode(),
        **attrs,
    }
    out: dict[str, Any] = {
        "spanId": span,
        "name": "chat gpt-5",
        "kind": 3,
        "attributes": [{"key": k, "value": _value(v)} for k, v in attributes.items()],
        "status": {"code": 1},
    }
    if trace is not None:
        out["traceId"] = trace
    if parent is not None:
        out["parentSpanId"] = parent
    if start is not None:
        out["startTimeUnixNano"] = str(start)
        out["endTimeUnixNano"] = str(start + 10)
    return out


def _line(*spans: dict[str, Any], resource: dict[str, Any] | None = None) -> bytes:
    attrs = [{"key": k, "value": _value(v)} for k, v in (resource or {}).items()]
    request = {
        "resourceSpans": [
            {
                "resource": {"attributes": attrs},
                "scopeSpans": [{"scope": {"name": "test"}, "spans": list(spans)}],
            }
        ]
    }
    return orjson.dumps(request)


def _write(path: Path, *lines: bytes) -> str:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return str(path)


def _sessions(*sources: str) -> list[Session | Rejection]:
    return list(read_sessions(list(sources)))


def test_a_file_holding_many_traces_gives_one_session_per_trace(tmp_path: Path) -> None:
    lines = [
        _line(_span(f"t{n}", f"s{n}", None, 100 * n, f"task {n}", f"answer {n}")) for n in range(5)
    ]
    results = _sessions(_write(tmp_path / "export.jsonl", *lines))
    assert [r.session_id for r in results if isinstance(r, Session)] == [f"t{n}" for n in range(5)]
    first = results[0]
    assert isinstance(first, Session)
    assert first.task == "task 0" and first.messages[-1].content == "answer 0"
    assert first.source.format == "otlp" and first.source.row == 0


def test_a_trace_spanning_lines_and_files_is_one_session(tmp_path: Path) -> None:
    # Children first, as collectors write them (a parent ends after its children);
    # the root arrives in the second file.
    child1 = _span("tt", "c1", "root", 100, "the task", "step one")
    child2 = _span("tt", "c2", "root", 200, "the task", "step two")
    root = {**_span("tt", "root", None, 50, "the task", "wrapper"), "attributes": []}
    first = _write(tmp_path / "a.jsonl", _line(child1), _line(child2))
    second = _write(tmp_path / "b.jsonl", _line(root))
    results = _sessions(first, second)
    assert len(results) == 1
    session = results[0]
    assert isinstance(session, Session)
    assert session.session_id == "tt" and session.metadata["llm_calls"] == 2


def test_session_ids_group_spans_across_traces(tmp_path: Path) -> None:
    turn1 = _span("tA", "a", None, 100, "book a flight", "which date?", **{"session.id": "chat-7"})
    turn2 = _span("tB", "b", None, 200, "book a flight", "booked", **{"session.id": "chat-7"})
    other = _span("tC", "c", None, 150, "other", "x", **{"gen_ai.conversation.id": "conv-2"})
    results = _sessions(_write(tmp_path / "s.jsonl", _line(turn1), _line(other), _line(turn2)))
    by_id = {r.session_id: r for r in results if isinstance(r, Session)}
    assert set(by_id) == {"chat-7", "conv-2"}
    assert by_id["chat-7"].metadata["llm_calls"] == 2


def test_a_session_id_on_the_resource_counts(tmp_path: Path) -> None:
    line = _line(_span("t1", "a", None, 1, "q", "a"), resource={"session.id": "from-resource"})
    results = _sessions(_write(tmp_path / "r.jsonl", line))
    assert [r.session_id for r in results if isinstance(r, Session)] == ["from-resource"]


def test_spans_without_ids_are_one_session_per_file_named_after_it(tmp_path: Path) -> None:
    a = _write(tmp_path / "run-a.traces.jsonl", _line(_span(None, "", None, 1, "qa", "ra")))
    b = _write(tmp_path / "run-b.traces.jsonl", _line(_span(None, "", None, 1, "qb", "rb")))
    results = _sessions(a, b)
    assert [r.session_id for r in results if isinstance(r, Session)] == ["run-a", "run-b"]


def test_equal_or_missing_timestamps_keep_file_order(tmp_path: Path) -> None:
    same = [_span("t", f"s{n}", None, 100, "task", f"reply {n}") for n in range(3)]
    missing = [_span("u", f"m{n}", None, None, "task", f"reply {n}") for n in range(3)]
    for spans in (same, missing):
        # Every call continues the one before it (its reply is in the next input).
        for n in range(1, 3):
            history = [
                {"role": "user", "parts": [{"type": "text", "content": "task"}]},
                *[
                    {"role": "assistant", "parts": [{"type": "text", "content": f"reply {k}"}]}
                    for k in range(n)
                ],
            ]
            attrs = spans[n]["attributes"]
            for pair in attrs:
                if pair["key"] == "gen_ai.input.messages":
                    pair["value"] = {"stringValue": orjson.dumps(history).decode()}
    results = _sessions(_write(tmp_path / "t.jsonl", _line(*same), _line(*missing)))
    sessions = [r for r in results if isinstance(r, Session)]
    assert len(sessions) == 2
    for session in sessions:
        assert session.messages[-1].content == "reply 2"


def test_a_session_is_emitted_when_its_trace_completes_not_at_the_end() -> None:
    assembler = Assembler()
    lines = [
        _line(_span("t1", "c", "r", 2, "task", "child")),
        _line(_span("t1", "r", None, 1, "task", "root")),
        _line(_span("t2", "x", None, 3, "task 2", "done")),
    ]
    emitted = []
    for number, line in enumerate(lines):
        out = list(assembler.add(RawRow("f.jsonl", number, orjson.loads(line))))
        emitted.append([item.data["session_id"] for item in out if isinstance(item, RawRow)])
    assert emitted == [[], ["t1"], ["t2"]]
    assert list(assembler.finish()) == []


def test_spans_arriving_after_their_trace_was_emitted_are_rejected_with_a_reason(
    tmp_path: Path,
) -> None:
    early = _line(_span("t1", "r", None, 1, "task", "root"))
    late = _line(_span("t1", "late", "r", 5, "task", "late child"))
    results = _sessions(_write(tmp_path / "l.jsonl", early, late))
    assert isinstance(results[0], Session)
    rejected = [r for r in results if isinstance(r, Rejection)]
    assert len(rejected) == 1 and rejected[0].reason == "late_spans"
    assert rejected[0].session_id == "t1" and rejected[0].row == 1


def test_a_trace_whose_root_never_arrives_is_emitted_at_the_end(tmp_path: Path) -> None:
    orphan = _line(_span("t9", "c", "missing-parent", 1, "task", "reply"))
    results = _sessions(_write(tmp_path / "o.jsonl", orphan))
    assert [r.session_id for r in results if isinstance(r, Session)] == ["t9"]


def test_garbage_and_empty_export_lines_are_rejected_rows(tmp_path: Path) -> None:
    empty = orjson.dumps({"resourceSpans": []})
    broken = orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [7, None]}]}]})
    results = _sessions(_write(tmp_path / "g.jsonl", empty, broken))
    assert [r.reason for r in results if isinstance(r, Rejection)] == [
        "no_conversation",
        "no_conversation",
    ]


def test_typed_values_of_every_kind_are_read() -> None:
    from judge_engine.sessions.otlp import attributes

    pairs = [
        {"key": "s", "value": {"stringValue": "x"}},
        {"key": "i", "value": {"intValue": "7"}},
        {"key": "d", "value": {"doubleValue": 0.5}},
        {"key": "b", "value": {"boolValue": True}},
        {"key": "a", "value": {"arrayValue": {"values": [{"stringValue": "p"}]}}},
        {
            "key": "k",
            "value": {"kvlistValue": {"values": [{"key": "z", "value": {"intValue": 1}}]}},
        },
    ]
    assert attributes(pairs) == {"s": "x", "i": 7, "d": 0.5, "b": True, "a": ["p"], "k": {"z": 1}}


def test_a_proxy_that_makes_each_call_its_own_trace_is_one_session_by_file(
    tmp_path: Path,
) -> None:
    calls = [
        _line(_span(f"t{i}", f"s{i}", None, 10 + i, "the task", f"reply {i}")) for i in range(4)
    ]
    source = _write(tmp_path / "run-7.traces.jsonl", *calls)
    auto = list(read_sessions([source]))
    assert len(auto) == 4  # the default: one session per trace
    by_file = list(read_sessions([source], session_by="file"))
    assert [s.session_id for s in by_file if isinstance(s, Session)] == ["run-7"]


def test_an_attribute_names_the_session_and_spans_without_it_follow_the_default(
    tmp_path: Path,
) -> None:
    source = _write(
        tmp_path / "mixed.jsonl",
        _line(_span("t1", "a", None, 1, "task A", "a1", **{"agent.run.id": "run-A"})),
        _line(_span("t2", "b", None, 2, "task A", "a2", **{"agent.run.id": "run-A"})),
        _line(_span("t3", "c", None, 3, "task B", "b1"), resource={"agent.run.id": "run-B"}),
        _line(_span("t4", "d", None, 4, "task C", "c1")),
    )
    items = list(read_sessions([source], session_by="agent.run.id"))
    ids = sorted(s.session_id for s in items if isinstance(s, Session))
    assert ids == ["run-A", "run-B", "t4"]


def test_trace_grouping_ignores_session_ids(tmp_path: Path) -> None:
    source = _write(
        tmp_path / "s.jsonl",
        _line(_span("t1", "a", None, 1, "x", "y", **{"session.id": "S"})),
        _line(_span("t2", "b", None, 2, "x", "y", **{"session.id": "S"})),
    )
    assert len(list(read_sessions([source]))) == 1
    assert len(list(read_sessions([source], session_by="trace"))) == 2


def test_traces_that_never_complete_are_bounded_by_the_open_limit(tmp_path: Path) -> None:
    """100 traces whose root never arrives: the open sessions never hold more than the
    limit; the largest are dropped as incomplete_trace, and their later spans are late."""
    big = "x" * 40_000
    lines = []
    for round_ in range(3):
        for trace in range(100):
            span = _span(f"t{trace}", f"s{trace}-{round_}", "missing-root", 5, big, "r")
            lines.append(_line(span))
    source = _write(tmp_path / "open.jsonl", *lines)
    assembler_peak = []
    from judge_engine.sessions import otlp

    original = otlp.Assembler.add

    def watched(self: Assembler, raw: RawRow) -> Any:
        yield from original(self, raw)
        assembler_peak.append(self._held)

    otlp.Assembler.add = watched  # type: ignore[method-assign]
    try:
        items = list(read_sessions([source], max_open_mb=2))
    finally:
        otlp.Assembler.add = original  # type: ignore[method-assign]
    assert max(assembler_peak) <= 2 << 20
    reasons = {item.reason for item in items if isinstance(item, Rejection)}
    assert "incomplete_trace" in reasons
    dropped = [i for i in items if isinstance(i, Rejection) and i.reason == "incomplete_trace"]
    assert "--max-open-mb" in dropped[0].detail
    # Every line is accounted for: a span in a session, or a rejection naming its trace.
    kept = [i for i in items if isinstance(i, Session)]
    assert kept and len(kept) + len(dropped) <= 100


def test_sessions_says_when_a_file_looks_like_one_run_split_into_many(
    tmp_path: Path, capsys: Any
) -> None:
    from judge_engine.cli import main

    lines = []
    for i in range(3):  # each call its own trace, the history growing
        inputs = [{"role": "user", "parts": [{"type": "text", "content": "the task"}]}]
        for j in range(i):
            inputs.append({"role": "assistant", "parts": [{"type": "text", "content": f"a{j}"}]})
            inputs.append({"role": "user", "parts": [{"type": "text", "content": f"u{j}"}]})
        span = _span(f"t{i}", f"s{i}", None, i + 1, "the task", f"reply {i}")
        span["attributes"][2]["value"] = {"stringValue": orjson.dumps(inputs).decode()}
        lines.append(_line(span))
    source = _write(tmp_path / "proxy-run.jsonl", *lines)
    assert main(["sessions", source]) == 0
    out = capsys.readouterr().out
    assert "look like one agent run split into many" in out and "proxy-run.jsonl" in out
    assert main(["sessions", source, "--session-by", "file"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("1 sessions") and "split into many" not in out


def test_a_hundred_traces_that_never_complete_stay_under_the_documented_peak(
    tmp_path: Path,
) -> None:
    """100 traces of 2 MB each whose root never arrives: with --max-open-mb 32 the
    reader's memory grows by the cap and a line or two, not by the 200 MB they hold."""
    from .conftest import memory_mb, reset_peak

    big = "y" * (1 << 20)
    path = tmp_path / "never.jsonl"
    with open(path, "wb") as handle:
        for round_ in range(2):
            for trace in range(100):
                span = _span(f"t{trace}", f"s{trace}-{round_}", "gone", 5, big, "r")
                handle.write(_line(span) + b"\n")
    reset_peak()
    before = memory_mb("VmRSS:")
    items = 0
    for _ in read_sessions([str(path)], max_open_mb=32):
        items += 1
    grown = memory_mb("VmHWM:") - before
    assert items >= 100
    assert grown < 32 * 2 + 40, grown  # the cap (estimated), the line being read, slack
