"""The README promises what the code does: its command table, option list and exit codes
are checked against the parser, the config classes and the exit-code mapping."""

from __future__ import annotations

import re
from pathlib import Path

from judge_engine.cli import COMMANDS
from judge_engine.cli.grade import EXIT_CODES
from judge_engine.config import GROUPS, flag, group_fields

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def test_the_command_table_lists_every_command_and_no_other() -> None:
    table = _section("Commands")
    listed = set(re.findall(r"^\| `judge-engine (\w+)", table, re.M))
    assert listed == {command.NAME for command in COMMANDS}


def test_the_option_list_is_the_config() -> None:
    options = _section("Options")
    listed = set(re.findall(r"^\| `(--[a-z-]+)", options, re.M))
    expected = {
        how.negated or flag(item.name)
        for group in GROUPS.values()
        for item, how in group_fields(group)
        if not how.positional
    }
    assert listed == expected
    for name, group in GROUPS.items():
        assert f"**{name}**: {group.__doc__.strip()}" in options
        for item, how in group_fields(group):
            if how.positional or item.default in (None, (), False) or how.negated:
                continue
            shown = f"{item.default:,}" if type(item.default) is int else str(item.default)
            shown = "0" if item.default == 0.0 and type(item.default) is float else shown
            row = next(
                line for line in options.splitlines() if line.startswith(f"| `{flag(item.name)}")
            )
            assert f"| {shown} |" in row, (item.name, row)


def test_the_exit_codes_are_the_codes() -> None:
    codes = _section("Exit codes")
    listed = {int(code) for code in re.findall(r"^\| (\d+) \|", codes, re.M)}
    assert listed == {*EXIT_CODES.values(), 0, 1, 2, 70, 130}
    assert listed == {0, 1, 2, 70, 130}


def _parsed() -> list:  # type: ignore[type-arg]
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable("table").parse(README)


def test_the_readme_renders_with_every_fence_closed_and_every_heading_a_heading() -> None:
    """Rendered by a real Markdown parser: a fence left open would swallow the rest of
    the file (the sections after it would be code), and a test reading raw text would
    not see it."""
    tokens = _parsed()
    lines = README.splitlines()
    fences = [t for t in tokens if t.type == "fence"]
    for fence in fences:
        assert fence.map is not None
        closing = lines[fence.map[1] - 1].strip() if fence.map[1] <= len(lines) else ""
        assert closing.startswith("```"), (
            f"the fence opened on line {fence.map[0] + 1} never closes"
        )
    # Every line that reads as a heading outside code is a heading to the parser too.
    in_code = False
    expected = []
    for line in lines:
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and re.match(r"#{1,6} ", line):
            expected.append(line.lstrip("#").strip())
    assert not in_code, "the README ends inside a code fence"
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert headings == expected


def test_every_section_the_readme_promises_is_a_section() -> None:
    tokens = _parsed()
    h2 = {tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"
          and t.tag == "h2"}  # fmt: skip
    for section in ("Commands", "Options", "Exit codes", "Sessions", "The judge request",
                    "Grading", "Agreement and the success report", "The HTML report",
                    "Reliability", "Performance"):  # fmt: skip
        assert section in h2, section
    assert any(title.startswith("Batch mode") for title in h2)
    # Each command of the table is documented beyond its row.
    body = README.split("\n## Options\n", 1)[1]
    for command in COMMANDS:
        assert f"judge-engine {command.NAME}" in body, command.NAME
