"""What a gateway's reply says about waiting: retry hints and rate-limit headers.

In: response headers (and an error body's text). Out: seconds to wait before asking
again, and a `RateInfo` with the limits and remaining budget the server announced.

Understood: `Retry-After` (seconds or HTTP date), `retry-after-ms`, the OpenAI
`x-ratelimit-{limit,remaining,reset}-{requests,tokens}` family (durations such as
`1s`, `6m0s`, `20ms`), the IETF draft `ratelimit-reset`, `x-ratelimit-reset` (seconds or
an epoch), Anthropic's `anthropic-ratelimit-*-reset` (RFC 3339), LiteLLM's
`llm_provider-retry-after`, and OpenAI's "Please try again in 1.5s" error text.

A server's words are hints, never orders: no value can stall, crash or overflow a run.
A wait is at most `MAX_HINT_S` however long the server asks (`99999999`, `24h0m0s`,
`inf`, a date in the year 9999); a limit that is not a finite positive number of a
sane size (`inf`, `1e999`, `-5`, `banana`) is not a limit at all.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_TRY_AGAIN = re.compile(r"try again in (\d+(?:\.\d+)?)\s*(ms|s|seconds?|m|minutes?)\b", re.I)
#: Never wait longer than this for one hint (a broken header must not stall a run):
#: after it, one request probes, and a server that still refuses says so again.
MAX_HINT_S = 60.0
#: A limit above this is not believed (no gateway counts a billion requests a minute).
_MAX_LIMIT = 10**9


def parse_duration(value: str, now: float | None = None) -> float | None:
    """Seconds from `1.5`, `20ms`, `6m0s`, `1h2m3s`, an epoch, or a date."""
    text = value.strip()[:200]
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if math.isnan(number):
            return None
        if math.isinf(number):
            return MAX_HINT_S if number > 0 else 0.0
        if number > 1e9:  # an epoch timestamp, not a duration
            return max(0.0, number - (now if now is not None else time.time()))
        return max(0.0, number)
    parts = _DURATION.findall(text)
    if parts and "".join(n + u for n, u in parts) == text.replace(" ", ""):
        scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
        return sum(float(n) * scale[u] for n, u in parts)
    moment: datetime | None
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, OverflowError, IndexError):
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except (ValueError, OverflowError):
            return None
    if moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - (now if now is not None else time.time()))


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def retry_after(
    headers: Mapping[str, str], body: str = "", now: float | None = None
) -> float | None:
    """How long the server asks us to wait before the next request, if it says."""
    h = _lower(headers)
    if "retry-after-ms" in h:
        try:
            millis = float(h["retry-after-ms"][:50])
        except ValueError:
            millis = math.nan
        if not math.isnan(millis):
            return min(MAX_HINT_S, max(0.0, millis / 1000))
    for name in (
        "retry-after",
        "x-retry-after",
        "llm_provider-retry-after",
        "ratelimit-reset",
        "x-ratelimit-reset-after",
        "x-ratelimit-reset",
    ):
        if name in h:
            seconds = parse_duration(h[name], now)
            if seconds is not None:
                return min(MAX_HINT_S, seconds)
    # Reset headers of an exhausted budget say when it refills.
    waits = []
    for kind in ("requests", "tokens"):
        if h.get(f"x-ratelimit-remaining-{kind}", "").strip() in ("0", "0.0"):
            seconds = parse_duration(h.get(f"x-ratelimit-reset-{kind}", ""), now)
            if seconds is not None:
                waits.append(seconds)
        anthropic = h.get(f"anthropic-ratelimit-{kind}-reset")
        if anthropic and h.get(f"anthropic-ratelimit-{kind}-remaining", "").strip() == "0":
            seconds = parse_duration(anthropic, now)
            if seconds is not None:
                waits.append(seconds)
    if waits:
        return min(MAX_HINT_S, max(waits))
    match = _TRY_AGAIN.search(body)
    if match:
        amount, unit = float(match.group(1)), match.group(2).lower()
        scale = 0.001 if unit == "ms" else 60.0 if unit.startswith("m") else 1.0
        return min(MAX_HINT_S, amount * scale)
    return None


@dataclass(frozen=True, slots=True)
class RateInfo:
    """The limits and remaining budget a reply's headers announce (None: not said)."""

    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests_s: float | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_tokens_s: float | None = None


def _int(value: str | None) -> int | None:
    """A count a header announces, if it is a finite, non-negative, believable number."""
    if value is None:
        return None
    try:
        number = float(value[:50])
    except ValueError:
        return None
    if not math.isfinite(number) or number < 0 or number > _MAX_LIMIT:
        return None
    return int(number)


def rate_info(headers: Mapping[str, str], now: float | None = None) -> RateInfo:
    """The limits a reply announces: OpenAI's `x-ratelimit-*` family, else Anthropic's
    `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}` (reset as RFC 3339)."""
    h = _lower(headers)

    def pick(kind: str, what: str) -> str | None:
        return h.get(f"x-ratelimit-{what}-{kind}") or h.get(f"anthropic-ratelimit-{kind}-{what}")

    def reset(kind: str) -> float | None:
        value = pick(kind, "reset")
        seconds = parse_duration(value, now) if value else None
        return min(MAX_HINT_S, seconds) if seconds is not None else None

    return RateInfo(
        limit_requests=_int(pick("requests", "limit")),
        remaining_requests=_int(pick("requests", "remaining")),
        reset_requests_s=reset("requests"),
        limit_tokens=_int(pick("tokens", "limit")),
        remaining_tokens=_int(pick("tokens", "remaining")),
        reset_tokens_s=reset("tokens"),
    )
