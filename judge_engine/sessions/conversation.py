"""The LLM calls of one trace -> the agent's own conversation, as the judge reads it.

In: `Call`s in trace order (a span each: its raw input and output messages, model,
status). Out: a `Conversation`: the transcript, the task, the agent's models, and a
`Reading` that says which calls were left out and why.

The rule (the same for every harness; nothing here knows a harness by name):

1. *Threads.* A call continues an earlier call when both open the same way (the same
   first message and system instructions, digits ignored) and the later input holds
   something the earlier call produced: one of its tool
   call ids, or its reply text; or the later input starts with the earlier input
   whole. Each call continues the latest call it can (a failed call produced nothing
   to continue). Only when no call qualifies so, a longer input that holds all the
   messages of an earlier one but one in ten (at least one) continues it. The calls
   form trees.
2. *The main thread* is the longest chain of calls in any tree: the conversation the
   agent extended over the most calls. Ties go to the chain that carries more tool
   calls and results, then to the one that does not quote another chain's reply (a
   grader or a title generator quotes the agent; the agent quotes no one), then to
   the larger input, then to the later chain.
3. *The agent's conversations.* Other trees that open as the main thread does and run
   wholly before or after it are the same agent in a new context: a harness that
   compacted its history, or started the task again. They are shown in order, each
   after an event line, without repeating messages already shown. Trees that open
   otherwise (title generators, summarizers, safety classifiers, a benchmark's grader)
   or that run beside the main thread (sub-agents), and branches off a chain that were
   not continued, are side calls: counted and listed, never shown.
4. *The transcript* of one chain is its last call's input and output. Replies of
   earlier calls that the input lost (tool calls recorded only in a call's output) are
   put back at their place; messages the trace recorded empty are left out (counted).
5. *Failed calls* (status ERROR, or an `error.type`) appear at their place in time as
   one event line with the error's type and message; a run of failed calls with no
   input is one line with its count. A call that wraps another (a gateway's HTTP span
   around its LLM span) is the same call: only the inner one counts.
6. *The task* is read from the agent's first call (see `preamble`).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from . import parts, preamble
from .model import EVENT, Message, Reading

#: Characters of a call's first message (and system instructions) that say how it opens.
_OPENING = 240
_DIGITS = bytes.maketrans(b"0123456789", b"##########")
#: Reply texts shorter than this are too common to tie two calls together on their own
#: unless they appear in the later input's second half.
_SHORT_TEXT = 24
#: Characters of an error message shown in an event line.
_ERROR_CHARS = 300


@dataclass(slots=True)
class Call:
    """One LLM call of a trace, as the adapter found it."""

    #: Position in the trace (spans sorted by start time, file order on ties).
    index: int
    #: A label for `show`: the span's name and its place in the source.
    label: str
    #: The input messages as JSON text ("" when the call recorded none).
    raw_input: str
    raw_output: str = ""
    #: `gen_ai.system_instructions`, as JSON text, when recorded apart from the input.
    raw_system: str = ""
    models: tuple[str, ...] = ()
    failed: bool = False
    #: "ErrorType: message" for a failed call.
    error: str = ""
    span_id: str | None = None
    parent_id: str | None = None


@dataclass
class Conversation:
    messages: list[Message]
    task: str
    agent_models: tuple[str, ...]
    side_models: tuple[str, ...]
    reading: Reading
    side_calls: int
    #: Input messages of the transcript's chains that did not parse as JSON.
    malformed: int = 0
    #: How many of the agent's calls each model name made (for its main model).
    model_calls: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Node:
    call: Call
    #: How the call opens (`_opening`), compared for equality only.
    opening: bytes
    #: What the call produced: its tool call ids and reply texts (see `parts.signature`).
    ids: tuple[str, ...] = ()
    texts: tuple[str, ...] = ()
    parent: int | None = None
    depth: int = 1
    children: int = 0


def _opening(call: Call) -> bytes:
    """The call's system instructions and first message, digits ignored, as UTF-8 (a
    byte translation is a tenth of the cost of `str.translate`; UTF-8 never holds a
    digit's byte inside another character)."""
    raw = call.raw_input[: 2 * _OPENING].lstrip()
    if raw.startswith("["):
        # The first message only: up to where the second one begins.
        cut = raw.find('"role"', raw.find('"role"') + 6) if '"role"' in raw else -1
        head = raw[: cut if 0 < cut < _OPENING else _OPENING]
    else:
        head = raw[:_OPENING]
    system = call.raw_system[:_OPENING]
    return (system + "\x1f" + head).encode("utf-8", "surrogatepass").translate(_DIGITS)


