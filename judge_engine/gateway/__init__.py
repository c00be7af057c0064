"""The gateway stage: OpenAI-compatible endpoints behind rate limits.

In: request bodies with their estimated tokens. Out: replies, or errors saying
whether to ask again. See `transport` (the protocol the engine uses), `client` (the
live HTTP endpoint, one transport), `limits` (rpm, tpm, in-flight) and `hints` (what
the server says about waiting).
"""

from .client import (
    DEFAULT_BASE_URL,
    Gateway,
    GatewayError,
    GatewayStats,
    Reply,
    endpoint_url,
    safe_url,
)
from .hints import RateInfo, retry_after
from .transport import Transport

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
