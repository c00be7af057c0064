"""The gateway stage: OpenAI-compatible endpoints behind rate limits.

In: request bodies with their estimated tokens. Out: replies, or errors saying
whether to ask again. See `transport` (the protocol the engine uses), `client` (the
live HTTP endpoint, one transport), `limits` (rpm, tpm, in-flight) and `hints` (what
the server says about waiting).

The names below load their module when first used: what only plans and renders (the
worker processes, configuration) imports `urls`, `errors` or `protocols` and never
the HTTP client (aiohttp and its TLS set-up are a third of a second at start-up).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import GatewayError
from .urls import DEFAULT_BASE_URL, endpoint_url, safe_url

if TYPE_CHECKING:
    from .client import Gateway, GatewayStats, Reply
    from .hints import RateInfo, retry_after
    from .transport import Transport

#: Each name loaded on first use, and the module that defines it.
_LAZY = {
    "Gateway": "client",
    "GatewayStats": "client",
    "Reply": "client",
    "RateInfo": "hints",
    "retry_after": "hints",
    "Transport": "transport",
}

__all__ = [
    "DEFAULT_BASE_URL",
    "Gateway",
    "GatewayError",
    "GatewayStats",
    "RateInfo",
    "Reply",
    "Transport",
    "endpoint_url",
    "retry_after",
    "safe_url",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
