"""What reaches the terminal is inert: a trace's session ids, benchmark, harness and
model names, a gateway's error messages and status strings, and file names, printed by
every command with their control characters and bidirectional overrides escaped,
while the JSON files keep the exact text."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import orjson
import pytest

from judge_engine.terminal import escape, escape_field
from judge_engine.testing import synth
from judge_engine.testing.sim import SimConfig, Simulator

from .conftest import read_jsonl, write_jsonl

KEY = "sk-term-" + "t" * 24
#: Clear the screen, set the window title, a C1 CSI, a right-to-left override.
HOSTILE = "\x1b[2J\x1b]0;pwned\x07\x9b31m\u202eexe.txt"
ALLOWED = {ord("\n"), ord("\t")}


def _controls(text: str) -> list[str]:
    return sorted(
        {
            c
            for c in text
            if (ord(c) < 0x20 and ord(c) not in ALLOWED)
            or 0x7F <= ord(c) < 0xA0
            or ord(c) in (0x061C, 0x200E, 0x200F)
            or 0x202A <= ord(c) <= 0x202E
            or 0x2066 <= ord(c) <= 0x2069
        }
    )


def test_escape_makes_every_control_inert_and_keeps_the_rest() -> None:
    assert escape("a\nb\tc") == "a\nb\tc"
    assert _controls(escape(HOSTILE)) == []
    assert escape("\x1b") == "\\u001b" and escape("\u202e") == "\\u202e"
    assert escape_field("a\nb") == "a\\u000ab"
    assert orjson.loads(f'"{escape(chr(0x85) + chr(0x202E))}"') == "\x85\u202e"  # JSON-safe
    assert escape("naïve 日本 ✓") == "naïve 日本 ✓"


async def _cli(*argv: str) -> tuple[int, str]:
    done = await anyio.run_process(
        [sys.executable, "-m", "judge_engine", *argv],
        env={**os.environ, "OPENAI_API_KEY": KEY, "COLUMNS": "120"},
        check=False,
    )
    return done.returncode, done.stdout.decode() + done.stderr.decode()


async def test_every_command_prints_trace_fields_inert(tmp_path: Path) -> None:
    row = synth.otel_row(
        f"id-{HOSTILE}", f"bench-{HOSTILE}", harness=f"harness-{HOSTILE}",
        models=(f"model-{HOSTILE}",),
    )  # fmt: skip
    source = str(write_jsonl(tmp_path / f"file-{HOSTILE[:4]}.jsonl", [row]))
    out = tmp_path / "run"
    outputs = []
    outputs.append(await _cli("sessions", source))
    outputs.append(await _cli("show", source, "--session", f"id-{HOSTILE}"))
    async with Simulator(SimConfig()) as sim:
        outputs.append(
            await _cli(
                "grade",
                source,
                "--judge",
                "gpt-4.1",
                "--base-url",
                sim.url,
                "--out",
                str(out),
                "--quiet",
            )
        )
    outputs.append(await _cli("report", str(out)))
    outputs.append(await _cli("report", str(out), "--format", "csv"))
    outputs.append(await _cli("agree", str(out)))
    outputs.append(await _cli("show", str(out), "--session", f"id-{HOSTILE}"))
    outputs.append(await _cli("show", source, "--session", f"no-such-{HOSTILE}"))
    for code, text in outputs:
        assert _controls(text) == [], (code, text[:2000])
    assert "\\u202e" in outputs[0][1]  # shown, escaped, not dropped
    # The JSON files keep the exact text.
    journal = read_jsonl(out / "journal.jsonl")
    assert journal[0]["session_id"] == f"id-{HOSTILE}"
    assert journal[0]["benchmark"] == f"bench-{HOSTILE}"


async def test_a_gateways_error_message_is_printed_inert(tmp_path: Path) -> None:
    from .servers import ScriptedServer, error

    source = str(write_jsonl(tmp_path / "s.jsonl", [synth.otel_row("s1", "swebench")]))
    async with ScriptedServer([error(401, f"bad key {HOSTILE}")] * 5) as server:
        code, text = await _cli(
            "grade", source, "--judge", "gpt-4.1", "--base-url", server.url,
            "--out", str(tmp_path / "o"), "--quiet",
        )  # fmt: skip
    assert code == 2
    assert _controls(text) == [], text
    assert "pwned" in text


@pytest.mark.parametrize("argv", [["--judg", HOSTILE], ["report", f"/no/{HOSTILE}"]])
def test_usage_errors_quote_what_was_typed_inert(argv: list[str]) -> None:
    code, text = anyio.run(_cli, *argv)
    assert code == 2 and _controls(text) == [], text
