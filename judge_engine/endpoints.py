"""A run's judges and the transport that carries their requests.

In: a `Config` (the panel, `--base-url`, `--api-key-env`, `--provider` overrides, the
limits, batch mode), the gateway's key and the environment (each provider's key). Out:
each judge resolved to its provider and endpoint (`resolve_judges`), its key
(`Keys`), its starting request profile, and one `Router` over one transport per
endpoint (`open_transport`): a live `Gateway` with its own limiter, in-flight cap and
breaker per endpoint, or in batch mode the provider's Batch API.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from .config import DEFAULT_CONCURRENCY, Config, ConfigError
from .gateway import Gateway, Transport
from .gateway.anthropic_batch import AnthropicBatchTransport
from .gateway.batch import BatchOptions as BatchSettings
from .gateway.batch import BatchTransport
from .gateway.profiles import profile_for
from .gateway.protocols import Profile, auth_headers, request_url
from .gateway.providers import (
    GATEWAY,
    Judge,
    ProviderError,
    merge_overrides,
    resolve,
    with_overrides,
)
from .gateway.router import Router

#: OUT's record of the latest request's time (one file per endpoint beyond the first),
#: so that --rpm holds across a restart.
PACE_FILE = "last-request"


def resolve_judges(config: Config, environ: Mapping[str, str] | None = None) -> dict[str, Judge]:
    """Every judge and fallback of the panel, resolved (`providers.resolve`)."""
    environ = os.environ if environ is None else environ
    try:
        table = with_overrides(merge_overrides({}, config.gateway.provider))
        return {
            name: resolve(
                name,
                table,
                base_url=config.gateway.base_url,
                api_key_env=config.gateway.api_key_env,
                environ=environ,
            )
            for name in dict.fromkeys((*config.panel.judge, *config.panel.fallback_judge))
        }
    except ProviderError as exc:
        raise ConfigError(str(exc)) from None


@dataclass(frozen=True)
class Keys:
    """Each judge's key: the gateway's (the run's --api-key-env) for judges of the
    gateway, each provider's own variable for the others."""

    by_judge: Mapping[str, str | None]

    @classmethod
    def of(
        cls,
        judges: Mapping[str, Judge],
        api_key: str | None,
        api_key_env: str,
        environ: Mapping[str, str] | None = None,
        *,
        require: bool = True,
    ) -> Keys:
        """The keys; with `require`, a `ConfigError` naming the variable a judge's
        provider needs and the environment lacks."""
        environ = os.environ if environ is None else environ
        keys: dict[str, str | None] = {}
        for name, judge in judges.items():
            provider = judge.provider
            variable = provider.api_key_env
            if variable is None or provider.auth == "none":
                keys[name] = None
                continue
            given = api_key if variable == api_key_env else None
            key = given or environ.get(variable) or None
            if key is None and require and not provider.key_optional and "@" not in judge.base_url:
                raise ConfigError(
                    f"judge {name} ({provider.name}) needs its key: set ${variable} "
                    "(the key is never an option)"
                )
            keys[name] = key
        return cls(keys)

    def values(self) -> list[str]:
        return [k for k in self.by_judge.values() if k]


def profiles(
    config: Config, judges: Mapping[str, Judge], learned: Mapping[str, Mapping[str, object]]
) -> dict[str, Profile]:
    """Each judge's starting profile: its family's, then what an earlier run on OUT
    learned of it (`learned`, from run.json)."""
    out = {}
    for name, judge in judges.items():
        profile = profile_for(judge, reasoning_effort=config.panel.reasoning_effort)
        known = learned.get(name) or {}
        for field_name in ("temperature", "tokens_field", "structured"):
            value = known.get(field_name)
            if isinstance(value, type(getattr(profile, field_name))):
                setattr(profile, field_name, value)
        dropped = known.get("dropped")
        if isinstance(dropped, list):
            profile.dropped.update(str(d) for d in dropped)
        adjustments = known.get("adjustments")
        if isinstance(adjustments, list):
            profile.adjustments.extend(str(a) for a in adjustments)
        out[name] = profile
    return out


def describe(profile: Profile) -> dict[str, object]:
    """A profile as run.json and preview show it."""
    return {
        "family": profile.family,
        "temperature": profile.temperature,
        "tokens_field": profile.tokens_field,
        "reasoning_effort": profile.reasoning_effort,
        "structured": profile.structured,
        "dropped": sorted(profile.dropped),
        "adjustments": list(profile.adjustments),
    }


def _name(judge: Judge) -> str:
    model = f" {judge.model}" if judge.provider.per_model_limits else ""
    return f"{judge.provider.name}{model}"


@contextlib.asynccontextmanager
async def open_transport(
    config: Config, judges: Mapping[str, Judge], keys: Keys, out: Path
) -> AsyncIterator[Transport]:
    """One transport per endpoint, entered for the run, as one `Router`."""
    async with contextlib.AsyncExitStack() as stack:
        by_endpoint: dict[tuple[str, str, str], Transport] = {}
        routes: dict[str, Transport] = {}
        names: dict[int, str] = {}
        batch_endpoints: set[tuple[str, str, str | None]] = set()
        for name, judge in judges.items():
            key = keys.by_judge.get(name)
            endpoint = judge.endpoint
            transport = by_endpoint.get(endpoint)
            if transport is None:
                pace = out / (PACE_FILE if not by_endpoint else _pace_name(endpoint))
                live = _gateway(config, judge, key, pace)
                transport = live
                if config.batch.batch:
                    anthropic = judge.provider.protocol == "anthropic_messages"
                    where = (judge.provider.protocol, judge.base_url, key)
                    if any(w != where and w[0] == where[0] for w in batch_endpoints):
                        raise ConfigError(
                            "--batch takes judges of one endpoint per protocol (one base URL "
                            "and key for OpenAI's, one for Anthropic's): grade the others in "
                            "another OUT"
                        )
                    batch_endpoints.add(where)
                    kind = AnthropicBatchTransport if anthropic else BatchTransport
                    transport = kind(
                        judge.base_url,
                        key,
                        out,
                        BatchSettings(
                            batch_size=config.batch.batch_size, no_wait=config.batch.no_wait
                        ),
                        fallback=live if config.batch.batch_fallback == "live" else None,
                        timeout_s=config.gateway.timeout,
                        auth=auth_headers(judge, key) if anthropic else None,
                    )
                await stack.enter_async_context(transport)  # type: ignore[arg-type,unused-ignore]
                by_endpoint[endpoint] = transport
                names[id(transport)] = _name(judge)
            routes[name] = transport
        yield Router(routes, names)


def _pace_name(endpoint: tuple[str, str, str]) -> str:
    digest = hashlib.blake2b("\x1f".join(endpoint).encode(), digest_size=4).hexdigest()
    return f"{PACE_FILE}-{digest}"


def _gateway(config: Config, judge: Judge, key: str | None, pace: Path) -> Gateway:
    gateway, retry, provider = config.gateway, config.retry, judge.provider
    concurrency = provider.concurrency or gateway.concurrency
    gateway_provider = provider.name == GATEWAY
    return Gateway(
        judge.base_url,
        key,
        timeout_s=gateway.timeout,
        concurrency=concurrency or DEFAULT_CONCURRENCY,
        slow_start=concurrency is None,
        rpm=provider.rpm or gateway.rpm,
        tpm=provider.tpm or gateway.tpm,
        backoff_base_s=retry.backoff_base,
        backoff_cap_s=retry.backoff_cap,
        max_pause_s=retry.max_pause,
        pace_file=pace,
        # The gateway's URL as before (credentials in it become HTTP Basic); a provider's
        # own URL and headers otherwise.
        request_url=None if gateway_provider else request_url(judge),
        auth=None if gateway_provider else auth_headers(judge, key),
    )


__all__ = ["PACE_FILE", "Keys", "describe", "open_transport", "profiles", "resolve_judges"]