def _escaped(text: str) -> tuple[str, ...]:
    """How `text` may appear inside JSON: escaped as orjson and as json.dumps write it."""
    plain = orjson.dumps(text).decode()[1:-1]
    ascii_only = plain.encode("ascii", "backslashreplace").decode()
    if ascii_only != plain:
        ascii_only = re.sub(
            r"\\x([0-9a-f]{2})|\\u([0-9a-f]{4})|\\U([0-9a-f]{8})",
            lambda m: _json_escape(int(m.group(1) or m.group(2) or m.group(3), 16)),
            ascii_only,
        )
    return (plain, ascii_only) if ascii_only != plain else (plain,)


def _json_escape(code: int) -> str:
    if code > 0xFFFF:
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def _messages(raw: str, default_role: str, tally: parts.Tally) -> tuple[list[Message], bool]:
    """Messages from a call's input or output JSON; (messages, whether it parsed)."""
    if not raw:
        return [], True
    try:
        value: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return [Message(default_role, parts.text_of(raw, tally))], False
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        return [Message(default_role, parts.text_of(value, tally))], False
    out: list[Message] = []
    for position, item in enumerate(value):
        if isinstance(item, dict):
            out.extend(parts.convert(item, position, tally))
        elif item is not None:
            out.append(Message(default_role, parts.text_of(item, tally)))
    return out, True


@dataclass(frozen=True, slots=True)
class _Parsed:
    """A call's input or output, converted once, with what conversion replaced."""

    messages: tuple[Message, ...]
    ok: bool
    binary: int
    unknown: int


def _parse(raw: str, default_role: str) -> _Parsed:
    tally = parts.Tally()
    messages, ok = _messages(raw, default_role, tally)
    return _Parsed(tuple(messages), ok, tally.binary, tally.unknown)


def _system(raw: str, tally: parts.Tally) -> str:
    if not raw:
        return ""
    try:
        value: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw
    return parts.text_of(value, tally)


