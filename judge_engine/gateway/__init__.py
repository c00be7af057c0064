"""The gateway stage: OpenAI-compatible endpoints behind rate limits.

In: request bodies with their estimated tokens. Out: replies, or errors saying
whether to ask again. See `client` (the endpoint), `limits` (rpm, tpm, in-flight)
and `hints` (what the server says about waiting).
"""

from .client import DEFAULT_BASE_URL, Gateway, GatewayError, GatewayStats, Reply, safe_url
from .hints import RateInfo, retry_after

__all__ = [
    "DEFAULT_BASE_URL",
    "Gateway",
    "GatewayError",
    "GatewayStats",
    "RateInfo",
    "Reply",
    "retry_after",
    "safe_url",
]
