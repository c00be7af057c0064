"""The wire: one judge request as each provider's protocol takes it, and its reply read
back into one shape.

In: the judge request as the prompt stage makes it (an OpenAI chat-completions body:
model, temperature, structured output, a system and a user message), the judge's
provider and model, and its request `Profile`. Out: the request's URL, headers and
body bytes (`Wire`); and from a reply's JSON a `Completion` (the text that holds the
verdict, the judge's reasoning, a refusal, the finish reason, usage, the served model
and the provider's request id).

- `openai_chat`: OpenAI's chat completions, as OpenAI, Azure (both URL styles), Gemini's
  OpenAI-compatible endpoint, vLLM, Ollama, OpenRouter, LiteLLM... take them, shaped by
  the profile (no `temperature` and `max_completion_tokens` for reasoning models,
  `reasoning_effort`, JSON mode where a JSON Schema is refused). A reply's reasoning
  comes from `reasoning_content`/`reasoning` or a leading `<think>...</think>`, never
  from where the verdict is read.
- `anthropic_messages`: Anthropic's native Messages API (`POST /v1/messages`): `system`
  at the top level, the user turn, `max_tokens` (required), `x-api-key` and
  `anthropic-version`; the verdict as a forced call of a `verdict` tool whose
  `input_schema` is the verdict's JSON Schema, read from the `tool_use` block.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson

from .providers import Judge

#: Output tokens asked of a provider that requires the number (Anthropic) when the
#: run names none: a verdict needs far fewer.
DEFAULT_MAX_OUTPUT = 1024
#: A leading block of a reasoning model's thinking, before the answer.
_THINK = re.compile(r"^\s*<think>(.*?)</think>\s*", re.S)
#: The tool that carries the verdict in Anthropic's protocol.
VERDICT_TOOL = "verdict"


@dataclass
class Profile:
    """How one judge is asked: what its request carries. Made from the model's family
    (`profiles.profile_for`) and adjusted at run time when the provider refuses a
    parameter (`profiles.learn`)."""

    #: "chat" (as the model takes chat completions), "reasoning" (OpenAI's o-series
    #: and gpt-5: no temperature, max_completion_tokens), "anthropic".
    family: str = "chat"
    #: Whether the request carries `temperature` (a reasoning model takes only the
    #: default); and `top_p` is never sent.
    temperature: bool = True
    #: The name of the output-token limit: max_tokens, max_completion_tokens.
    tokens_field: str = "max_tokens"
    #: `reasoning_effort` to send (None: the provider's default).
    reasoning_effort: str | None = None
    #: How the verdict's shape is asked: "json_schema" (strict structured output),
    #: "json_object" (JSON mode, the schema in the prompt), "tool" (Anthropic).
    structured: str = "json_schema"
    #: Parameters dropped because the provider refused them.
    dropped: set[str] = field(default_factory=set)
    #: What was adjusted at run time, in words (for run.json and the summary).
    adjustments: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Wire:
    """A request ready for the wire."""

    url: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Completion:
    """A reply read back, whatever the protocol."""

    #: The text that holds the verdict (a tool call's input as JSON, for Anthropic).
    content: str
    finish_reason: str | None
    usage: dict[str, int]
    served_model: str | None
    #: What the judge thought before answering, when the reply carries it apart.
    reasoning: str | None = None
    #: The provider's refusal text (OpenAI's `message.refusal`, Anthropic's `refusal`).
    refusal: str | None = None
    request_id: str | None = None


def request_url(judge: Judge) -> str:
    """Where a judge's requests go."""
    base = judge.base_url.rstrip("/")
    provider = judge.provider
    if provider.protocol == "anthropic_messages":
        return base + ("/messages" if not base.endswith("/messages") else "")
    if provider.name == "azure" and provider.api_version:
        deployment = quote(judge.model, safe="")
        return (
            f"{base}/deployments/{deployment}/chat/completions?api-version={provider.api_version}"
        )
    return base if base.endswith("/chat/completions") else base + "/chat/completions"


def auth_headers(judge: Judge, key: str | None) -> dict[str, str]:
    """The headers that carry a judge's key, version and the provider's own."""
    provider = judge.provider
    headers = dict(provider.headers)
    if key:
        if provider.auth == "bearer":
            headers["Authorization"] = f"Bearer {key}"
        elif provider.auth == "api-key":
            headers["api-key"] = key
        elif provider.auth == "x-api-key":
            headers["x-api-key"] = key
    if provider.protocol == "anthropic_messages":
        headers["anthropic-version"] = provider.api_version or "2023-06-01"
    return headers


def encode(
    body: Mapping[str, Any], judge: Judge, profile: Profile, max_output: int | None
) -> bytes:
    """The request body for the judge's protocol, shaped by its profile."""
    if judge.provider.protocol == "anthropic_messages":
        return orjson.dumps(_anthropic(body, judge.model, profile, max_output))
    return orjson.dumps(_openai(body, judge.model, profile, max_output))


def _openai(
    body: Mapping[str, Any], model: str, profile: Profile, max_output: int | None
) -> dict[str, Any]:
    out: dict[str, Any] = {"model": model, "messages": body["messages"]}
    if profile.temperature and "temperature" not in profile.dropped:
        out["temperature"] = body.get("temperature", 0.0)
    if profile.structured == "json_object":
        out["response_format"] = {"type": "json_object"}
    elif "response_format" not in profile.dropped:
        out["response_format"] = body["response_format"]
    if max_output is not None and profile.tokens_field not in profile.dropped:
        out[profile.tokens_field] = max_output
    if profile.reasoning_effort and "reasoning_effort" not in profile.dropped:
        out["reasoning_effort"] = profile.reasoning_effort
    return out


