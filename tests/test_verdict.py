"""Parsing judges' replies into verdicts."""

from __future__ import annotations

from typing import Any

import pytest

from judge_engine.verdict import (
    BadReply,
    CutOff,
    ModelMismatch,
    Unparseable,
    Verdict,
    completion,
    parse_verdict,
)


@pytest.mark.parametrize(
    "text",
    [
        '{"success": 1, "confidence": "high", "reasoning": "tests pass"}',
        '```json\n{"success": 1, "confidence": "high", "reasoning": "tests pass"}\n```',
        '```\n{"success": true, "confidence": "High", "reasoning": "tests pass"}\n```',
        'Verdict follows.\n{"success": "1", "confidence": "high", "reasoning": "tests pass"} ok',
        '{"note": {"x": 1}} then '
        '{"success": 1.0, "confidence": " high ", "reasoning": "tests pass"}',
    ],
)
def test_tolerant_of_fences_and_text(text: str) -> None:
    assert parse_verdict(text) == Verdict(1, "high", "tests pass")


def test_failure_and_missing_reasoning() -> None:
    assert parse_verdict('{"success": false, "confidence": "low"}') == Verdict(0, "low", "")
    assert parse_verdict('{"success": 0, "confidence": "medium", "reasoning": 7}').reasoning == "7"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "The agent succeeded.",
        '{"success": 2, "confidence": "high"}',
        '{"success": 1, "confidence": "very high"}',
        '{"success": 1}',
        '{"success": [1], "confidence": "high"}',
        '{"success": 1, "confidence": "hi',
    ],
)
def test_unparseable(text: str) -> None:
    with pytest.raises(Unparseable) as caught:
        parse_verdict(text)
    assert caught.value.raw == text


def test_cut_off_replies() -> None:
    with pytest.raises(CutOff):
        parse_verdict('{"success": 1, "confidence": "high"}', "length")


def _reply(
    content: object = "x", model: str | None = "gpt-4.1-2025-04-14", **extra: object
) -> dict:
    data: dict = {
        "choices": [
            {"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }
    if model is not None:
        data["model"] = model
    data.update(extra)
    return data


def test_completion_fields_and_dated_model_names() -> None:
    done = completion(_reply("hi"), "gpt-4.1")
    assert (done.content, done.finish_reason, done.served_model) == (
        "hi",
        "stop",
        "gpt-4.1-2025-04-14",
    )
    assert done.usage == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    assert (
        completion(_reply([{"type": "text", "text": "a"}, {"text": "b"}], None), "m").content
        == "ab"
    )


def test_bad_replies() -> None:
    with pytest.raises(BadReply, match="no choices"):
        completion({"choices": []}, "m")
    with pytest.raises(BadReply, match="no choices"):
        completion({"id": "x"}, "m")
    with pytest.raises(BadReply, match="not text"):
        completion(_reply({"a": 1}), "gpt-4.1")
    with pytest.raises(ModelMismatch, match=r"asked gpt-4\.1, the reply says gpt-4o"):
        completion(_reply("x", "gpt-4o"), "gpt-4.1")
    assert completion(_reply("x", "gpt-4o"), "gpt-4.1", check_model=False).served_model == "gpt-4o"


# -- the failure mode, the step, the note and the criteria (the rubric's reply form) --


def _form_with_criteria() -> Any:
    from judge_engine.taxonomy import Criterion, form_of

    return form_of(
        {"policy_violation": "broke the policy"},
        [Criterion("efficiency", "scale_1_5", "few wasted steps"),
         Criterion("polite", "pass_fail", "polite to the user")],
    )  # fmt: skip


def test_a_failure_mode_from_the_rubric_is_read_with_its_step_and_note() -> None:
    text = (
        '{"success": 0, "confidence": "high", "reasoning": "r", "failure_mode": '
        '"step_repetition", "failure_step": 7, "failure_note": "ran the same test 9 times"}'
    )
    verdict = parse_verdict(text)
    assert (verdict.failure_mode, verdict.failure_step, verdict.failure_note) == (
        "step_repetition", 7, "ran the same test 9 times",
    )  # fmt: skip
    ok = (
        '{"success": 1, "confidence": "high", "reasoning": "r", "failure_mode": "none", '
        '"failure_step": null, "failure_note": ""}'
    )
    assert parse_verdict(ok).failure_mode == "none" and parse_verdict(ok).failure_step is None


@pytest.mark.parametrize(
    "fields",
    [
        '"failure_mode": "made_up_code", "failure_step": 2',  # a code the rubric lacks
        '"failure_mode": "none", "failure_step": null',  # a failure without a mode
        '"failure_mode": "tool_error", "failure_step": 0',  # no message 0
        '"failure_mode": "tool_error", "failure_step": "3"',  # a step as text
        '"failure_mode": 3, "failure_step": 2',
    ],
)
def test_a_malformed_mode_is_no_verdict(fields: str) -> None:
    text = f'{{"success": 0, "confidence": "high", "reasoning": "r", {fields}}}'
    with pytest.raises(Unparseable):
        parse_verdict(text)


def test_a_success_with_a_failure_mode_is_no_verdict() -> None:
    text = '{"success": 1, "confidence": "high", "reasoning": "r", "failure_mode": "tool_error"}'
    with pytest.raises(Unparseable):
        parse_verdict(text)


def test_a_reply_without_a_mode_is_a_verdict_whose_mode_is_unknown() -> None:
    verdict = parse_verdict('{"success": 0, "confidence": "low", "reasoning": "r"}')
    assert verdict.success == 0 and verdict.failure_mode is None


def test_the_rubrics_own_codes_and_criteria() -> None:
    form = _form_with_criteria()
    base = ('{"success": 0, "confidence": "high", "reasoning": "r", "failure_mode": '
            '"policy_violation", "failure_step": 3, "failure_note": "n"')  # fmt: skip
    verdict = parse_verdict(base + ', "criteria": {"efficiency": 2, "polite": true}}', form=form)
    assert verdict.failure_mode == "policy_violation"
    assert verdict.criteria == {"efficiency": 2, "polite": 1}
    with pytest.raises(Unparseable):  # the default taxonomy has no policy_violation
        parse_verdict(base + "}")
    for bad in ('{"efficiency": 6, "polite": 1}', '{"efficiency": 3}', '"yes"'):
        with pytest.raises(Unparseable):
            parse_verdict(base + f', "criteria": {bad}}}', form=form)


def test_the_schema_lists_the_codes_and_criteria_strictly() -> None:
    from judge_engine.testing.providers import strict_schema_problem
    from judge_engine.verdict import schema_for

    schema = schema_for(_form_with_criteria())
    assert strict_schema_problem(schema) is None
    assert "policy_violation" in schema["properties"]["failure_mode"]["enum"]
    assert schema["properties"]["criteria"]["properties"]["efficiency"]["enum"] == [1, 2, 3, 4, 5]
