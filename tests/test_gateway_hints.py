"""Retry hints and rate-limit headers, in every dialect the engine follows."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from judge_engine.gateway.hints import parse_duration, rate_info, retry_after

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1.5", 1.5),
        ("20ms", 0.02),
        ("6m0s", 360.0),
        ("1h2m3.5s", 3723.5),
        ("0s", 0.0),
        (str(NOW + 30), 30.0),
        ("soon", None),
        ("", None),
    ],
)
def test_durations(text: str, seconds: float | None) -> None:
    assert parse_duration(text, NOW) == seconds


def test_retry_after_seconds_and_http_date() -> None:
    assert retry_after({"Retry-After": "7"}) == 7.0
    when = datetime.fromtimestamp(NOW, timezone.utc) + timedelta(seconds=42)
    assert retry_after({"retry-after": format_datetime(when, usegmt=True)}, now=NOW) == 42.0
    assert retry_after({"retry-after-ms": "250"}) == 0.25


def test_reset_headers_of_an_exhausted_budget() -> None:
    headers = {
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "2.5s",
        "x-ratelimit-remaining-tokens": "100",
        "x-ratelimit-reset-tokens": "30s",
    }
    assert retry_after(headers) == 2.5  # tokens are not exhausted: their reset does not count
    headers["x-ratelimit-remaining-tokens"] = "0"
    assert retry_after(headers) == 30.0


def test_non_standard_hints() -> None:
    assert retry_after({"llm_provider-retry-after": "60"}) == 60.0  # LiteLLM
    assert retry_after({"x-ratelimit-reset": str(NOW + 12)}, now=NOW) == 12.0  # epoch
    assert retry_after({"ratelimit-reset": "9"}) == 9.0  # IETF draft
    anthropic = datetime.fromtimestamp(NOW + 5, timezone.utc).isoformat()
    headers = {
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": anthropic,
    }
    assert retry_after(headers, now=NOW) == pytest.approx(5.0)
    body = '{"error": {"message": "Rate limit reached. Please try again in 1.342s. Visit..."}}'
    assert retry_after({}, body) == pytest.approx(1.342)
    assert retry_after({}, "Please try again in 250ms") == 0.25
    assert retry_after({}, "nothing to see") is None


def test_absurd_hints_are_capped() -> None:
    assert retry_after({"Retry-After": "86400"}) == 60.0


@pytest.mark.parametrize(
    "value",
    ["99999999", "24h0m0s", "inf", "1e999", "Fri, 31 Dec 9999 23:59:59 GMT", "9" * 400],
)
def test_no_hint_asks_for_more_than_a_minute(value: str) -> None:
    assert retry_after({"Retry-After": value}) == 60.0
    assert retry_after({"retry-after-ms": value}) in (60.0, None)
    info = rate_info({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": value})
    assert info.reset_requests_s == 60.0
    assert (
        retry_after({"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": value})
        == 60.0
    )


@pytest.mark.parametrize("value", ["inf", "1e999", "-5", "nan", "banana", "", "1e12", "-inf"])
def test_limits_that_are_not_finite_positive_numbers_are_no_limits(value: str) -> None:
    info = rate_info(
        {
            "x-ratelimit-limit-requests": value,
            "x-ratelimit-limit-tokens": value,
            "x-ratelimit-remaining-requests": value,
        }
    )
    assert info.limit_requests is None and info.limit_tokens is None
    assert info.remaining_requests is None
    assert retry_after({"Retry-After": value}) in (None, 0.0, 60.0)


def test_rate_info() -> None:
    info = rate_info(
        {
            "x-ratelimit-limit-requests": "500",
            "x-ratelimit-remaining-requests": "499",
            "x-ratelimit-reset-requests": "120ms",
            "x-ratelimit-limit-tokens": "30000",
        }
    )
    assert (info.limit_requests, info.remaining_requests, info.reset_requests_s) == (500, 499, 0.12)
    assert info.limit_tokens == 30000 and info.remaining_tokens is None