class _Trace:
    """The calls of one trace, their threads, and the chains that matter."""

    def __init__(self, calls: Sequence[Call]) -> None:
        self.tally = parts.Tally()
        wrappers = _wrappers(calls) | _plain_copies(calls)
        self.wrapped = [c for c in calls if c.index in wrappers]
        self.calls = [c for c in calls if c.index not in wrappers]
        self.floating = [c for c in self.calls if _no_input(c.raw_input)]
        self.nodes: dict[int, _Node] = {}
        self._keys: dict[int, Counter[int]] = {}
        self._parsed: dict[tuple[int, str], _Parsed] = {}
        floating = {c.index for c in self.floating}
        for call in self.calls:
            if call.index in floating:
                continue
            node = _Node(call, _opening(call))
            node.ids, node.texts = parts.signature(call.raw_output)
            self.nodes[call.index] = node
        self._link()

    def parsed(self, call: Call, which: str) -> _Parsed:
        """A call's "input" or "output" messages, converted once per trace."""
        key = (call.index, which)
        found = self._parsed.get(key)
        if found is None:
            if which == "input":
                found = _parse(call.raw_input, "user")
            else:
                found = _parse(call.raw_output, "assistant")
            self._parsed[key] = found
        return found

    def shown(self, parsed: _Parsed) -> None:
        """Count what conversion replaced in messages the transcript shows."""
        self.tally.binary += parsed.binary
        self.tally.unknown += parsed.unknown

    def _link(self) -> None:
        order = list(self.nodes.values())
        for position, node in enumerate(order):
            parent = self._latest(order, position, self._continues)
            if parent is None:
                parent = self._latest(order, position, self._holds)
            if parent is not None:
                node.parent = parent.call.index
                node.depth = parent.depth + 1
                parent.children += 1

    @staticmethod
    def _latest(
        order: list[_Node], position: int, test: Callable[[_Node, _Node], bool]
    ) -> _Node | None:
        """The latest earlier call the call at `position` continues by `test` (a failed
        call produced nothing to continue; one that opens otherwise is another thread).
        Searched backwards: the call continued is nearly always the one just before."""
        node = order[position]
        for back in range(position - 1, -1, -1):
            earlier = order[back]
            if earlier.call.failed or earlier.opening != node.opening:
                continue
            if test(earlier, node):
                return earlier
        return None

    def _continues(self, earlier: _Node, later: _Node) -> bool:
        """Whether `later` continues `earlier` (rule 1 of the module docstring)."""
        raw = later.call.raw_input
        # Searched from the end: what a call continues is near the end of its input.
        for call_id in earlier.ids:
            if raw.rfind(f'"{call_id}"') != -1:
                return True
        half = len(earlier.call.raw_input) // 2
        for text in earlier.texts:
            for escaped in _escaped(text[:120]):
                at = raw.rfind(escaped)
                if at != -1 and (len(text) >= _SHORT_TEXT or at >= half):
                    return True
        prior = earlier.call.raw_input
        end = len(prior.rstrip()) if prior[-1:].isspace() else len(prior)
        if end <= 2 or prior[end - 1] != "]":
            return False
        head = prior[: end - 1]
        return raw.startswith(head.rstrip() if head[-1:].isspace() else head)

    def _holds(self, earlier: _Node, later: _Node) -> bool:
        """Whether the later input holds the earlier one's messages, but for one in ten
        (at least one): harnesses move or rewrite a note (a date, a cache marker), and
        some emitters record tool calls and results only as empty messages, so neither
        ids nor a prefix tie the calls together."""
        before, after = self._message_keys(earlier), self._message_keys(later)
        if not before or sum(after.values()) <= sum(before.values()):
            return False
        missing = sum((before - after).values())
        return missing <= max(1, sum(before.values()) // 10)

    def _message_keys(self, node: _Node) -> Counter[int]:
        keys = self._keys.get(node.call.index)
        if keys is None:
            keys = Counter()
            try:
                value = orjson.loads(node.call.raw_input)
            except orjson.JSONDecodeError:
                value = None
            for item in value if isinstance(value, list) else []:
                keys[hash(orjson.dumps(item, option=orjson.OPT_SORT_KEYS))] += 1
            self._keys[node.call.index] = keys
        return keys

    def chain(self, last: _Node) -> list[_Node]:
        out = [last]
        while out[-1].parent is not None:
            out.append(self.nodes[out[-1].parent])
        return out[::-1]

    def root(self, node: _Node) -> int:
        while node.parent is not None:
            node = self.nodes[node.parent]
        return node.call.index

    def main(self) -> list[_Node] | None:
        """The main thread's chain (see the module docstring), or None without calls."""
        leaves = [n for n in self.nodes.values() if n.children == 0]
        if not leaves:
            return None
        deepest = max(n.depth for n in leaves)
        candidates = [n for n in leaves if n.depth == deepest]
        if len(candidates) > 1:
            activity = {n.call.index: self._activity(n) for n in candidates}
            most = max(activity.values())
            candidates = [n for n in candidates if activity[n.call.index] == most]
        top = [self.chain(n) for n in candidates]
        if len(top) == 1:
            return top[0]
        return max(
            top,
            key=lambda chain: (
                not self._quotes_others(chain, leaves),
                len(chain[-1].call.raw_input),
                chain[-1].call.index,
            ),
        )

    def _activity(self, leaf: _Node) -> int:
        calls = sum(len(n.ids) for n in self.chain(leaf))
        raw = leaf.call.raw_input
        results = sum(raw.count(marker) for marker in _RESULT_MARKERS)
        return calls + results

    def _quotes_others(self, chain: list[_Node], leaves: list[_Node]) -> bool:
        """Whether the chain's first input quotes what another chain replied."""
        raw = chain[0].call.raw_input
        own = {n.call.index for n in chain}
        for leaf in leaves:
            for node in self.chain(leaf):
                if node.call.index in own:
                    continue
                for text in node.texts:
                    if len(text) >= _SHORT_TEXT and any(e in raw for e in _escaped(text[:120])):
                        return True
        return False


#: Substrings that mark a tool result in a call's raw input, in the shapes emitters write.
_RESULT_MARKERS = (
    '"tool_call_response"',
    '"tool_result"',
    '"function_call_output"',
    '"role": "tool"',
    '"role":"tool"',
)


def _wrappers(calls: Sequence[Call]) -> set[int]:
    """Calls whose span is an ancestor of another call's span: the same call, wrapped."""
    by_span = {c.span_id: c for c in calls if c.span_id}
    parents = {c.span_id: c.parent_id for c in calls if c.span_id}
    wrapped: set[int] = set()
    for call in calls:
        seen: set[str] = set()
        parent = call.parent_id
        while parent and parent not in seen:
            seen.add(parent)
            outer = by_span.get(parent)
            if outer is not None:
                wrapped.add(outer.index)
            parent = parents.get(parent)
    return wrapped


def _plain_copies(calls: Sequence[Call]) -> set[int]:
    """Calls recorded twice, once with plain text for input (a gateway's HTTP span,
    where the span tree that would say so is not kept): the plain copy is left out
    when another call gave the same reply."""
    plain = [c for c in calls if c.raw_input and not _structured(c.raw_input)]
    if not plain:
        return set()
    replies: set[str] = set()
    for call in calls:
        if _structured(call.raw_input):
            replies.add(_reply_text(call.raw_output))
    replies.discard("")
    return {call.index for call in plain if _reply_text(call.raw_output) in replies}


def _structured(raw: str) -> bool:
    """Whether a raw input is JSON messages rather than plain text."""
    return raw[:64].lstrip()[:1] in ("[", "{")


def _no_input(raw: str) -> bool:
    """Whether a call recorded no input messages ("", "[]", whitespace)."""
    return len(raw) < 64 and not raw.strip("[] \n\r\t")


def _reply_text(raw: str) -> str:
    messages, _ = _messages(raw, "assistant", parts.Tally())
    return _squeezed("\n".join(m.content for m in messages))


def _key(message: Message) -> tuple[str, str, tuple[str, ...], str | None]:
    text = " ".join(message.content.split())[:300]
    return (message.role, text, tuple(c.id for c in message.tool_calls), message.tool_call_id)


def _is_empty(message: Message) -> bool:
    return not (message.content.strip() or message.tool_calls or message.reasoning)


def _same_reply(base: Message, output: Message) -> bool:
    if base.role != "assistant":
        return False
    output_ids = {c.id for c in output.tool_calls}
    if output_ids and output_ids & {c.id for c in base.tool_calls}:
        return True
    # Whitespace aside, one may hold the other's start: emitters join the text items
    # of a reply with or without a line break, or keep them as messages of their own.
    mine, theirs = _squeezed(base.content), _squeezed(output.content)
    return bool(mine and theirs) and (mine.startswith(theirs) or theirs.startswith(mine))


def _squeezed(text: str) -> str:
    """The first 200 characters of `text` other than whitespace: what reply texts are
    compared by."""
    return "".join(text[:400].split())[:200]


def _restore(base: Message, output: Message) -> Message:
    """The input's copy of a reply, with the tool calls only the output recorded."""
    known = {c.id for c in base.tool_calls}
    missing = tuple(c for c in output.tool_calls if c.id not in known)
    if not missing and (base.reasoning or not output.reasoning):
        return base
    return Message(
        base.role,
        base.content or output.content,
        tool_calls=base.tool_calls + missing,
        tool_call_id=base.tool_call_id,
        name=base.name,
        reasoning=base.reasoning or output.reasoning,
        is_error=base.is_error,
    )


def _failure_line(calls: list[Call]) -> str:
    error = (calls[0].error or "unknown error")[:_ERROR_CHARS]
    if len(calls) == 1:
        return f"LLM call failed: {error}"
    return f"{len(calls)} LLM calls failed in a row: {error}"


class _Chain:
    """The transcript of one chain of calls, with failed calls in their places."""

    def __init__(self, trace: _Trace, chain: list[_Node]) -> None:
        self.trace = trace
        self.chain = chain
        self.empty = 0
        self.malformed = 0

    def build(self, failures: list[Call]) -> list[Message]:
        trace = self.trace
        last = self.chain[-1]
        if last.call.failed:
            failures = [*failures, last.call]
        parsed = trace.parsed(last.call, "input")
        trace.shown(parsed)
        base = list(parsed.messages)
        self.malformed += not parsed.ok
        system = _system(last.call.raw_system, trace.tally)
        if system and not any(m.role == "system" for m in base):
            base.insert(0, Message("system", system))
        first_input = trace.parsed(self.chain[0].call, "input").messages
        # Slots: (message, the chain position whose reply it is, or -1).
        slots: list[tuple[Message, int]] = [(m, -1) for m in base]
        cursor = min(len(first_input), len(slots))
        for position, node in enumerate(self.chain[:-1]):
            # Most inputs hold the earlier replies whole: then nothing is converted.
            held = self._held(slots, cursor, node)
            if held is not None:
                slots[held] = (slots[held][0], position)
                cursor = held + 1
                continue
            for reply in trace.parsed(node.call, "output").messages:
                if reply.role != "assistant" or _is_empty(reply):
                    continue
                found = next(
                    (i for i in range(cursor, len(slots)) if _same_reply(slots[i][0], reply)),
                    None,
                )
                if found is None:
                    slots.insert(cursor, (reply, position))
                    cursor += 1
                else:
                    slots[found] = (_restore(slots[found][0], reply), position)
                    cursor = found + 1
        end = len(self.chain) - 1
        output = trace.parsed(last.call, "output")
        trace.shown(output)
        slots.extend((m, end) for m in output.messages)
        kept: list[tuple[Message, int]] = []
        for message, tag in slots:
            if _is_empty(message) and not message.tool_call_id:
                self.empty += 1
                continue
            kept.append((message, tag))
        return self._place_failures(kept, failures)

    @staticmethod
    def _held(slots: list[tuple[Message, int]], cursor: int, node: _Node) -> int | None:
        """Where the input holds this call's whole reply (its text and every tool call),
        or None when a reply must be restored or put back."""
        if len(node.texts) > 1:
            return None
        text = _squeezed(node.texts[0]) if node.texts else ""
        wanted = set(node.ids)
        for index in range(cursor, len(slots)):
            message = slots[index][0]
            if message.role != "assistant":
                continue
            calls = {c.id for c in message.tool_calls}
            if wanted and wanted <= calls:
                return index
            if not wanted and text and _squeezed(message.content) == text:
                return index
        return None

    def _place_failures(
        self, slots: list[tuple[Message, int]], failures: list[Call]
    ) -> list[Message]:
        """Each run of failed calls goes before the reply of the next chain call in time
        (at the end when none follows)."""
        indexes = [n.call.index for n in self.chain]
        runs: dict[int, list[Call]] = {}
        for call in sorted(failures, key=lambda c: c.index):
            later = next((p for p, i in enumerate(indexes) if i > call.index), len(indexes))
            runs.setdefault(later, []).append(call)
        out: list[Message] = []
        for message, tag in slots:
            due = sorted(p for p in runs if p <= tag)
            if due:
                out.extend(_events([c for p in due for c in runs.pop(p)]))
            out.append(message)
        if runs:
            out.extend(_events([c for p in sorted(runs) for c in runs[p]]))
        return out


def _events(calls: list[Call]) -> list[Message]:
    """One event line per run of consecutive failed calls with the same error."""
    out: list[Message] = []
    run: list[Call] = []
    for call in calls:
        if run and call.error != run[-1].error:
            out.append(Message(EVENT, _failure_line(run)))
            run = []
        run.append(call)
    if run:
        out.append(Message(EVENT, _failure_line(run)))
    return out


_DECODER = json.JSONDecoder()


def _first_words(raw: str) -> str:
    """The start of a call's first message, as text (only that message is decoded)."""
    start = raw.find("{")
    text = raw
    if raw[:64].lstrip().startswith("[") and start != -1:
        try:
            first, _ = _DECODER.raw_decode(raw, start)
            text = parts.text_of(first)
        except (ValueError, RecursionError):
            pass
    return " ".join(text[:200].split())[:80]


def _describe(call: Call, total: int) -> str:
    return f"call {call.index + 1} of {total} ({call.label})"


def read(calls: Sequence[Call]) -> Conversation | None:
    """The agent's conversation among `calls` (the module docstring), or None when no
    call carries any message and none failed."""
    trace = _Trace(calls)
    total = len(calls)
    failed = [c for c in trace.calls if c.failed]
    main = trace.main()
    if main is None:
        if not failed:
            return None
        reading = Reading(failed_calls=len(failed), ended_with_failure=True)
        return Conversation(
            _events(failed), "", _models(failed), (), reading, 0, 0, _model_calls(failed)
        )

    segments, side = _segments(trace, main, total)
    agent_calls = {n.call.index for chain in segments for n in chain}
    agent_models = _models([trace.nodes[i].call for i in sorted(agent_calls)])
    opening = main[0].opening
    floating = {c.index for c in trace.floating}
    # Failed calls with no input say nothing of their conversation: the agent's.
    agent_failures = [
        c
        for c in failed
        if c.index not in agent_calls
        and (c.index in floating or trace.nodes[c.index].opening == opening)
    ]
    shown_failures = {c.index for c in agent_failures}
    for call in failed:
        if call.index not in shown_failures and call.index not in agent_calls:
            side.append(f"{_describe(call, total)}: a failed side call ({call.error[:80]})")

    messages: list[Message] = []
    seen: set[tuple[str, str, tuple[str, ...], str | None]] = set()
    empty = malformed = 0
    for number, chain in enumerate(segments):
        # Failed calls before the next conversation starts belong to this one.
        until = segments[number + 1][0].call.index if number + 1 < len(segments) else total
        since = chain[0].call.index if number else -1
        mine = [c for c in agent_failures if since < c.index < until]
        builder = _Chain(trace, chain)
        built = builder.build(mine)
        empty += builder.empty
        malformed += builder.malformed
        if number:
            messages.append(Message(EVENT, _RESTART))
            built = [m for m in built if m.role == EVENT or _key(m) not in seen]
        if len(segments) > 1:
            seen.update(_key(m) for m in built)
        messages.extend(built)

    task, task_from = _task(trace, segments[0], total)
    ended = max(agent_calls | shown_failures)
    last_failed = any(c.index == ended for c in failed)
    side_models = _models([c for c in trace.calls if c.index not in agent_calls | shown_failures])
    reading = Reading(
        task_from=task_from,
        side_calls=tuple(side),
        failed_calls=len(failed),
        binary_parts=trace.tally.binary,
        unknown_parts=trace.tally.unknown,
        empty_messages=empty,
        restarts=len(segments) - 1,
        ended_with_failure=last_failed,
    )
    return Conversation(
        messages=messages,
        task=task,
        agent_models=agent_models,
        side_models=tuple(m for m in side_models if m not in agent_models),
        reading=reading,
        side_calls=len(side),
        malformed=malformed,
        model_calls=_model_calls([trace.nodes[i].call for i in sorted(agent_calls)]),
    )


_RESTART = (
    "The agent's conversation continues in a new context here (the harness compacted "
    "its history or started again); messages already shown are not repeated."
)


def _segments(trace: _Trace, main: list[_Node], total: int) -> tuple[list[list[_Node]], list[str]]:
    """The agent's conversations in order, and a line for every side call (rule 3)."""
    opening = main[0].opening
    main_root = trace.root(main[-1])
    first, last = main[0].call.index, main[-1].call.index
    trees: dict[int, list[_Node]] = {}
    for node in trace.nodes.values():
        trees.setdefault(trace.root(node), []).append(node)
    segments = [main]
    for root, members in trees.items():
        if root == main_root or members[0].opening != opening:
            continue
        if all(n.call.failed for n in members):
            continue  # failed calls, not a conversation: shown as events
        low = min(n.call.index for n in members)
        high = max(n.call.index for n in members)
        if high < first or low > last:
            leaf = max(members, key=lambda n: (n.depth, n.call.index))
            segments.append(trace.chain(leaf))
    segments.sort(key=lambda chain: chain[0].call.index)
    shown = {n.call.index for chain in segments for n in chain}
    side: list[str] = []
    for node in trace.nodes.values():
        if node.call.index in shown or node.call.failed:
            continue
        if node.opening != opening:
            reason = f"another conversation (it opens {_first_words(node.call.raw_input)!r})"
        elif trace.root(node) == main_root:
            reason = "a branch of the agent's conversation that was not continued"
        else:
            reason = "runs beside the agent's conversation (a sub-agent or a parallel call)"
        side.append(f"{_describe(node.call, total)}: {reason}")
    for call in trace.wrapped:
        side.append(f"{_describe(call, total)}: another record of an LLM call shown (a wrapper)")
    return segments, side


def _model_calls(calls: Sequence[Call]) -> dict[str, int]:
    """How many of `calls` each model name made (a call naming two counts for both)."""
    counts: dict[str, int] = {}
    for call in calls:
        for model in call.models:
            if model:
                counts[model] = counts.get(model, 0) + 1
    return counts


def _models(calls: Sequence[Call]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for call in calls:
        for model in call.models:
            if model:
                seen.setdefault(model, None)
    return tuple(seen)


def _task(trace: _Trace, chain: list[_Node], total: int) -> tuple[str, str]:
    """The task from the agent's first call whose input parses (see `preamble`)."""
    for node in chain:
        parsed = trace.parsed(node.call, "input")
        if not parsed.ok:
            continue
        messages = parsed.messages
        found = preamble.of_first_call(messages)
        if found.text:
            where = f"{_describe(node.call, total)}, input message {found.index + 1} of "
            where += f"{len(messages)}"
            if found.removed:
                where += "; harness preamble removed: " + ", ".join(
                    f"<{tag}>" for tag in dict.fromkeys(found.removed)
                )
            return found.text, where
    return "", "no user request found in the agent's calls"
