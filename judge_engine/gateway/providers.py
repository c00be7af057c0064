"""Providers: who serves a judge, where, with which key, protocol and limits.

In: a judge as the user names it (`anthropic/claude-sonnet-4-5`, `openai:gpt-4.1`,
`vllm/Qwen/Qwen3-32B`, or a bare `gpt-4.1`), the run's `--base-url` and key variable,
and overrides from the config file's `[providers.NAME]` tables or `--provider
NAME.KEY=VALUE`. Out: a `Judge`: the provider's record, the model name to send, the
endpoint's URL, the variable holding its key, and how the provider was chosen.

A judge named `PROVIDER/MODEL` or `PROVIDER:MODEL` with a provider of the table goes to
that provider (the model keeps any further slashes: `openrouter/anthropic/claude-...`).
A bare name goes to the gateway of `--base-url` (or `$OPENAI_BASE_URL`) as before: the
`openai-compatible` provider with the run's `--api-key-env`. Without a base URL, a bare
name goes to the vendor its name says (`gpt-*`, `o1`/`o3`/`o4`, `chatgpt-*`: openai;
`claude-*`: anthropic; `gemini-*`: google), and the run says which it chose; any other
bare name goes to OpenAI's URL, as it always did.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Wire protocols a provider speaks (`protocols`).
PROTOCOLS = ("openai_chat", "anthropic_messages")
#: How a provider takes its key.
AUTH_STYLES = ("bearer", "api-key", "x-api-key", "none")


@dataclass(frozen=True)
class Provider:
    """One provider: its endpoint, key, protocol and limits (each overridable)."""

    name: str
    #: The API's base URL (None: it must be given: `base_url_env` or an override).
    base_url: str | None
    #: The environment variable holding the key (None: the provider takes no key).
    api_key_env: str | None
    protocol: str = "openai_chat"
    auth: str = "bearer"
    #: An environment variable that may give the base URL (Azure's endpoint).
    base_url_env: str | None = None
    #: Azure's `api-version` (None: the `/openai/v1/` API); Anthropic's
    #: `anthropic-version`.
    api_version: str | None = None
    #: Extra headers every request carries.
    headers: Mapping[str, str] = field(default_factory=dict)
    #: Limits of this provider's endpoint (None: the run's --rpm/--tpm/--concurrency,
    #: else what the server announces).
    rpm: float | None = None
    tpm: int | None = None
    concurrency: int | None = None
    #: The provider limits each model apart (OpenAI, Azure): one limiter a model.
    per_model_limits: bool = False
    #: The key may be missing (a local server): requests then carry none.
    key_optional: bool = False

    def describe(self) -> str:
        key = f"${self.api_key_env}" if self.api_key_env else "no key"
        return f"{self.name} ({self.protocol}, {key})"


#: The built-in table. URLs and key variables as each provider documents them.
PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in (
        Provider("openai", "https://api.openai.com/v1", "OPENAI_API_KEY", per_model_limits=True),
        Provider(
            "azure", None, "AZURE_OPENAI_API_KEY", auth="api-key",
            base_url_env="AZURE_OPENAI_ENDPOINT", per_model_limits=True,
        ),
        Provider(
            "anthropic", "https://api.anthropic.com/v1", "ANTHROPIC_API_KEY",
            protocol="anthropic_messages", auth="x-api-key", api_version="2023-06-01",
        ),
        Provider(
            "google", "https://generativelanguage.googleapis.com/v1beta/openai",
            "GEMINI_API_KEY",
        ),
        Provider("openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
        Provider("together", "https://api.together.xyz/v1", "TOGETHER_API_KEY"),
        Provider("fireworks", "https://api.fireworks.ai/inference/v1", "FIREWORKS_API_KEY"),
        Provider("groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY"),
        Provider("deepseek", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
        Provider("mistral", "https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
        Provider(
            "vllm", "http://127.0.0.1:8000/v1", "VLLM_API_KEY", base_url_env="VLLM_BASE_URL",
            key_optional=True,
        ),
        Provider(
            "ollama", "http://127.0.0.1:11434/v1", "OLLAMA_API_KEY",
            base_url_env="OLLAMA_BASE_URL", key_optional=True,
        ),
        Provider(
            "litellm", "http://127.0.0.1:4000/v1", "LITELLM_API_KEY",
            base_url_env="LITELLM_BASE_URL",
        ),
        Provider("openai-compatible", None, "OPENAI_API_KEY", base_url_env="OPENAI_BASE_URL"),
    )
}  # fmt: skip
#: The provider of bare names on a gateway (`--base-url`).
GATEWAY = "openai-compatible"
#: Model-name starts that say their vendor, for bare names without a base URL.
_BY_NAME = (
    (("gpt-", "o1", "o3", "o4", "chatgpt-", "codex-"), "openai"),
    (("claude-",), "anthropic"),
    (("gemini-",), "google"),
)
#: The keys `[providers.NAME]` and `--provider NAME.KEY=VALUE` may set.
SETTABLE = (
    "base_url", "api_key_env", "protocol", "auth", "headers", "rpm", "tpm", "concurrency",
    "api_version",
)  # fmt: skip


class ProviderError(ValueError):
    """A provider or judge that cannot be used: one line that says why."""


@dataclass(frozen=True)
class Judge:
    """A judge resolved: who serves it, and where."""

    #: As the user named it (`anthropic/claude-sonnet-4-5`): the journal's judge.
    name: str
    provider: Provider
    #: The model name sent to the provider (`claude-sonnet-4-5`).
    model: str
    #: The API's base URL.
    base_url: str
    #: How the provider was chosen, in words.
    chosen: str

    @property
    def endpoint(self) -> tuple[str, str, str]:
        """What shares a limiter, an in-flight cap and a breaker: the provider and URL,
        and the model where the provider limits each model apart."""
        model = self.model if self.provider.per_model_limits else ""
        return (self.provider.name, self.base_url, model)


def with_overrides(
    overrides: Mapping[str, Mapping[str, Any]], base: Mapping[str, Provider] = PROVIDERS
) -> dict[str, Provider]:
    """The table with `[providers.NAME]` settings applied; a new NAME is a provider of
    its own (it needs a `base_url`)."""
    table = dict(base)
    for name, values in overrides.items():
        unknown = set(values) - set(SETTABLE)
        if unknown:
            raise ProviderError(
                f"[providers.{name}] has unknown key(s) {', '.join(sorted(unknown))}; "
                f"it takes {', '.join(SETTABLE)}"
            )
        current = table.get(name) or Provider(name, None, None)
        changes = dict(values)
        if "headers" in changes:
            headers = changes["headers"]
            if not isinstance(headers, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
            ):
                raise ProviderError(f"[providers.{name}] headers must map names to text")
            changes["headers"] = dict(headers)
        provider = dataclasses.replace(current, **changes)
        _check(provider)
        table[name] = provider
    return table


def _check(provider: Provider) -> None:
    where = f"provider {provider.name}"
    if provider.protocol not in PROTOCOLS:
        raise ProviderError(f"{where}: protocol must be one of {', '.join(PROTOCOLS)}")
    if provider.auth not in AUTH_STYLES:
        raise ProviderError(f"{where}: auth must be one of {', '.join(AUTH_STYLES)}")
    for name in ("rpm", "tpm", "concurrency"):
        value = getattr(provider, name)
        if value is not None and (
            not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0
        ):
            raise ProviderError(f"{where}: {name} must be a positive number, not {value!r}")
    for name in ("base_url", "api_key_env", "api_version", "base_url_env"):
        value = getattr(provider, name)
        if value is not None and not (isinstance(value, str) and value.strip()):
            raise ProviderError(f"{where}: {name} must be text, not {value!r}")


def parse_override(text: str) -> tuple[str, str, Any]:
    """`--provider NAME.KEY=VALUE` -> (name, key, value); numbers for the limits,
    `headers.NAME=VALUE` for one header."""
    target, sep, value = text.partition("=")
    name, dot, key = target.strip().partition(".")
    if not sep or not dot or not name or not key:
        raise ProviderError(f"--provider takes NAME.KEY=VALUE, not {text!r}")
    if key.startswith("headers."):
        return name, "headers", {key[len("headers.") :]: value}
    if key not in SETTABLE:
        raise ProviderError(f"--provider {text!r}: KEY must be one of {', '.join(SETTABLE)}")
    parsed: Any = value
    if key in ("rpm", "tpm", "concurrency"):
        try:
            parsed = float(value) if key == "rpm" else int(value)
        except ValueError:
            raise ProviderError(f"--provider {text!r}: {key} takes a number") from None
    return name, key, parsed


def merge_overrides(
    tables: Mapping[str, Mapping[str, Any]], flags: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """The config file's `[providers.NAME]` tables, then the `--provider` flags over them."""
    merged: dict[str, dict[str, Any]] = {
        name: dict(values) for name, values in tables.items() if isinstance(values, Mapping)
    }
    for text in flags:
        name, key, value = parse_override(text)
        entry = merged.setdefault(name, {})
        if key == "headers":
            entry["headers"] = {**entry.get("headers", {}), **value}
        else:
            entry[key] = value
    return merged


