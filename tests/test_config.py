"""One configuration object: grouped, validated where it is made, read from TOML with the
flags' names, written to run.json in the same shape and read back from it."""

from __future__ import annotations

import math
from pathlib import Path

import orjson
import pytest

from judge_engine.cli import main
from judge_engine.config import GROUPS, Config, ConfigError, group_fields
from judge_engine.testing import synth
from tests.conftest import write_jsonl

BAD_NUMBERS = [
    ("rpm", "inf"),
    ("rpm", "1e-320"),
    ("rpm", "nan"),
    ("rpm", "-5"),
    ("timeout", "inf"),
    ("timeout", "0"),
    ("temperature", "5"),
    ("concurrency", "0"),
    ("concurrency", "2.5"),
    ("max_retries", "-1"),
    ("max_cost", "-1"),
    ("max_pause", "3600"),
    ("grace", "inf"),
    ("tpm", "0"),
    ("repeats", "0"),
    ("max_row_mb", "0"),
]


@pytest.mark.parametrize(("name", "text"), BAD_NUMBERS)
def test_a_library_caller_gets_the_errors_the_command_line_gives(
    name: str, text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    value = float(text)
    with pytest.raises(ConfigError, match="--" + name.replace("_", "-")):
        Config.of(**{name: value})
    flag = "--" + name.replace("_", "-")
    source = str(write_jsonl(tmp_path / "s.jsonl", [synth.openai_row("a")]))
    code = main(["grade", source, "--judge", "j", flag, text, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and flag in err, err
    assert not (tmp_path / "o" / "journal.jsonl").exists()


def test_every_option_is_documented_once_with_its_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    flags: dict[str, str] = {}
    for group in GROUPS.values():
        for item, how in group_fields(group):
            assert how.help and item.name not in flags
            flags[item.name] = how.negated or "--" + item.name.replace("_", "-")
    assert main(["grade", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "default 64," in text and "(default 32,000)" in text
    for name, flag in flags.items():
        assert name == "sources" or flag in text, name


@pytest.mark.parametrize("command", ["grade", "agree", "report", "sim", "preview"])
def test_help_renders_percent_signs_once(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0
    text = capsys.readouterr().out
    assert "%%" not in text and "%(" not in text


def test_sim_help_shows_its_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "(default 8900)" in text and "(default 0.08)" in text and "(default 30.0)" in text


def test_no_command_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    text = capsys.readouterr().out
    for command in ("demo", "sessions", "preview", "show", "grade", "export", "agree"):
        assert f"\n    {command} " in text


def test_toml_grouped_or_flat_and_run_json_read_back(tmp_path: Path) -> None:
    grouped = Config.from_mapping(
        {"panel": {"judge": ["a", "b"], "fallback-judge": "c"}, "gateway": {"rpm": 30}}
    )
    flat = Config.from_mapping({"judge": ["a", "b"], "fallback_judge": ["c"], "rpm": 30})
    assert grouped == flat
    assert grouped.panel.fallback_judge == ("c",) and grouped.gateway.rpm == 30
    stored = orjson.loads(orjson.dumps(grouped.to_mapping()))
    assert Config.from_mapping(stored) == grouped
    assert list(stored) == list(GROUPS)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"api_key": "sk-x"}, "never goes in a file"),
        ({"fresh": True}, "pass --fresh as a flag"),
        ({"nonsense": 1}, "unknown option 'nonsense'"),
        ({"panel": {"judge": [1]}}, "--judge takes names"),
        ({"judge": ["a", "a"]}, "may be given once"),
        ({"base_url": "ftp://x"}, "--base-url"),
        ({"guard": "maybe"}, "--guard must be one of"),
        ({"price": ["gpt=1"]}, "--price takes MODEL=IN,OUT"),
    ],
)
def test_a_file_with_a_bad_option_is_one_line(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config.from_mapping(data)


def test_the_base_url_loses_its_credentials_in_run_json() -> None:
    config = Config.of(base_url="http://user:secret@127.0.0.1:9/v1")
    assert "secret" not in orjson.dumps(config.to_mapping()).decode()


def test_numbers_stay_numbers() -> None:
    config = Config.of(rpm=60, timeout=5, concurrency=8.0)
    assert config.gateway.concurrency == 8 and math.isclose(config.gateway.timeout, 5)
