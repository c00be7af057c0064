"""The simulator's provider modes: each refuses what its provider documents it refuses,
with that provider's error shapes and headers, and answers in its reply shape.

In: a request as it reaches the simulator (path, headers, JSON body) and the mode
(`SimConfig.provider`). Out: either a refusal (status, body) or the reply shaped for the
mode. The verdict itself is the simulator's (`sim.verdict_for`).

Modes, from the providers' own documentation:
- `openai`: chat completions. Every model: unknown top-level parameters refused
  ("Unrecognized request argument supplied"); a strict `json_schema` must have
  `additionalProperties: false` and every property required. Reasoning models (o1, o3,
  o4-mini, gpt-5...): `temperature`/`top_p` other than 1 refused (`unsupported_value`),
  `max_tokens` refused (`unsupported_parameter`: "use 'max_completion_tokens'"),
  `reasoning_effort` taken; chat models refuse `reasoning_effort`. Usage carries
  `completion_tokens_details.reasoning_tokens`.
- `azure`: OpenAI's rules, at `/openai/deployments/{deployment}/chat/completions`
  (`api-version` required) or `/openai/v1/chat/completions`; the `api-key` header; the
  reply names the deployment's model, not the deployment; a session with the trigger
  `FILTER-ME` is refused by the content filter (400 `content_filter`).
- `gemini`: at `/v1beta/openai/chat/completions` with a bearer key; errors in Gemini's
  list shape (`[{"error": {"code", "message", "status"}}]`); `reasoning_effort` taken.
- `vllm-reasoning`: OpenAI's shape, the model's thinking in `reasoning_content`;
  `ollama-thinking`: the thinking as a leading `<think>...</think>` in the content.
- `anthropic`: the Messages API at `/v1/messages`: `x-api-key` and `anthropic-version`
  required; `model`, `max_tokens` and `messages` required, no other top-level field but
  the documented ones (`response_format` is refused: "Extra inputs are not
  permitted"); turns alternate from the user's; `temperature` within [0, 1]; a
  `tool_choice` of a tool must name a tool given; the verdict comes back as that tool's
  `tool_use` input, `stop_reason` `tool_use`, usage with cache tokens, `request-id` and
  `anthropic-ratelimit-*` headers; errors as `{"type": "error", "error": {...}}`.

Every mode: a session holding `REFUSE-ME` is refused by the model (OpenAI's
`message.refusal`, Anthropic's `stop_reason` `refusal`), and an output budget under 40
tokens cuts the verdict (`finish_reason` `length`, `max_tokens`).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any

import orjson

MODES = ("openai", "azure", "gemini", "vllm-reasoning", "ollama-thinking", "anthropic")
#: Local servers that take requests without a key unless started with one.
KEYLESS = frozenset({"vllm-reasoning", "ollama-thinking"})
#: Triggers a test puts in a session: the model refuses it; a content filter stops it.
REFUSE = "REFUSE-ME"
FILTER = "FILTER-ME"
#: A verdict a thinking model drafts before its answer (never the answer).
DRAFT = '{"success": 0, "confidence": "high", "reasoning": "a first guess"}'
#: Below this output budget the verdict does not fit: it is cut.
CUT_BELOW = 40

_REASONING = re.compile(r"^(?:o1|o3|o4|gpt-5)(?:$|[-.])")
#: Chat completions' documented request fields.
OPENAI_FIELDS = frozenset(
    {
        "model", "messages", "temperature", "top_p", "n", "stream", "stream_options", "stop",
        "max_tokens", "max_completion_tokens", "presence_penalty", "frequency_penalty",
        "logit_bias", "logprobs", "top_logprobs", "user", "response_format", "seed", "tools",
        "tool_choice", "parallel_tool_calls", "store", "metadata", "service_tier",
        "reasoning_effort", "modalities", "prediction", "audio", "verbosity",
        "web_search_options", "safety_identifier", "prompt_cache_key",
    }
)  # fmt: skip
#: The Messages API's documented request fields.
ANTHROPIC_FIELDS = frozenset(
    {
        "model", "messages", "max_tokens", "system", "temperature", "top_p", "top_k",
        "stop_sequences", "stream", "metadata", "tools", "tool_choice", "thinking",
        "service_tier", "container", "mcp_servers", "output_config",
    }
)  # fmt: skip
#: Structured outputs (a JSON Schema the reply's text follows): `output_format` under
#: the beta header `anthropic-beta: structured-outputs-2025-11-13`, `output_config`'s
#: `format` in the API as released.
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


class Refusal(Exception):
    """A request the provider refuses: its status and body (and headers)."""

    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(str(body)[:200])
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


def is_reasoning(model: str) -> bool:
    return bool(_REASONING.match(model.rsplit("/", 1)[-1].lower()))


def openai_error(
    status: int, message: str, *, param: str | None = None, code: str | None = None,
    kind: str = "invalid_request_error",
) -> Refusal:  # fmt: skip
    return Refusal(
        status, {"error": {"message": message, "type": kind, "param": param, "code": code}}
    )


def gemini_error(status: int, message: str, state: str = "INVALID_ARGUMENT") -> Refusal:
    return Refusal(status, [{"error": {"code": status, "message": message, "status": state}}])


def anthropic_error(status: int, kind: str, message: str) -> Refusal:
    request = f"req_{secrets.token_hex(12)}"
    return Refusal(
        status,
        {"type": "error", "error": {"type": kind, "message": message}, "request_id": request},
        {"request-id": request},
    )


def strict_schema_problem(schema: Any, where: tuple[str, ...] = ()) -> str | None:
    """OpenAI's rules for a strict JSON Schema: every object with
    `additionalProperties: false` and every property required."""
    if not isinstance(schema, Mapping):
        return None
    if schema.get("type") == "object" or "properties" in schema:
        properties = schema.get("properties") or {}
        context = f"context=({', '.join(repr(w) for w in where)})"
        if schema.get("additionalProperties") is not False:
            return (
                f"In {context}, 'additionalProperties' is required to be supplied and to be false."
            )
        required = schema.get("required")
        missing = [p for p in properties if not isinstance(required, list) or p not in required]
        if missing:
            return (
                f"In {context}, 'required' is required to be supplied and to be an array "
                f"including every key in properties. Missing '{missing[0]}'."
            )
        for name, child in properties.items():
            problem = strict_schema_problem(child, (*where, "properties", name))
            if problem:
                return problem
    items = schema.get("items")
    if items is not None:
        return strict_schema_problem(items, (*where, "items"))
    return None


def check_openai(
    mode: str, body: Mapping[str, Any], reasoning_models: tuple[str, ...] = ()
) -> None:
    """Refuse (raise `Refusal`) what the mode's provider refuses of a chat body
    (`reasoning_models`: served as reasoning models whatever their names say)."""
    error = gemini_error if mode == "gemini" else openai_error
    model = str(body.get("model", ""))
    reasoning = is_reasoning(model) or model in reasoning_models
    unknown = sorted(set(body) - OPENAI_FIELDS)
    if unknown:
        if mode == "gemini":
            raise gemini_error(400, f'Invalid JSON payload received. Unknown name "{unknown[0]}"')
        raise openai_error(400, f"Unrecognized request argument supplied: {unknown[0]}")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise error(400, "'messages' must be a non-empty array")
    for message in messages:
        if not isinstance(message, Mapping) or message.get("role") not in ROLES:
            raise error(400, "Invalid value for 'messages[].role'")
    response_format = body.get("response_format")
    if isinstance(response_format, Mapping) and response_format.get("type") == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
            raise error(400, "Missing required parameter: 'response_format.json_schema.name'.")
        if spec.get("strict") is True and mode != "gemini":
            problem = strict_schema_problem(spec.get("schema"))
            if problem:
                raise openai_error(
                    400,
                    f"Invalid schema for response_format '{spec['name']}': {problem}",
                    param="response_format",
                    code="invalid_json_schema",
                )
    temperature = body.get("temperature")
    if temperature is not None and not (
        isinstance(temperature, (int, float)) and 0 <= temperature <= 2
    ):
        raise error(400, "Invalid 'temperature': must be within [0, 2].")
    if mode in ("openai", "azure") and reasoning:
        if "max_tokens" in body:
            raise openai_error(
                400,
                "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                "'max_completion_tokens' instead.",
                param="max_tokens",
                code="unsupported_parameter",
            )
        for name in ("temperature", "top_p"):
            if name in body and body[name] != 1:
                raise openai_error(
                    400,
                    f"Unsupported value: '{name}' does not support {body[name]} with this "
                    "model. Only the default (1) value is supported.",
                    param=name,
                    code="unsupported_value",
                )
        effort = body.get("reasoning_effort")
        if effort is not None and effort not in ("minimal", "low", "medium", "high"):
            raise openai_error(
                400, f"Invalid value: '{effort}'.", param="reasoning_effort", code="invalid_value"
            )
    elif mode in ("openai", "azure") and "reasoning_effort" in body:
        raise openai_error(
            400,
            "Unsupported parameter: 'reasoning_effort' is not supported with this model.",
            param="reasoning_effort",
            code="unsupported_parameter",
        )


def budget(body: Mapping[str, Any]) -> int | None:
    value = body.get("max_completion_tokens", body.get("max_tokens"))
    return value if isinstance(value, int) else None


def shape_openai(
    mode: str, payload: dict[str, Any], body: Mapping[str, Any], record: str, served: str
) -> dict[str, Any]:
    """The simulator's chat completion, as the mode's provider shapes it."""
    choice = payload["choices"][0]
    message = choice["message"]
    payload["model"] = served
    limit = budget(body)
    if REFUSE in record:
        message["content"] = None
        message["refusal"] = "I can't help with grading this session."
        choice["finish_reason"] = "stop"
        return payload
    if mode == "azure" and FILTER in record:
        message["content"] = None
        choice["finish_reason"] = "content_filter"
        return payload
    if limit is not None and limit < CUT_BELOW and message.get("content"):
        message["content"] = message["content"][: len(message["content"]) // 2]
        choice["finish_reason"] = "length"
    thinking = "Let me look at how the session ended before I decide."
    if mode == "vllm-reasoning":
        message["reasoning_content"] = thinking
    elif mode == "ollama-thinking" and message.get("content"):
        message["content"] = (
            # A draft verdict inside the thinking: a reader that took it for the
            # answer would find two verdicts and no certain one.
            f"<think>\n{thinking} Draft: {DRAFT}\n</think>\n\n" + message["content"]
        )
    if is_reasoning(str(body.get("model", ""))):
        payload["usage"]["completion_tokens_details"] = {"reasoning_tokens": 64}
        payload["usage"]["completion_tokens"] += 64
        payload["usage"]["total_tokens"] += 64
    return payload


def check_anthropic(headers: Mapping[str, str], body: Any, api_key: str | None) -> None:
    """Refuse what the Messages API refuses (the module docstring)."""
    key = headers.get("x-api-key")
    if not key:
        raise anthropic_error(401, "authentication_error", "x-api-key header is required")
    if api_key is not None and key != api_key:
        raise anthropic_error(401, "authentication_error", "invalid x-api-key")
    if not headers.get("anthropic-version"):
        raise anthropic_error(400, "invalid_request_error", "anthropic-version: header is required")
    if not isinstance(body, Mapping):
        raise anthropic_error(400, "invalid_request_error", "the body must be a JSON object")
    beta = headers.get("anthropic-beta", "")
    allowed = ANTHROPIC_FIELDS | ({"output_format"} if "structured-outputs" in beta else set())
    for name in sorted(set(body) - allowed):
        raise anthropic_error(
            400, "invalid_request_error", f"{name}: Extra inputs are not permitted"
        )
    for name in ("model", "max_tokens", "messages"):
        if name not in body:
            raise anthropic_error(400, "invalid_request_error", f"{name}: Field required")
    if not isinstance(body["max_tokens"], int) or body["max_tokens"] < 1:
        raise anthropic_error(400, "invalid_request_error", "max_tokens: must be at least 1")
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        raise anthropic_error(
            400, "invalid_request_error", "messages: at least one message is required"
        )
    expected = "user"
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, Mapping) else None
        if role not in ("user", "assistant"):
            raise anthropic_error(
                400, "invalid_request_error",
                f"messages.{index}.role: Input should be 'user' or 'assistant'",
            )  # fmt: skip
        if role != expected:
            raise anthropic_error(
                400, "invalid_request_error",
                "messages: roles must alternate between \"user\" and \"assistant\", and the "
                "first message must use the \"user\" role",
            )  # fmt: skip
        expected = "assistant" if role == "user" else "user"
    temperature = body.get("temperature")
    if temperature is not None and not (
        isinstance(temperature, (int, float)) and 0 <= temperature <= 1
    ):
        raise anthropic_error(
            400, "invalid_request_error", "temperature: Input should be less than or equal to 1"
        )
    tools = body.get("tools") or []
    names = {t.get("name") for t in tools if isinstance(t, Mapping)}
    for tool in tools:
        if not isinstance(tool, Mapping) or not isinstance(tool.get("input_schema"), Mapping):
            raise anthropic_error(
                400, "invalid_request_error", "tools.0.input_schema: Field required"
            )
    spec = _output_schema(body)
    if spec is not None and not isinstance(spec.get("schema"), Mapping):
        raise anthropic_error(400, "invalid_request_error", "output_format.schema: Field required")
    choice = body.get("tool_choice")
    if (
        isinstance(choice, Mapping)
        and choice.get("type") == "tool"
        and choice.get("name") not in names
    ):
        raise anthropic_error(
            400, "invalid_request_error",
            f"tool_choice: Tool '{choice.get('name')}' not found in provided tools",
        )  # fmt: skip


def _output_schema(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The structured-output format a Messages request asks for, if any."""
    spec = body.get("output_format")
    if spec is None and isinstance(body.get("output_config"), Mapping):
        spec = body["output_config"].get("format")
    return spec if isinstance(spec, Mapping) else None


