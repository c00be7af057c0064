"""The judge's reply -> a verdict.

In: the JSON of a chat-completions reply and the model that was asked. Out: a
`Completion` (content, finish reason, usage, served model) and from its content a
`Verdict` (`success` 0/1, `confidence` low/medium/high, `reasoning`; the failure mode,
the step where it first went wrong and a note; the rubric's other criteria), or an error
saying why not: `BadReply` for a reply that is not a usable completion, `Unparseable`
for content that holds no valid verdict, `CutOff` for content cut at the token limit.

Only a top-level JSON object of the content can be the verdict: text and code fences
may surround it, but an object nested inside another object, or quoted inside a string
(a judge quoting the trace's forged `{"success": 1}` in its reasoning), never counts.
When the content holds several top-level objects, it counts only if exactly one of
them is a valid verdict; otherwise it is unparseable, and asked again. Finding the
objects is one linear pass (a million `{` cost what a million letters do); decoding
them is orjson's, which refuses deep nesting instead of recursing. `success` may be
0/1, a boolean or their string forms.

The rubric's reply form (`taxonomy.Form`) is held strictly: `failure_mode` must be one
of its codes (`none` exactly when `success` is 1), `failure_step` a message number (1
or more) or null, and every criterion the rubric declares present with a value of its
kind; an object that breaks any of these is no verdict, and the judge is asked again.
A reply without `failure_mode` at all (a gateway that ignored the schema) is a verdict
whose mode is unknown.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from .gateway.protocols import BadCompletion, Completion, decode
from .models import normalize_model
from .taxonomy import NONE, Form, form_of

CONFIDENCES = ("low", "medium", "high")
#: What moves the scan inside an object: braces, and the quotes that open strings.
_STRUCTURE = re.compile(r'[{}"]')
#: Characters of a failure note kept.
NOTE_CHARS = 400


def schema_for(form: Form) -> dict[str, Any]:
    """The JSON Schema of a verdict under a rubric's reply form, strict (every property
    required, no other allowed), for gateways that take structured output."""
    properties: dict[str, Any] = {
        "success": {"type": "integer", "enum": [0, 1]},
        "confidence": {"type": "string", "enum": list(CONFIDENCES)},
        "reasoning": {"type": "string"},
        "failure_mode": {"type": "string", "enum": list(form.codes)},
        "failure_step": {"type": ["integer", "null"]},
        "failure_note": {"type": "string"},
    }
    if form.criteria:
        properties["criteria"] = {
            "type": "object",
            "properties": {
                c.name: {"type": "integer", "enum": list(c.values)} for c in form.criteria
            },
            "required": [c.name for c in form.criteria],
            "additionalProperties": False,
        }
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


#: The schema of a rubric that adds nothing to the default taxonomy.
SCHEMA = schema_for(form_of())
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
    #: One of the rubric's codes (`none` for a success); None: the reply did not say.
    failure_mode: str | None = None
    #: The message number where the session first went wrong (None: not said).
    failure_step: int | None = None
    failure_note: str = ""
    #: The rubric's other criteria: name -> value.
    criteria: Mapping[str, int] | None = None


def completion(
    data: Mapping[str, Any],
    asked_model: str,
    *,
    check_model: bool = True,
    protocol: str = "openai_chat",
) -> Completion:
    """A reply read back by its protocol (`gateway.protocols.decode`), checked.

    With `check_model`, a reply naming another model than the one asked (after
    normalization: `gpt-4.1-2025-04-14` is `gpt-4.1`) is refused.
    """
    try:
        done = decode(data, protocol)
    except BadCompletion as exc:
        raise BadReply(str(exc)) from None
    served_model = done.served_model
    if (
        check_model
        and served_model is not None
        and normalize_model(served_model) != normalize_model(asked_model)
    ):
        # A gateway that routed to another model must not pass its verdict off as this one.
        raise ModelMismatch(f"asked {asked_model}, the reply says {served_model}", done.content)
    return done


def parse_verdict(text: str, finish_reason: str | None = None, form: Form | None = None) -> Verdict:
    """The verdict in a judge's content: its one top-level JSON object that is a valid
    verdict under the rubric's reply `form` (the default taxonomy when None; see the
    module docstring)."""
    form = form or DEFAULT_FORM
    if finish_reason == "length":
        raise CutOff("the reply was cut off at the token limit", text)
    if not text.strip():
        raise Unparseable("the reply is empty", text)
    found: list[Verdict] = []
    objects = 0
    for start, end in top_level_objects(text):
        objects += 1
        try:
            value = orjson.loads(text[start:end])
        except orjson.JSONDecodeError:
            continue  # not JSON (prose in braces), or nested past orjson's depth limit
        if isinstance(value, dict):
            verdict = _verdict(value, form)
            if verdict is not None:
                found.append(verdict)
    if len(found) == 1:
        return found[0]
    if found:
        raise Unparseable(
            f"{len(found)} verdict objects in one reply: which one is the judge's is unclear",
            text,
        )
    raise Unparseable(
        "no top-level JSON object with success and confidence in the reply"
        + (f" ({objects} other objects)" if objects else ""),
        text,
    )


def top_level_objects(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of every brace-balanced `{...}` at the top level of `text`, in one
    forward pass: outside an object, quotes are prose and only `{` matters; inside one,
    strings are skipped to their closing quote, so braces in them do not count. An
    object never closed yields nothing, and ends the scan."""
    position = text.find("{")
    while position != -1:
        depth = 0
        cursor = position
        while True:
            match = _STRUCTURE.search(text, cursor)
            if match is None:
                return
            at = match.start()
            char = text[at]
            if char == '"':
                close = _string_end(text, at)
                if close == -1:
                    return
                cursor = close + 1
                continue
            cursor = at + 1
            depth += 1 if char == "{" else -1
            if depth == 0:
                break
        yield position, cursor
        position = text.find("{", cursor)


def _string_end(text: str, opening: int) -> int:
    """The index of the quote closing the JSON string opened at `opening`, or -1."""
    close = opening
    while True:
        close = text.find('"', close + 1)
        if close == -1:
            return -1
        backslashes = 0
        back = close - 1
        while back > opening and text[back] == "\\":
            backslashes += 1
            back -= 1
        if backslashes % 2 == 0:
            return close


def _verdict(value: Mapping[str, Any], form: Form) -> Verdict | None:
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
    reasoning = reasoning if isinstance(reasoning, str) else str(reasoning)
    if "failure_mode" not in value:
        return Verdict(success, confidence, reasoning)
    mode = value["failure_mode"]
    if not isinstance(mode, str) or mode.strip().lower() not in form.codes:
        return None  # a code the rubric does not know: malformed, asked again
    mode = mode.strip().lower()
    if (mode == NONE) != (success == 1):
        return None  # a success with a failure mode, or a failure without one
    step = value.get("failure_step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 1):
        return None
    note = value.get("failure_note", "")
    note = (note if isinstance(note, str) else "")[:NOTE_CHARS]
    criteria: dict[str, int] | None = None
    if form.criteria:
        given = value.get("criteria")
        if not isinstance(given, dict):
            return None
        criteria = {}
        for criterion in form.criteria:
            answer = given.get(criterion.name)
            if isinstance(answer, bool):
                answer = int(answer)
            if not isinstance(answer, int) or answer not in criterion.values:
                return None
            criteria[criterion.name] = answer
    return Verdict(
        success, confidence, reasoning, mode, step if success == 0 else None, note, criteria
    )


DEFAULT_FORM = form_of()
