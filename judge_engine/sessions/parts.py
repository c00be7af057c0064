"""One chat message in any shape real emitters write -> `Message`s the judge can read.

In: a message as a mapping: the OTel GenAI "parts" form, OpenAI chat (`content` as a
string or blocks, `tool_calls`, the legacy `function_call`), OpenAI Responses items
(`input_text`, `output_text`, `function_call`, `function_call_output`, `reasoning`),
Anthropic blocks (`text`, `tool_use`, `tool_result`, `thinking`, `redacted_thinking`,
`image`, `document`), and `tool_calls` at message level beside `parts` (LiteLLM).
Out: one or more `Message`s (tool results inside a message become tool messages of
their own, before the rest of it) and a `Tally` of what was replaced.

Rules every shape follows:
- a tool call's arguments come from `arguments`, `args` or `input`, kept as JSON text;
- binary content (blob, image, audio, file parts, data URLs) becomes a marker such
  as `[image: image/png, 59 KB]` (see `binary`); base64 runs in plain text are replaced
  when the judge request is rendered;
- a part of an unknown type keeps whatever text it has; without text it becomes a
  marker with its type and size. Nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from . import binary
from .model import Message, ToolCall

_ROLE_ALIASES = {
    "developer": "system",
    "model": "assistant",
    "ai": "assistant",
    "bot": "assistant",
    "human": "user",
    "function": "tool",
    "ipython": "tool",
}


@dataclass
class Tally:
    """What conversion replaced, summed over the messages of a session."""

    binary: int = 0
    unknown: int = 0


def json_text(value: Any) -> str:
    """A value as JSON text; strings pass through unchanged."""
    if isinstance(value, str):
        return value
    if value is None:
        return "{}"
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        return str(value)


_PLAIN_ROLES = frozenset({"system", "user", "assistant", "tool"})


def role_of(message: Mapping[str, Any], default: str = "user") -> str:
    role = str(message.get("role") or default).lower()
    return _ROLE_ALIASES.get(role, role)


def _first(block: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = block.get(key)
        if value is not None:
            return value
    return None


def _call_id(block: Mapping[str, Any]) -> str | None:
    value = _first(block, "call_id", "id", "tool_call_id", "tool_use_id")
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value)


class _Gather:
    """The pieces of one message as its blocks are read (a plain class with slots:
    one is made per message, on the reading hot path)."""

    __slots__ = ("calls", "position", "reasoning", "results", "tally", "texts")

    def __init__(self, tally: Tally, position: int = 0) -> None:
        self.tally = tally
        self.position = position
        self.texts: list[str] = []
        self.reasoning: list[str] = []
        self.calls: list[ToolCall] = []
        self.results: list[Message] = []

    def text(self, value: str) -> None:
        if not value:
            return
        if "base64," in value:
            # Data URLs here; base64 runs in plain text are replaced when the request
            # is rendered, once, for every format.
            value, count = binary.scrub(value)
            self.tally.binary += count
        self.texts.append(value)

    def call(self, block: Mapping[str, Any], name: Any, arguments: Any) -> None:
        number = len(self.calls)
        self.calls.append(
            ToolCall(
                id=_call_id(block) or f"call_{self.position}_{number}",
                name=str(name or "unknown"),
                arguments=self._arguments(arguments),
            )
        )

    def _arguments(self, value: Any) -> str:
        text = json_text(value)
        if "base64," not in text:
            return text
        scrubbed, count = binary.scrub(text)
        self.tally.binary += count
        return scrubbed

    def result(self, block: Mapping[str, Any], content: Any, is_error: bool = False) -> None:
        if isinstance(content, str) and "base64," not in content:
            text = content  # the common case, without a gatherer of its own
        else:
            sub = _Gather(self.tally, position=self.position)
            sub.content(content)
            text = "\n".join(sub.texts + [m.content for m in sub.results])
        self.results.append(
            Message(
                "tool",
                text,
                tool_call_id=_call_id(block),
                name=_text_or_none(block.get("name")),
                is_error=is_error,
            )
        )

    def binary_part(
        self, kind: str, mime: Any, payload: Any = None, name: Any = None, size: Any = None
    ) -> None:
        """A marker for binary content; a URL that is not data stays readable."""
        mime_text = str(mime) if isinstance(mime, str) and mime else None
        name_text = str(name) if isinstance(name, str) and name else None
        if isinstance(payload, str) and payload.startswith("data:"):
            scrubbed, count = binary.scrub(payload)
            if count:
                self.tally.binary += count
                self.texts.append(scrubbed)
                return
        self.tally.binary += 1
        if isinstance(payload, str) and payload and not binary.looks_binary(payload):
            # A URL or a file id: short, and worth showing as it is.
            reference = payload if len(payload) <= 300 else payload[:300] + "..."
            self.texts.append(binary.marker(kind, mime_text, None, name_text or reference))
            return
        if isinstance(size, (int, float)) and not isinstance(size, bool):
            decoded = int(size)
        elif isinstance(payload, str):
            decoded = binary.decoded_size(payload)
        else:
            decoded = None
        self.texts.append(binary.marker(kind, mime_text, decoded, name_text))

    def content(self, value: Any) -> None:
        """A content value: text, a list of blocks or parts, or one block."""
        if value is None:
            return
        if isinstance(value, str):
            self.text(value)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    # The common part, read here without a handler call.
                    kind = item.get("type")
                    if kind in _PLAIN_TEXT:
                        text = item.get("content")
                        if text is None:
                            text = item.get("text")
                        if isinstance(text, str):
                            self.text(text)
                            continue
                    self.block(item)
                elif isinstance(item, dict):
                    self.block(item)
                elif item is not None:
                    self.text(item if isinstance(item, str) else json_text(item))
        elif isinstance(value, dict):
            if "type" in value or "text" in value or "role" in value:
                self.block(value)
            else:
                self.text(json_text(value))
        else:
            self.text(json_text(value))

    def block(self, block: Mapping[str, Any]) -> None:
        if "role" in block and "type" not in block:
            # A whole message nested in content: what it says counts.
            self.content(block.get("parts", block.get("content")))
            return
        kind = str(block.get("type") or ("text" if "text" in block else "")).lower()
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(self, block)
            return
        # Gemini-style parts name their kind by key, not by "type".
        for key, keyed in _KEYED.items():
            if key in block:
                keyed(self, block[key] if isinstance(block[key], Mapping) else {})
                return
        self.unknown(kind or "untyped", block)

    def unknown(self, kind: str, block: Mapping[str, Any]) -> None:
        """A part of a type not known here: its text if it has any, else a marker."""
        value = _first(block, "text", "content", "value")
        if isinstance(value, str) and value:
            self.text(value)
            return
        if isinstance(value, (list, Mapping)):
            self.content(value)
            return
        self.tally.unknown += 1
        size = len(json_text(block))
        self.texts.append(f"[{kind} part: {binary.size_text(size)}]")


def _text_or_none(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    return text or None


def _text(gather: _Gather, block: Mapping[str, Any]) -> None:
    value = _first(block, "text", "content")
    if isinstance(value, str):
        gather.text(value)
    else:
        gather.content(value)


def _refusal(gather: _Gather, block: Mapping[str, Any]) -> None:
    gather.text(f"[refused] {_first(block, 'refusal', 'text', 'content') or ''}".strip())


def _reasoning(gather: _Gather, block: Mapping[str, Any]) -> None:
    value = _first(block, "content", "thinking", "text", "reasoning", "summary")
    sub = _Gather(gather.tally)
    sub.content(value)
    text = "\n".join(sub.texts)
    if text:
        gather.reasoning.append(text)
    elif block.get("encrypted_content") or block.get("signature"):
        gather.reasoning.append("[reasoning recorded encrypted]")


def _redacted_thinking(gather: _Gather, block: Mapping[str, Any]) -> None:
    data = block.get("data")
    size = binary.size_text(len(data)) if isinstance(data, str) else "unknown size"
    gather.reasoning.append(f"[redacted thinking: {size}]")


def _tool_call(gather: _Gather, block: Mapping[str, Any]) -> None:
    function = block.get("function")
    spec = function if isinstance(function, dict) else block
    arguments = _first(spec, "arguments", "args", "input", "server_tool_call", "action")
    gather.call(block, _first(spec, "name") or block.get("type"), arguments)


def _tool_result(gather: _Gather, block: Mapping[str, Any]) -> None:
    content = _first(
        block,
        "response",
        "result",
        "output",
        "content",
        "server_tool_call_response",
    )
    error = bool(block.get("is_error") or block.get("error"))
    if block.get("status") in ("error", "failed", "incomplete"):
        error = True
    gather.result(block, content, error)


def _blob(gather: _Gather, block: Mapping[str, Any]) -> None:
    mime = _first(block, "mime_type", "media_type", "mimeType")
    kind = binary.kind_of(mime if isinstance(mime, str) else None, block.get("modality"))
    gather.binary_part(kind, mime, _first(block, "content", "data"))


def _file(gather: _Gather, block: Mapping[str, Any]) -> None:
    inner = block.get("file")
    spec = inner if isinstance(inner, dict) else block
    mime = _first(spec, "mime_type", "media_type", "mimeType")
    kind = binary.kind_of(mime if isinstance(mime, str) else None, block.get("modality"))
    payload = _first(spec, "file_data", "data", "content", "file_id", "file_url")
    gather.binary_part(kind, mime, payload, _first(spec, "filename", "name"))


def _uri(gather: _Gather, block: Mapping[str, Any]) -> None:
    mime = _first(block, "mime_type", "media_type")
    kind = binary.kind_of(mime if isinstance(mime, str) else None, block.get("modality"))
    gather.binary_part(kind, mime, _first(block, "uri", "url"))


def _image_url(gather: _Gather, block: Mapping[str, Any]) -> None:
    value = _first(block, "image_url", "url", "file_id")
    if isinstance(value, dict):
        value = _first(value, "url", "file_id")
    gather.binary_part("image", None, value)


def _anthropic_media(kind: str) -> Callable[[_Gather, Mapping[str, Any]], None]:
    def handle(gather: _Gather, block: Mapping[str, Any]) -> None:
        source = block.get("source")
        if isinstance(source, dict):
            mime = source.get("media_type")
            payload = _first(source, "data", "url", "file_id")
            if source.get("type") == "text" and isinstance(payload, str):
                gather.text(payload)  # a text document: readable as it is
                return
            gather.binary_part(
                binary.kind_of(mime if isinstance(mime, str) else None, kind),
                mime,
                payload,
                block.get("title"),
            )
        else:
            _blob(gather, block)

    return handle


def _audio(gather: _Gather, block: Mapping[str, Any]) -> None:
    inner = _first(block, "input_audio", "audio")
    spec = inner if isinstance(inner, dict) else block
    audio_format = spec.get("format")
    mime = f"audio/{audio_format}" if isinstance(audio_format, str) else spec.get("mime_type")
    gather.binary_part("audio", mime, _first(spec, "data", "url", "id"))


def _message_item(gather: _Gather, block: Mapping[str, Any]) -> None:
    """A Responses `message` item nested in a list: its content counts."""
    gather.content(block.get("content"))


def _gemini_call(gather: _Gather, spec: Mapping[str, Any]) -> None:
    gather.call(spec, spec.get("name"), _first(spec, "args", "arguments"))


def _gemini_result(gather: _Gather, spec: Mapping[str, Any]) -> None:
    gather.result(spec, _first(spec, "response", "output"))


def _gemini_data(gather: _Gather, spec: Mapping[str, Any]) -> None:
    mime = _first(spec, "mimeType", "mime_type")
    kind = binary.kind_of(mime if isinstance(mime, str) else None)
    gather.binary_part(kind, mime, spec.get("data"))


def _gemini_file(gather: _Gather, spec: Mapping[str, Any]) -> None:
    mime = _first(spec, "mimeType", "mime_type")
    gather.binary_part(
        binary.kind_of(mime if isinstance(mime, str) else None), mime, spec.get("fileUri")
    )


_Handler = Callable[[_Gather, Mapping[str, Any]], None]

#: Part and block types by their `type`, across OTel, OpenAI (chat and Responses)
#: and Anthropic.
_HANDLERS: dict[str, _Handler] = {
    "text": _text,
    "input_text": _text,
    "output_text": _text,
    "summary_text": _text,
    "refusal": _refusal,
    "reasoning": _reasoning,
    "thinking": _reasoning,
    "redacted_thinking": _redacted_thinking,
    "tool_call": _tool_call,
    "function_call": _tool_call,
    "tool_use": _tool_call,
    "server_tool_call": _tool_call,
    "server_tool_use": _tool_call,
    "custom_tool_call": _tool_call,
    "computer_call": _tool_call,
    "mcp_call": _tool_call,
    "function": _tool_call,
    "tool_call_response": _tool_result,
    "tool_result": _tool_result,
    "function_call_output": _tool_result,
    "server_tool_call_response": _tool_result,
    "custom_tool_call_output": _tool_result,
    "computer_call_output": _tool_result,
    "web_search_tool_result": _tool_result,
    "mcp_tool_result": _tool_result,
    "blob": _blob,
    "binary": _blob,
    "file": _file,
    "input_file": _file,
    "uri": _uri,
    "image-url": _uri,
    "audio-url": _uri,
    "video-url": _uri,
    "document-url": _uri,
    "image_url": _image_url,
    "input_image": _image_url,
    "image": _anthropic_media("image"),
    "document": _anthropic_media("file"),
    "input_audio": _audio,
    "audio": _audio,
    "message": _message_item,
}

_PLAIN_TEXT = frozenset({"text", "input_text", "output_text"})

_KEYED: dict[str, Callable[[_Gather, Mapping[str, Any]], None]] = {
    "functionCall": _gemini_call,
    "function_call": _gemini_call,
    "functionResponse": _gemini_result,
    "function_response": _gemini_result,
    "inlineData": _gemini_data,
    "inline_data": _gemini_data,
    "fileData": _gemini_file,
    "file_data": _gemini_file,
}


def _message_calls(gather: _Gather, message: Mapping[str, Any]) -> None:
    """`tool_calls` at message level (OpenAI chat; LiteLLM beside `parts`), and the
    legacy `function_call`; a call already read from the parts is not added twice."""
    seen = {call.id for call in gather.calls}
    raw = message.get("tool_calls")
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict):
            continue
        call_id = _call_id(item)
        if call_id is not None and call_id in seen:
            continue
        _tool_call(gather, item)
    legacy = message.get("function_call")
    if isinstance(legacy, dict):
        gather.call(
            {"id": f"call_{gather.position}_legacy"},
            legacy.get("name"),
            _first(legacy, "arguments", "args"),
        )


def convert(message: Mapping[str, Any], position: int, tally: Tally) -> list[Message]:
    """One message of any known shape -> tool results first, then the message itself."""
    role = message.get("role")
    if role not in _PLAIN_ROLES:
        role = role_of(message)
    gather = _Gather(tally, position)
    parts = message.get("parts")
    content = message.get("content")
    if isinstance(parts, list):
        gather.content(parts)
        if content not in (None, "", []):
            gather.content(content)
    else:
        gather.content(content)
    if "tool_calls" in message or "function_call" in message:
        _message_calls(gather, message)
    reasoning = _first(message, "reasoning_content", "reasoning", "thinking")
    if reasoning is not None:
        sub = _Gather(tally)
        sub.content(reasoning)
        gather.reasoning.extend(t for t in sub.texts if t)

    text = gather.texts[0] if len(gather.texts) == 1 else "\n".join(gather.texts)
    out = list(gather.results)
    if role == "tool":
        call_id = _text_or_none(message.get("tool_call_id")) or _text_or_none(message.get("id"))
        if text or not out:
            out.append(
                Message(
                    "tool",
                    text,
                    tool_call_id=call_id,
                    name=_text_or_none(message.get("name")),
                    is_error=bool(message.get("is_error")),
                )
            )
        return out
    if text or gather.calls or gather.reasoning or not out:
        out.append(
            Message(
                role,
                text,
                tool_calls=tuple(gather.calls),
                reasoning="\n".join(r for r in gather.reasoning if r) or None,
            )
        )
    return out


def text_of(value: Any, tally: Tally | None = None) -> str:
    """Readable text of a content value: a string, blocks or parts, or anything JSON."""
    gather = _Gather(tally or Tally())
    gather.content(value)
    lines = list(gather.texts)
    lines.extend(f"[tool call {c.name} {c.arguments}]" for c in gather.calls)
    lines.extend(m.content for m in gather.results)
    return "\n".join(t for t in lines if t)


_CALL_TYPES = frozenset(k for k, v in _HANDLERS.items() if v is _tool_call)
_TEXT_TYPES = frozenset(k for k, v in _HANDLERS.items() if v is _text)


def signature(raw: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What a call's output messages (JSON text) produced, read without converting them:
    the ids of its tool calls, and the text of each assistant message (stripped; empty
    ones left out). Ids that are not recorded are left out too. (Kept lean: every call
    of every trace passes here.)"""
    try:
        value: Any = orjson.loads(raw) if raw else []
    except orjson.JSONDecodeError:
        text = raw.strip()
        return (), (text,) if text else ()
    ids: list[str] = []
    texts: list[str] = []
    call_types, text_types = _CALL_TYPES, _TEXT_TYPES
    for message in value if isinstance(value, list) else (value,):
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        blocks = message.get("parts")
        if blocks.__class__ is not list:
            blocks = content if content.__class__ is list else ()
        pieces = [content] if content.__class__ is str else []
        for block in blocks:
            if block.__class__ is not dict:
                continue
            kind = block.get("type")
            if kind in text_types or (kind is None and "text" in block):
                piece = block.get("content")
                if piece is None:
                    piece = block.get("text")
                if piece.__class__ is str:
                    pieces.append(piece)
            elif kind in call_types:
                call_id = _call_id(block)
                if call_id:
                    ids.append(call_id)
        calls = message.get("tool_calls")
        if calls.__class__ is list:
            for call in calls:
                if call.__class__ is dict:
                    call_id = _call_id(call)
                    if call_id:
                        ids.append(call_id)
        role = message.get("role")
        if role is None or role == "assistant" or role_of(message) == "assistant":
            text = "\n".join(p for p in pieces if p).strip()
            if text:
                texts.append(text)
    return tuple(dict.fromkeys(ids)), tuple(texts)
