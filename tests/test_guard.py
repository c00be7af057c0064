"""The self-grading guard."""

from __future__ import annotations

import pytest

from judge_engine.guard import assign, normalize_model, same_model, vendor_of


@pytest.mark.parametrize(
    ("name", "normal"),
    [
        ("Az/gpt-4.1", "gpt-4-1"),
        ("openai/Azure/gpt-4.1", "gpt-4-1"),
        ("gpt-4.1-2025-04-14", "gpt-4-1"),
        ("o/Kimi-K2.5", "kimi-k2-5"),
        ("azure/gpt-4o-mini", "gpt-4o-mini"),
        ("together/meta-llama/Llama-3.3-70B-Instruct-Turbo", "llama-3-3-70b-instruct-turbo"),
        ("claude-3-5-sonnet@20240620", "claude-3-5-sonnet"),
        ("anthropic.claude-3-sonnet-20240229-v1:0", "claude-3-sonnet"),
        ("claude-opus-4.5", "claude-opus-4-5"),
        ("gpt-4-0613", "gpt-4"),
        ("models/gemini-1.5-pro", "gemini-1-5-pro"),
        ("gemini-3-pro-preview", "gemini-3-pro"),
        ("ft:gpt-4o-2024-08-06:acme::abc123", "gpt-4o"),
        ("llama3:latest", "llama3"),
        ("qwen3-coder:30b", "qwen3-coder:30b"),  # a size tag names another model
        ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
    ],
)
def test_normalization(name: str, normal: str) -> None:
    assert normalize_model(name) == normal


def test_same_model_and_vendor() -> None:
    assert same_model("Az/gpt-4.1", "gpt-4.1")
    assert not same_model("gpt-4.1", "gpt-4.1-mini")
    assert same_model("kimi", "moonshotai/Kimi-K2.5")  # a bare family name matches its family
    assert not same_model("gpt-4", "gpt-4.1")
    assert vendor_of("Az/gpt-4.1") == vendor_of("o3-mini") == "openai"
    assert vendor_of("claude-opus-4-5") == "anthropic"
    assert vendor_of("my-own-model") == "my-own-model"


def test_deployment_of_a_judge_is_not_graded_by_it() -> None:
    slots = assign(["gpt-4.1"], ["claude-sonnet-4-5"], ["Az/gpt-4.1"])
    assert [(a.slot, a.judge) for a in slots] == [("gpt-4.1", "claude-sonnet-4-5")]
    assert (
        slots[0].reason == "fallback: it produced this session (Az/gpt-4.1; the same model by name)"
    )


def test_multi_model_sessions_check_every_agent_model() -> None:
    slots = assign(
        ["gpt-4.1", "claude-opus-4-5"],
        ["claude-opus-4-5", "gemini-2.5-pro"],
        ["o/Kimi-K2.5", "Az/gpt-4.1"],
    )
    # claude-opus-4-5 already sits on this session's panel: the next fallback takes over.
    assert [(a.slot, a.judge, a.reason.split(":")[0]) for a in slots] == [
        ("gpt-4.1", "gemini-2.5-pro", "fallback"),
        ("claude-opus-4-5", "claude-opus-4-5", "ok"),
    ]


def test_no_fallback_left_skips_with_self_grading() -> None:
    slots = assign(
        ["gpt-4.1", "claude-opus-4-5"], ["gpt-4.1-2025-04-14"], ["gpt-4.1", "claude-opus-4.5"]
    )
    assert [a.judge for a in slots] == [None, None]
    assert all(a.reason.startswith("self-grading:") for a in slots)


def test_vendor_mode_and_off() -> None:
    vendor = assign(["gpt-4.1-mini"], ["o3", "claude-sonnet-4"], ["Az/gpt-4.1"], "vendor")
    assert vendor[0].judge == "claude-sonnet-4"
    assert "its vendor" in vendor[0].reason
    assert assign(["gpt-4.1"], [], ["gpt-4.1"], "off")[0].judge == "gpt-4.1"
    with pytest.raises(ValueError, match="guard mode"):
        assign(["a"], [], [], "strict")


def test_unknown_agent_model_blocks_nothing() -> None:
    assert assign(["gpt-4.1"], [], [])[0].judge == "gpt-4.1"


def test_the_guard_knows_a_vendor_behind_any_provider_and_says_which_rule_matched() -> None:
    chosen = assign(["vllm/Qwen/Qwen3-32B"], ["openrouter/anthropic/claude-sonnet-4.5"],
                    ["qwen3-coder-480b"], mode="vendor")  # fmt: skip
    assert chosen[0].judge == "openrouter/anthropic/claude-sonnet-4.5"
    assert "both alibaba by the models' names" in chosen[0].reason
    same = assign(["openrouter/openai/gpt-4.1"], [], ["azure/gpt-4.1-2025-04-14"])
    assert same[0].judge is None and "the same model by name" in same[0].reason
