"""Rubric choice by benchmark spelling, versions, and users' own rubrics."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from judge_engine.rubrics import RubricError, RubricSet, builtin_dir

FAMILIES = (
    "swebench",
    "appworld",
    "browsecompplus",
    "tau2_airline",
    "tau2_retail",
    "tau2_telecom",
    "mbpp",
    "nl2bash",
)


def test_every_family_and_a_default_ship() -> None:
    names = {r.name for r in RubricSet.load()}
    assert names == {*FAMILIES, "default"}


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("swebench", "swebench"),
        ("SWE-bench", "swebench"),
        ("swe_bench_verified", "swebench"),
        ("SWE-Bench_Verified_mini", "swebench"),
        ("tau2-retail", "tau2_retail"),
        ("TAU2_AIRLINE", "tau2_airline"),
        ("tau2 telecom", "tau2_telecom"),
        ("BrowseComp-Plus", "browsecompplus"),
        ("AppWorld", "appworld"),
        ("MBPP", "mbpp"),
        ("nl2bash", "nl2bash"),
        ("hermes", "default"),
        (None, "default"),
        ("", "default"),
    ],
)
def test_benchmark_spellings_choose_the_rubric(spelling: str | None, expected: str) -> None:
    assert RubricSet.load().for_benchmark(spelling).name == expected


def test_version_is_a_hash_of_the_content_and_changes_only_for_the_edited_rubric(
    tmp_path: Path,
) -> None:
    own = tmp_path / "rubrics"
    shutil.copytree(builtin_dir(), own)
    before = {r.name: r.version for r in RubricSet.load(own)}
    assert before == {r.name: r.version for r in RubricSet.load()}
    path = own / "mbpp.toml"
    path.write_text(path.read_text().replace("Answer 1 only if", "Answer 1 only when"))
    after = {r.name: r.version for r in RubricSet.load(own)}
    assert after["mbpp"] != before["mbpp"]
    assert {k: v for k, v in after.items() if k != "mbpp"} == {
        k: v for k, v in before.items() if k != "mbpp"
    }


def test_users_rubrics_add_to_and_replace_the_builtins(tmp_path: Path) -> None:
    (tmp_path / "mbpp.toml").write_text(
        'title = "My MBPP"\ntests = "t"\nrule = "r"\nevidence = "e"\nreliability = "x"\n'
    )
    (tmp_path / "webarena.toml").write_text(
        'title = "WebArena"\naliases = ["web-arena"]\ntests = "t"\nrule = "r"\n'
        'evidence = "e"\nreliability = "x"\n'
    )
    rubrics = RubricSet.load(tmp_path)
    assert rubrics.for_benchmark("mbpp").title == "My MBPP"
    assert rubrics.for_benchmark("Web-Arena").name == "webarena"
    assert rubrics.for_benchmark("swebench").name == "swebench"


def test_bad_rubric_files_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text('title = "x"\nrule = ')
    with pytest.raises(RubricError, match="not valid TOML"):
        RubricSet.load(tmp_path)
    (tmp_path / "bad.toml").write_text('title = "x"\ncolour = "blue"\n')
    with pytest.raises(RubricError, match="unknown key"):
        RubricSet.load(tmp_path)
    (tmp_path / "bad.toml").write_text('title = "x"\n')
    with pytest.raises(RubricError, match="needs text for"):
        RubricSet.load(tmp_path)
    (tmp_path / "bad.toml").unlink()
    (tmp_path / "clash.toml").write_text(
        'title = "x"\naliases = ["swebench"]\ntests = "t"\nrule = "r"\nevidence = "e"\n'
        'reliability = "x"\n'
    )
    with pytest.raises(RubricError, match="names both"):
        RubricSet.load(tmp_path)
    with pytest.raises(RubricError, match="does not exist"):
        RubricSet.load(tmp_path / "missing")
