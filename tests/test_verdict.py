"""Parsing judges' replies into verdicts."""

from __future__ import annotations

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
