"""The judge's reply -> a verdict.

In: the JSON of a chat-completions reply and the model that was asked. Out: a
`Completion` (content, finish reason, usage, served model) and from its content a
`Verdict` (`success` 0/1, `confidence` low/medium/high, `reasoning`), or an error
saying why not: `BadReply` for a reply that is not a usable completion, `Unparseable`
for content that holds no valid verdict, `CutOff` for content cut at the token limit.

The content may wrap the JSON in a code fence or in text; `success` may be 0/1,
a boolean or their string forms.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .guard import normalize_model

CONFIDENCES = ("low", "medium", "high")
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_DECODER = json.JSONDecoder()
#: Accepted spellings of success (False and True hash as 0 and 1, so they match too).
_SUCCESS = {
    0: 0, 1: 1,
    "0": 0, "1": 1, "false": 0, "true": 1, "no": 0, "yes": 1, "fail": 0, "pass": 1,
}  # fmt: skip


class ReplyError(Exception):
    """A reply that yields no verdict. `kind` names why; `raw` keeps what came back."""

    kind = "bad_response"

    def __init__(self, message: str, raw: str = "") -> None:
        super().__init__(message)
        self.raw = raw


class BadReply(ReplyError):
    kind = "bad_response"


class ModelMismatch(ReplyError):
    kind = "model_mismatch"


class Unparseable(ReplyError):
    kind = "unparseable"


class CutOff(ReplyError):
    kind = "cut_off"


@dataclass(frozen=True, slots=True)
class Verdict:
    success: int
    confidence: str
    reasoning: str


@dataclass(frozen=True, slots=True)
class Completion:
    content: str
    finish_reason: str | None
    usage: dict[str, int]
    served_model: str | None


def completion(
    data: Mapping[str, Any], asked_model: str, *, check_model: bool = True
) -> Completion:
    """The first choice of a chat-completions reply, checked.

    With `check_model`, a reply naming another model than the one asked (after
    normalization: `gpt-4.1-2025-04-14` is `gpt-4.1`) is refused.
    """
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        raise BadReply("the reply has no choices")
    choice = choices[0]
    message = choice.get("message")
    content = message.get("content") if isinstance(message, Mapping) else None
    if isinstance(content, list):  # content blocks
        content = "".join(str(b.get("text", "")) for b in content if isinstance(b, Mapping))
    if content is not None and not isinstance(content, str):
        raise BadReply("the reply's content is not text")
    served = data.get("model")
    served_model = served if isinstance(served, str) and served else None
    if (
        check_model
        and served_model is not None
        and normalize_model(served_model) != normalize_model(asked_model)
    ):
        # A gateway that routed to another model must not pass its verdict off as this one.
        raise ModelMismatch(f"asked {asked_model}, the reply says {served_model}", content or "")
    raw_usage = data.get("usage")
    usage: dict[str, int] = {}
    if isinstance(raw_usage, Mapping):
        for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
            value = raw_usage.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                usage[key] = value
    reason = choice.get("finish_reason")
    return Completion(
        content or "", reason if isinstance(reason, str) else None, usage, served_model
    )


def parse_verdict(text: str, finish_reason: str | None = None) -> Verdict:
    """The verdict in a judge's content, wherever the JSON object sits in it."""
    if finish_reason == "length":
        raise CutOff("the reply was cut off at the token limit", text)
    if not text.strip():
        raise Unparseable("the reply is empty", text)
    candidates = [text.strip(), *(m.strip() for m in _FENCE.findall(text))]
    for candidate in candidates:
        found = _first_verdict(candidate)
        if found is not None:
            return found
    raise Unparseable("no JSON verdict with success and confidence in the reply", text)


def _first_verdict(text: str) -> Verdict | None:
    start = text.find("{")
    while start != -1:
        try:
            value, _ = _DECODER.raw_decode(text, start)
        except ValueError:
            value = None
        if isinstance(value, dict):
            verdict = _verdict(value)
            if verdict is not None:
                return verdict
        start = text.find("{", start + 1)
    return None


def _verdict(value: Mapping[str, Any]) -> Verdict | None:
    raw_success = value.get("success")
    if isinstance(raw_success, str):
        raw_success = raw_success.strip().lower()
    elif isinstance(raw_success, float) and raw_success in (0.0, 1.0):
        raw_success = int(raw_success)
    try:
        success = _SUCCESS.get(raw_success)
    except TypeError:  # unhashable: a list or an object
        return None
    confidence = value.get("confidence")
    if success is None or not isinstance(confidence, str):
        return None
    confidence = confidence.strip().lower()
    if confidence not in CONFIDENCES:
        return None
    reasoning = value.get("reasoning", "")
    return Verdict(success, confidence, reasoning if isinstance(reasoning, str) else str(reasoning))
