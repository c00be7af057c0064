"""The task: the benchmark's request to the agent, not a harness's preamble.

In: the messages of the first call the agent made (or a flat conversation). Out: the
task text, and where it was found.

The rule, for a trace of LLM calls: everything in the agent's first call was given to
it, not produced by it. Assistant turns in that input are therefore a harness's
few-shot examples; the request is what the user side says after the last of them.
The task is the text of those user messages, each stripped of harness preambles: whole
blocks of the form `<tag>...</tag>` at the start or end of a text (`<system-reminder>`,
`<environment_context>`, `<info-msg>` and the like). A message that is nothing but
such blocks adds nothing; if nothing is left at all, the last user message counts as
it is. For a flat conversation (no calls), the first user message with text beyond a
preamble is the task.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .model import Message

#: One whole `<tag ...>...</tag>` block at the start of a text (tag names may hold
#: spaces, dashes and underscores: `<permissions instructions>`).
_LEADING = re.compile(
    r"\A\s*<(?P<tag>[A-Za-z][\w\- ]{0,60}?)(?:\s[^<>]{0,200})?>.*?</(?P=tag)>\s*", re.DOTALL
)
_TRAILING_CLOSE = re.compile(r"</(?P<tag>[A-Za-z][\w\- ]{0,60})>\Z")


@dataclass(frozen=True, slots=True)
class Task:
    text: str
    #: Index of the (first) message the task was taken from; -1 when none.
    index: int
    #: Preamble tags removed, in order of removal.
    removed: tuple[str, ...] = ()


def strip(text: str) -> tuple[str, list[str]]:
    """`text` without the tag blocks at its start and end; the tags removed."""
    removed: list[str] = []
    while True:
        match = _LEADING.match(text)
        if match is None:
            break
        removed.append(match.group("tag"))
        text = text[match.end() :]
    while True:
        stripped = text.rstrip()
        close = _TRAILING_CLOSE.search(stripped)
        if close is None:
            break
        tag = close.group("tag")
        start = max(
            stripped.rfind(f"<{tag}>", 0, close.start()),
            stripped.rfind(f"<{tag} ", 0, close.start()),
        )
        if start == -1:
            break
        removed.append(tag)
        text = stripped[:start]
    return text.strip(), removed


def of_first_call(messages: Sequence[Message]) -> Task:
    """The task among the input messages of the agent's first call (module docstring)."""
    last_assistant = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=-1)
    texts: list[str] = []
    removed: list[str] = []
    first = -1
    last_user = -1
    for index in range(last_assistant + 1, len(messages)):
        message = messages[index]
        if message.role != "user" or not message.content.strip():
            continue
        last_user = index
        text, tags = strip(message.content)
        removed.extend(tags)
        if text:
            texts.append(text)
            first = index if first == -1 else first
    if texts:
        return Task("\n\n".join(texts), first, tuple(removed))
    if last_user != -1:
        return Task(messages[last_user].content.strip(), last_user, ())
    return of_conversation(messages)


def of_conversation(messages: Sequence[Message]) -> Task:
    """The first user message with text beyond a preamble (a flat conversation)."""
    fallback = -1
    for index, message in enumerate(messages):
        if message.role != "user" or not message.content.strip():
            continue
        text, tags = strip(message.content)
        if text:
            return Task(text, index, tuple(tags))
        fallback = index if fallback == -1 else fallback
    if fallback != -1:
        return Task(messages[fallback].content.strip(), fallback, ())
    return Task("", -1, ())