def _anthropic(
    body: Mapping[str, Any], model: str, profile: Profile, max_output: int | None
) -> dict[str, Any]:
    messages = body["messages"]
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    turns = [
        {"role": m["role"], "content": m["content"]} for m in messages if m["role"] != "system"
    ]
    schema = body["response_format"]["json_schema"]["schema"]
    out: dict[str, Any] = {
        "model": model,
        "max_tokens": max_output or DEFAULT_MAX_OUTPUT,
        "system": system,
        "messages": turns,
        "tools": [
            {
                "name": VERDICT_TOOL,
                "description": "Record the verdict on the session, in the shape the system "
                "message gives.",
                "input_schema": schema,
            }
        ],
        "tool_choice": {"type": "tool", "name": VERDICT_TOOL},
    }
    if profile.temperature and "temperature" not in profile.dropped:
        # Anthropic takes 0 to 1; the run's scale goes to 2.
        out["temperature"] = min(1.0, float(body.get("temperature", 0.0)))
    return out


class BadCompletion(ValueError):
    """A reply that is no completion of its protocol (no choices, no content)."""


def decode(data: Mapping[str, Any], protocol: str) -> Completion:
    """A reply's JSON read back (`BadCompletion` when it is no completion)."""
    if protocol == "anthropic_messages":
        return _anthropic_reply(data)
    return _openai_reply(data)


def _usage_int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _openai_reply(data: Mapping[str, Any]) -> Completion:
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        raise BadCompletion("the reply has no choices")
    choice = choices[0]
    message = choice.get("message")
    message = message if isinstance(message, Mapping) else {}
    content = message.get("content")
    if isinstance(content, list):  # content blocks
        content = "".join(str(b.get("text", "")) for b in content if isinstance(b, Mapping))
    if content is not None and not isinstance(content, str):
        raise BadCompletion("the reply's content is not text")
    text = content or ""
    reasoning = next(
        (
            message[k]
            for k in ("reasoning_content", "reasoning")
            if isinstance(message.get(k), str) and message[k].strip()
        ),
        None,
    )
    thought = _THINK.match(text)
    if thought is not None:  # a reasoning model's thinking, ahead of the answer
        reasoning = (reasoning + "\n" if reasoning else "") + thought.group(1).strip()
        text = text[thought.end() :]
    refusal = message.get("refusal")
    usage: dict[str, int] = {}
    raw_usage = data.get("usage")
    if isinstance(raw_usage, Mapping):
        for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
            value = _usage_int(raw_usage.get(key))
            if value is not None:
                usage[key] = value
        details = raw_usage.get("completion_tokens_details")
        if isinstance(details, Mapping):
            value = _usage_int(details.get("reasoning_tokens"))
            if value:
                usage["reasoning_tokens"] = value
    served = data.get("model")
    reason = choice.get("finish_reason")
    request_id = data.get("id")
    return Completion(
        text,
        reason if isinstance(reason, str) else None,
        usage,
        served if isinstance(served, str) and served else None,
        reasoning,
        refusal if isinstance(refusal, str) and refusal.strip() else None,
        request_id if isinstance(request_id, str) else None,
    )


#: Anthropic's stop reasons, as the engine names finish reasons.
_STOPS = {"max_tokens": "length", "end_turn": "stop", "tool_use": "stop", "refusal": "refusal"}


def _anthropic_reply(data: Mapping[str, Any]) -> Completion:
    blocks = data.get("content")
    if data.get("type") != "message" or not isinstance(blocks, list):
        raise BadCompletion("the reply is no Anthropic message")
    text_parts: list[str] = []
    thinking: list[str] = []
    verdict: str | None = None
    for block in blocks:
        if not isinstance(block, Mapping):
            continue
        kind = block.get("type")
        if kind == "tool_use" and block.get("name") == VERDICT_TOOL and verdict is None:
            payload = block.get("input")
            verdict = orjson.dumps(payload).decode() if isinstance(payload, Mapping) else ""
        elif kind == "text" and isinstance(block.get("text"), str):
            text_parts.append(block["text"])
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            thinking.append(block["thinking"])
    stop = data.get("stop_reason")
    usage: dict[str, int] = {}
    raw_usage = data.get("usage")
    if isinstance(raw_usage, Mapping):
        prompt = sum(
            _usage_int(raw_usage.get(k)) or 0
            for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        )
        output = _usage_int(raw_usage.get("output_tokens")) or 0
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": output,
            "total_tokens": prompt + output,
        }
        for key in ("cache_creation_input_tokens", "cache_read_input_tokens"):
            value = _usage_int(raw_usage.get(key))
            if value:
                usage[key] = value
    text = verdict if verdict is not None else "".join(text_parts)
    refusal = "".join(text_parts) or "refused" if stop == "refusal" else None
    served = data.get("model")
    request_id = data.get("id")
    return Completion(
        text,
        _STOPS.get(stop, stop) if isinstance(stop, str) else None,
        usage,
        served if isinstance(served, str) and served else None,
        "\n".join(thinking)
        or ("".join(text_parts) if verdict is not None and text_parts else None),
        refusal,
        request_id if isinstance(request_id, str) else None,
    )


__all__ = [
    "DEFAULT_MAX_OUTPUT",
    "VERDICT_TOOL",
    "BadCompletion",
    "Completion",
    "Profile",
    "Wire",
    "auth_headers",
    "decode",
    "encode",
    "request_url",
]