def resolve(
    name: str,
    table: Mapping[str, Provider],
    *,
    base_url: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    environ: Mapping[str, str] | None = None,
) -> Judge:
    """Who serves the judge `name` (the module docstring)."""
    environ = os.environ if environ is None else environ
    for separator in ("/", ":"):
        prefix, sep, rest = name.partition(separator)
        if sep and rest and prefix in table:
            provider = table[prefix]
            if prefix == GATEWAY:
                provider = dataclasses.replace(provider, api_key_env=api_key_env)
            url = _base_url(provider, base_url if prefix == GATEWAY else None, environ)
            return Judge(name, provider, rest, url, f"named with its provider {prefix}")
    gateway = base_url or environ.get("OPENAI_BASE_URL")
    if gateway:
        provider = dataclasses.replace(table[GATEWAY], api_key_env=api_key_env)
        return Judge(name, provider, name, gateway, "a bare name: the gateway of --base-url")
    lowered = name.lower()
    for starts, vendor in _BY_NAME:
        if lowered.startswith(starts) and vendor in table:
            provider = table[vendor]
            url = _base_url(provider, None, environ)
            return Judge(name, provider, name, url, f"a bare name that says its vendor {vendor}")
    provider = dataclasses.replace(table["openai"], api_key_env=api_key_env)
    return Judge(name, provider, name, provider.base_url or "", "a bare name: OpenAI's API")


def _base_url(provider: Provider, given: str | None, environ: Mapping[str, str]) -> str:
    url = given or (environ.get(provider.base_url_env) if provider.base_url_env else None)
    url = url or provider.base_url
    if not url:
        where = f"${provider.base_url_env}" if provider.base_url_env else "--base-url"
        raise ProviderError(
            f"provider {provider.name} has no base URL: set {where} or "
            f"--provider {provider.name}.base_url=URL"
        )
    if provider.name == "azure" and "/openai" not in url:
        # The resource's endpoint: requests go under /openai (deployments or the v1 API).
        url = url.rstrip("/") + ("/openai" if provider.api_version else "/openai/v1")
    return url


__all__ = [
    "GATEWAY",
    "PROTOCOLS",
    "PROVIDERS",
    "SETTABLE",
    "Judge",
    "Provider",
    "ProviderError",
    "merge_overrides",
    "parse_override",
    "resolve",
    "with_overrides",
]
