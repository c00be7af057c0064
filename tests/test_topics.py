"""`topics`: failed sessions grouped offline and deterministically by what their judges
wrote, each group named by the judge through the gateway (the simulator names a group
by its notes' two most frequent words: `testing.sim.topic_reply`), journaled so that a
re-run asks nothing; `export --where topic=ID` picks a topic's sessions."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from judge_engine.cli import main
from judge_engine.testing import synth
from judge_engine.testing.sim import SimConfig, Simulator, topic_reply
from judge_engine.topics import Failure, group, parse_name

from .conftest import read_jsonl, write_jsonl

KEY = "sk-topics-" + "t" * 24


def test_grouping_is_deterministic_and_leaves_small_groups_out() -> None:
    notes = (
        ["the agent looped over the same failing test command again"] * 6
        + ["the login page rejected the password and the agent gave up"] * 5
        + ["a unique oddity nobody else shares"]
    )
    items = [Failure(f"s{i:02d}", "other", text) for i, text in enumerate(notes)]
    first = group(items, min_size=3, max_topics=5, seed=0)
    again = group(list(reversed(items)), min_size=3, max_topics=5, seed=0)
    topics, unassigned = first
    assert [sorted(t.sessions) for t in topics] == [sorted(t.sessions) for t in again[0]]
    assert [len(t.sessions) for t in topics] == [6, 5]
    assert unassigned == ["s11"]
    assert topics[0].share == pytest.approx(6 / 12)


def test_a_name_reply_is_parsed_strictly() -> None:
    assert parse_name('{"name": "loops", "description": "runs the tests forever"}') == (
        "loops", "runs the tests forever",
    )  # fmt: skip
    bad_replies = (
        '{"name": "x"}',
        '{"name": "x", "description": "y", "extra": 1}',
        '{"name": "", "description": "y"}',
        "no json",
        '{"name": 3, "description": "y"}',
    )
    for bad in bad_replies:
        assert parse_name(bad) is None


def _rows() -> list[dict[str, Any]]:
    rows = []
    for i in range(48):
        rows.append(synth.otel_row(f"t{i:03d}", ("swebench", "appworld")[i % 2], seed=i,
                                   success=i % 6 == 0, calls=2, turn_bytes=60))  # fmt: skip
    return rows


def test_topics_are_named_journaled_and_exported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    source = write_jsonl(tmp_path / "rows.jsonl", _rows())
    out = tmp_path / "out"
    seen: list[int] = []

    async def run(*argv: str) -> int:
        async with Simulator(SimConfig(disagreement=0.0)) as sim:
            code = await anyio.to_thread.run_sync(main, [*argv, "--base-url", sim.url])
            seen.append(int(sim.stats()["requests"]))
            return code

    assert anyio.run(run, "grade", str(source), "--judge", "gpt-4.1", "--out", str(out),
                     "--quiet") == 0  # fmt: skip
    capsys.readouterr()
    target = tmp_path / "topics.json"
    assert anyio.run(run, "topics", str(out), "--mode", "all", "--min-size", "2",
                     "--json", str(target)) == 0  # fmt: skip
    said = capsys.readouterr().out
    data = orjson.loads(target.read_bytes())
    assert data["topics"] and data["mode"] == "all"
    failed = {r["session_id"]: r for r in read_jsonl(out / "journal.jsonl") if r["success"] == 0}
    members = [s for t in data["topics"] for s in t["sessions"]]
    assert sorted(members + data["unassigned"]) == sorted(failed)
    assert len(members) == len(set(members))
    for topic in data["topics"]:
        # the simulator's name: the two most frequent words of the notes it was shown
        notes = "\n".join(
            f"- {' '.join(x for x in (failed[s]['failure_note'], failed[s]['reasoning']) if x)}"
            for s in topic["sessions"][:25]
        )
        expected = topic_reply(f">>>\n{notes}\n<<<END")
        assert topic["name"] == expected["name"]
        assert topic["size"] == len(topic["sessions"])
        assert f"{topic['id']}  {topic['name']}" in said
    assert seen[-1] == len(data["topics"])  # one request a group
    # the same inputs: the same groups, nothing asked again
    assert anyio.run(run, "topics", str(out), "--mode", "all", "--min-size", "2") == 0
    assert seen[-1] == 0
    assert orjson.loads((out / "topics.json").read_bytes())["topics"] == data["topics"]
    # a topic becomes a dataset
    first = data["topics"][0]
    rows = tmp_path / "topic.jsonl"
    assert main(["export", str(out), "--where", f"topic={first['id']}", "--to", "rows",
                 str(rows)]) == 0  # fmt: skip
    picked = [orjson.loads(line)["session_id"] for line in rows.read_bytes().splitlines()]
    assert sorted(picked) == sorted(first["sessions"])


def test_topics_count_against_max_cost(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    os.environ["OPENAI_API_KEY"] = KEY
    try:
        source = write_jsonl(tmp_path / "rows.jsonl", _rows())
        out = tmp_path / "out"

        async def run(*argv: str) -> int:
            async with Simulator(SimConfig(disagreement=0.0)) as sim:
                return await anyio.to_thread.run_sync(main, [*argv, "--base-url", sim.url])

        assert anyio.run(run, "grade", str(source), "--judge", "gpt-4.1", "--out", str(out),
                         "--quiet") == 0  # fmt: skip
        capsys.readouterr()
        # the verdicts already spent more than this cap: no name is asked
        code = anyio.run(run, "topics", str(out), "--mode", "all", "--min-size", "2",
                         "--max-cost", "0.000001")  # fmt: skip
        err = capsys.readouterr().err
        assert code == 1 and "could pass --max-cost" in err
        assert not (out / "topics-journal.jsonl").exists()
    finally:
        del os.environ["OPENAI_API_KEY"]
