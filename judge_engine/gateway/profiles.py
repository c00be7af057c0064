"""Request profiles: what each judge's requests carry, by model family, and what a
provider's refusal of a parameter teaches at run time.

In: a resolved `Judge` and the run's temperature, output budget and reasoning effort;
later, a 400 that names a parameter the provider refuses. Out: the judge's `Profile`,
and from a refusal the adjustment made (or None when the refusal names no parameter
the profile can change).

By family, from the providers' own documentation:
- OpenAI reasoning models (o1, o3, o4-mini, gpt-5 and later, whoever serves them under
  the OpenAI protocol): `temperature` only at its default (so none is sent),
  `max_completion_tokens` instead of `max_tokens`, `reasoning_effort` when asked for;
- Anthropic (native Messages API): `max_tokens` required, `temperature` within [0, 1]
  under `anthropic-version` 2023-06-01 (the version sent), the verdict by a forced tool;
- every other chat model: `temperature`, `max_tokens`, a strict JSON Schema.

Learning: OpenAI says what it refuses (`code` `unsupported_parameter` or
`unsupported_value`, with `param`); others say it in words ("temperature is not
supported", "use max_completion_tokens"). The judge's profile is adjusted once (the
parameter dropped, `max_tokens` renamed, the default value used, JSON mode instead of a
schema) and the request sent again without counting a retry. A second, different
adjustment of the same parameter is an error, never a loop.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..models import normalize_model
from .errors import GatewayError
from .protocols import Profile
from .providers import Judge

#: OpenAI's reasoning models, by their normalized name.
_REASONING = re.compile(r"^(?:o1|o3|o4|gpt-5)(?:$|[-.])")
#: Efforts `--reasoning-effort` takes (the providers' own words).
EFFORTS = ("minimal", "low", "medium", "high")


class ProfileError(Exception):
    """A provider that refuses what the profile already gave up: not to be adjusted
    again (a loop), a permanent failure of the request."""


def is_reasoning(model: str) -> bool:
    return bool(_REASONING.match(normalize_model(model)))


def profile_for(judge: Judge, *, reasoning_effort: str | None = None) -> Profile:
    """The profile a judge starts with (the module docstring)."""
    if judge.provider.protocol == "anthropic_messages":
        return Profile(family="anthropic", structured="tool")
    if is_reasoning(judge.model):
        return Profile(
            family="reasoning",
            temperature=False,
            tokens_field="max_completion_tokens",
            reasoning_effort=reasoning_effort,
        )
    # Gemini's thinking models take reasoning_effort on its OpenAI-compatible endpoint;
    # other chat models refuse it.
    thinks = normalize_model(judge.model).startswith(("gemini-2-5", "gemini-3"))
    return Profile(family="chat", reasoning_effort=reasoning_effort if thinks else None)


def _refused(error: GatewayError) -> tuple[str | None, str]:
    """The parameter a 400 refuses (by OpenAI's `param`, else by its words), and how:
    "parameter" (unknown or unsupported) or "value" (only another value is)."""
    text = str(error).lower()
    param = (error.param or "").lower() or None
    how = "value" if error.code == "unsupported_value" or "value" in text else "parameter"
    if param is None:
        for name in (
            "max_tokens", "temperature", "reasoning_effort", "top_p", "response_format",
            "json_schema",
        ):  # fmt: skip
            if name in text and any(
                word in text
                for word in ("support", "unknown", "unrecognized", "not allowed", "invalid",
                             "use 'max_completion_tokens'", "deprecated", "extra inputs")
            ):  # fmt: skip
                param = name
                break
    if param == "json_schema" or (param or "").startswith("response_format"):
        param = "response_format"
    return param, how


def _sends(profile: Profile, param: str) -> bool:
    """Whether the profile, as it is now, sends `param`."""
    if param in profile.dropped:
        return False
    if param == "temperature":
        return profile.temperature
    if param in ("max_tokens", "max_completion_tokens"):
        return profile.tokens_field == param
    if param == "response_format":
        return profile.structured == "json_schema"
    return True


def learn(profile: Profile, error: GatewayError, sent: Mapping[str, Any]) -> str | None:
    """Adjust `profile` for a 400 that refuses one of its parameters, given the body
    that was `sent`. Returns what changed, in words; "" when the profile no longer
    sends what was refused (another request taught it meanwhile: send again); None
    when the refusal is of nothing the profile can change. `ProfileError` when the
    provider refuses what an adjustment already gave (no loop)."""
    if error.status != 400:
        return None
    param, how = _refused(error)
    if param is None:
        return None
    if param == "response_format":
        kind = sent.get("response_format")
        if isinstance(kind, Mapping) and kind.get("type") != "json_schema":
            raise ProfileError(f"the provider refuses JSON mode too: {error}")
    elif param not in sent:
        return None  # it names something this request did not carry
    if not _sends(profile, param):
        return ""  # adjusted meanwhile by another request's refusal: send again
    group = "tokens" if param in ("max_tokens", "max_completion_tokens") else param
    if any(a.startswith(f"{group}:") for a in profile.adjustments):
        raise ProfileError(
            f"the provider still refuses {param} after it was adjusted "
            f"({'; '.join(profile.adjustments)}): {error}"
        )
    if param == "max_tokens" and "max_completion_tokens" in str(error).lower():
        profile.tokens_field = "max_completion_tokens"
        change = "tokens: max_tokens sent as max_completion_tokens"
    elif param == "max_completion_tokens":
        profile.tokens_field = "max_tokens"
        change = "tokens: max_completion_tokens sent as max_tokens"
    elif param == "temperature":
        profile.temperature = False
        change = "temperature: not sent (only the default " + (
            "value is supported)" if how == "value" else "is supported)"
        )
    elif param == "response_format":
        profile.structured = "json_object"
        change = "response_format: JSON mode (json_object) instead of a JSON Schema"
    elif param in ("reasoning_effort", "top_p", "max_tokens"):
        profile.dropped.add(param)
        change = f"{group}: {param} not sent (refused)"
    else:
        return None
    profile.adjustments.append(change)
    return change


__all__ = ["EFFORTS", "ProfileError", "is_reasoning", "learn", "profile_for"]