def anthropic_reply(
    verdict: Mapping[str, Any], body: Mapping[str, Any], record: str, input_tokens: int
) -> dict[str, Any]:
    """The verdict as the Messages API answers a forced tool call."""
    model = str(body["model"])
    tool_forced = isinstance(body.get("tool_choice"), Mapping)
    content: list[dict[str, Any]]
    stop = "tool_use" if tool_forced else "end_turn"
    if REFUSE in record:
        content, stop = [{"type": "text", "text": "I can't help with grading this."}], "refusal"
    elif body["max_tokens"] < CUT_BELOW:
        text = orjson.dumps(verdict).decode()
        content, stop = [{"type": "text", "text": text[: len(text) // 2]}], "max_tokens"
    elif _output_schema(body) is not None and not tool_forced:
        content, stop = [{"type": "text", "text": orjson.dumps(verdict).decode()}], "end_turn"
    elif tool_forced:
        content = [
            {
                "type": "tool_use",
                "id": f"toolu_{secrets.token_hex(12)}",
                "name": body["tool_choice"]["name"],
                "input": dict(verdict),
            }
        ]
    else:
        content = [{"type": "text", "text": orjson.dumps(verdict).decode()}]
    return {
        "id": f"msg_{secrets.token_hex(12)}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": 40,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }


__all__ = [
    "FILTER",
    "MODES",
    "REFUSE",
    "Refusal",
    "anthropic_error",
    "anthropic_reply",
    "check_anthropic",
    "check_openai",
    "gemini_error",
    "is_reasoning",
    "openai_error",
    "shape_openai",
    "strict_schema_problem",
]
