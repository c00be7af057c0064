"""One OpenAI-compatible chat-completions endpoint, behind its limits.

In: a request body (JSON bytes) and its estimated tokens. Out: a `Reply` (status 200
with a JSON object), or a `GatewayError` saying whether asking again may help.

One pooled aiohttp session serves the endpoint. Every request first waits out any
pause the server asked for, then for a slot under the in-flight cap, then for the rpm
pacer and the tpm window.

One rule for every pause, whatever asked for it (a 429's retry hint, reset headers of
a spent budget): a pause holds every request for at most `MAX_HINT_S` (60 s); when
it ends, one request alone probes, and the others wait for its answer; a server that
still refuses imposes the next pause. A 429 also halves the in-flight cap (a hint
shorter than two seconds only delays the retrying request); successes grow it back.
The API key goes only into the Authorization header: every message that leaves this
module is scrubbed of it and of credential shapes.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import anyio
import orjson
from yarl import URL

from ..files import UnsafePath, open_state
from ..redact import redact_text
from .errors import GatewayError
from .hints import MAX_HINT_S, RateInfo, rate_info, retry_after
from .limits import AdaptiveLimit, RequestPacer, ThrottleEvidence, TokenWindow
from .urls import endpoint_url, safe_url

#: Status codes worth asking again; other 4xx are permanent for the request.
RETRYABLE_STATUS = frozenset({408, 409, 429})
_MAX_BODY = 16 * 1024 * 1024
#: A 429 retry hint at least this long means a spent rate window, not a passing throttle.
_LONG_HINT_S = 2.0


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    data: dict[str, Any]
    latency_ms: float
    rate: RateInfo


@dataclass(slots=True)
class _Turn:
    """One request's way through the gates: whether it is the probe after a pause."""

    probe: bool = False


@dataclass(slots=True)
class GatewayStats:
    """Counters the progress bar and the summary read."""

    sent: int = 0
    ok: int = 0
    throttled: int = 0
    server_errors: int = 0
    timeouts: int = 0
    connection_errors: int = 0
    other_errors: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    #: Requests a batch's files answered twice, differently (asked again).
    conflicts: int = 0


class Gateway:
    """An OpenAI-compatible endpoint with its pacer, token window and in-flight cap."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        timeout_s: float = 120.0,
        concurrency: int = 64,
        slow_start: bool = True,
        rpm: float | None = None,
        tpm: int | None = None,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 60.0,
        max_pause_s: float = MAX_HINT_S,
        pace_file: Path | None = None,
        rng: random.Random | None = None,
        request_url: str | None = None,
        auth: Mapping[str, str] | None = None,
    ) -> None:
        """`base_url` and `api_key` for an OpenAI-compatible endpoint (the key as a
        bearer token); or `request_url` (the whole URL requests go to) and `auth` (the
        headers that carry the key, as the provider takes it)."""
        self.url, self._basic_auth = endpoint_url(base_url)
        if request_url is not None:
            self.url = URL(request_url)
        self._auth = dict(auth) if auth is not None else None
        if self._basic_auth is not None and api_key:
            raise ValueError(
                "the base URL carries credentials and an API key is set too: use one of them"
            )
        self.printable_url = safe_url(base_url)
        self._api_key = api_key or ""
        self._timeout_s = timeout_s
        #: Where the time of the latest request is kept, so that `--rpm` holds across a
        #: restart: the next run's pacer starts from it.
        self._pace_file = pace_file
        self.pacer = RequestPacer(rpm, _read_time(pace_file) if pace_file else None)
        self.user_tpm = tpm
        self.tokens: TokenWindow | None = TokenWindow(tpm) if tpm else None
        self.limit = AdaptiveLimit(concurrency, initial=8 if slow_start else concurrency)
        self._evidence = ThrottleEvidence()
        self.stats = GatewayStats()
        self._pause_until = 0.0
        #: Why requests are held: what the server said (for the progress line).
        self.pause_reason = ""
        #: After a pause, one request probes: None (no probe due), "due" or "out".
        self._probe: str | None = None
        self._probe_answered = anyio.Event()
        #: Requests the server accepted, per second of sending, over the last minute
        #: (at most 61 buckets, whatever the rate).
        self._accepted: deque[list[int]] = deque()
        self._backoff = (backoff_base_s, backoff_cap_s)
        self._max_pause_s = min(max_pause_s, MAX_HINT_S)
        self._rng = rng or random.Random()
        self._session: aiohttp.ClientSession | None = None
        #: Set when the run stops: a request not yet on the wire is never sent.
        self._stopped = False

    async def __aenter__(self) -> Gateway:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "judge-engine",
            "Accept-Encoding": "gzip, deflate",
        }
        if self._auth is not None:
            headers.update(self._auth)
        elif self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        if self._basic_auth is not None and "Authorization" not in headers:
            headers["Authorization"] = self._basic_auth
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=self.limit.maximum, limit_per_host=self.limit.maximum, ttl_dns_cache=300
            ),
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=self._timeout_s),
            raise_for_status=False,
            # Bodies are read and decompressed under a cap here, not by aiohttp whole.
            auto_decompress=False,
        )
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def in_flight(self) -> int:
        return self.limit.in_flight

    def scrub(self, text: str) -> str:
        """A server's or library's message, fit to store and print."""
        if self._api_key:
            text = text.replace(self._api_key, "[REDACTED]")
        return redact_text(text)

    async def _wait_for_pause(self) -> bool:
        """Wait out a pause; after one, only the first request goes (it probes) and the
        others wait for its answer. Returns whether this request is the probe."""
        while True:
            # A loop, not one sleep: an answer may push the deadline further meanwhile.
            delay = self._pause_until - time.monotonic()
            if delay > 0:
                await anyio.sleep(delay)
                continue
            if self._probe is None:
                return False
            if self._probe == "due":
                self._probe = "out"
                return True
            answered = self._probe_answered
            await answered.wait()

    def _probed(self) -> None:
        """The probe has its answer (whatever it was): let the others go, or, if the
        answer imposed a new pause, have them wait for it."""
        if self._probe == "out":
            self._probe = "due" if self._pause_until > time.monotonic() else None
            self._probe_answered.set()
            self._probe_answered = anyio.Event()

    @property
    def paused_for(self) -> float:
        """Seconds every request still waits before it may be sent."""
        return max(0.0, self._pause_until - time.monotonic())

    def status(self) -> str:
        """The pause in words, for the progress line ("" when none)."""
        left = self.paused_for
        if left > 0:
            return f"paused {left:.0f}s ({self.pause_reason}); then one request probes"
        if self._probe == "out":
            return f"probing after a pause ({self.pause_reason})"
        return ""

    def pause(self, seconds: float, reason: str) -> None:
        """Hold every request for `seconds` (at most `MAX_HINT_S`) when the server says
        its window is spent for a while (2 s or more). A shorter wait is the retrying
        request's alone (its backoff honours the hint) while the halved in-flight cap
        slows everyone: pausing all requests for every passing one-second throttle would
        stall a run that meets them at random."""
        if seconds < _LONG_HINT_S:
            return
        until = time.monotonic() + min(seconds, self._max_pause_s)
        if until > self._pause_until:
            self._pause_until = until
            self.pause_reason = reason
        if self._probe is None:
            self._probe = "due"

    def backoff(self, attempt: int, hint_s: float | None) -> float:
        """Seconds to wait before attempt `attempt` (1 = first retry): the server's hint
        (at most `MAX_HINT_S`), else exponential with full jitter."""
        if hint_s is not None:
            return min(hint_s, self._max_pause_s) * (1.0 + 0.1 * self._rng.random())
        base, cap = self._backoff
        ceiling = min(cap, base * 2.0 ** (attempt - 1))
        return ceiling * (0.5 + 0.5 * self._rng.random())

    def stop_sending(self) -> None:
        """From now on no request goes on the wire; those waiting for a slot or a limit
        end with a "stopped" error. Requests already sent finish."""
        self._stopped = True

    def _not_connected(self, exc: aiohttp.ClientConnectorError) -> GatewayError:
        """A connection that could not be made. Before the server ever answered, that
        is "unreachable" (nothing listens there, or the host is unknown: most likely a
        wrong URL); after, a "connection" error like any other drop."""
        if isinstance(exc, aiohttp.ClientConnectorDNSError):
            reason = f"unknown host {exc.host}"
        elif isinstance(exc.os_error, ConnectionRefusedError):
            reason = "connection refused: nothing listens there"
        else:
            reason = exc.os_error.strerror or str(exc.os_error) if exc.os_error else str(exc)
        kind = "connection" if self.stats.by_status else "unreachable"
        return GatewayError(kind, self.scrub(reason), retryable=True)

    async def send(
        self,
        body: bytes,
        estimated_tokens: int,
        extra_headers: Mapping[str, str] | None = None,
        *,
        model: str | None = None,
    ) -> Reply:
        """One request: wait for a slot and the rate limits, POST, classify the answer."""
        session = self._session
        if session is None:
            raise RuntimeError("use the gateway inside 'async with'")
        turn = _Turn(await self._wait_for_pause())
        try:
            return await self._send(session, body, estimated_tokens, extra_headers, turn)
        finally:
            if turn.probe:
                self._probed()

    async def _send(
        self,
        session: aiohttp.ClientSession,
        body: bytes,
        estimated_tokens: int,
        extra_headers: Mapping[str, str] | None,
        turn: _Turn,
    ) -> Reply:
        await self.limit.acquire()
        entry = None
        try:
            # The rate gates come last: a request that waited for a slot must still meet
            # a limit the server announced meanwhile (checked before, it would pass
            # unpaced); and one held by a pause goes through the pacer again after it,
            # or the requests a pause held would all leave at once when it ends.
            while True:
                if not turn.probe:
                    turn.probe = await self._wait_for_pause()
                await self.pacer.wait()
                if self._pause_until <= time.monotonic():
                    break
            if self.tokens is not None and estimated_tokens > self.tokens.limit:
                raise GatewayError(
                    "too_large_for_tpm",
                    f"this request needs about {estimated_tokens:,} tokens, more than the "
                    f"{self.tokens.limit:,} tokens per minute allowed ("
                    + ("--tpm" if self.user_tpm else "the limit the server announces")
                    + f"): it could never be sent; lower --max-prompt-tokens below "
                    f"{max(1, self.tokens.limit - 1000):,} and run again with --retry-failed",
                    retryable=False,
                )
            entry = await self.tokens.acquire(estimated_tokens) if self.tokens else None
            if self._stopped:  # it waited for a slot or a limit while the run stopped
                if self.tokens is not None and entry is not None:
                    self.tokens.settle(entry, 0)
                raise GatewayError("stopped", "the run is stopping", retryable=False)
            self.stats.sent += 1
            if self._pace_file is not None and self.pacer.rpm:
                _write_time(self._pace_file)
            started = time.monotonic()
            try:
                async with session.post(
                    self.url, data=body, headers=extra_headers, allow_redirects=False
                ) as response:
                    status = response.status
                    headers: Mapping[str, str] = response.headers
                    if 300 <= status < 400:
                        raise self._redirected(status, headers)
                    raw = await _read_capped(response, status)
            except (asyncio.TimeoutError, TimeoutError):
                self.stats.timeouts += 1
                raise GatewayError(
                    "timeout", f"no reply within {self._timeout_s:g} s", retryable=True
                ) from None
            except aiohttp.ClientConnectorError as exc:
                self.stats.connection_errors += 1
                raise self._not_connected(exc) from None
            except aiohttp.ClientError as exc:
                self.stats.connection_errors += 1
                raise GatewayError(
                    "connection", self.scrub(f"{type(exc).__name__}: {exc}"), retryable=True
                ) from None
            latency_ms = (time.monotonic() - started) * 1000
        finally:
            await self.limit.release()
        self.stats.by_status[status] = self.stats.by_status.get(status, 0) + 1
        self._evidence.reply(time.monotonic(), status == 429)
        rate = rate_info(headers)
        self._follow(rate)
        if status == 200:
            self._count_accepted(int(started))
            return self._accept(raw, rate, latency_ms, entry)
        if self.tokens is not None and entry is not None:
            self.tokens.settle(entry, 0)  # refused requests use no tokens
        self._refuse(status, headers, raw)
        raise AssertionError("unreachable")  # pragma: no cover

    def _redirected(self, status: int, headers: Mapping[str, str]) -> GatewayError:
        """A redirect is never followed (a POST and its credentials stay where the
        user sent them): the run stops, naming where the gateway points."""
        location = self.scrub(safe_url(headers.get("Location", "") or "(no Location)"))
        self.stats.other_errors += 1
        self._stopped = True  # the run stops: nothing more goes to this address
        return GatewayError(
            "redirect",
            f"the gateway answered {status} and points to {location[:300]}; requests are "
            "not sent on to another address: use that URL as --base-url if you trust it",
            status=status,
            retryable=False,
        )

    def _count_accepted(self, second: int, count: int = 1) -> None:
        if self._accepted and self._accepted[-1][0] == second:
            self._accepted[-1][1] += count
        elif count:
            self._accepted.append([second, count])
        while self._accepted and second - self._accepted[0][0] >= 60:
            self._accepted.popleft()

    def _follow(self, rate: RateInfo) -> None:
        """Adopt the limits the server announces; pause when its budget is spent."""
        if rate.limit_requests:
            self.pacer.adopt(rate.limit_requests)
        if (
            rate.limit_tokens
            and self.user_tpm is None
            and (self.tokens is None or self.tokens.limit != rate.limit_tokens)
        ):
            self.tokens = TokenWindow(rate.limit_tokens)
        if rate.remaining_requests == 0 and rate.reset_requests_s:
            self.pause(
                rate.reset_requests_s,
                f"request budget spent, resets in {rate.reset_requests_s:.0f}s",
            )
        if rate.remaining_tokens == 0 and rate.reset_tokens_s:
            self.pause(
                rate.reset_tokens_s, f"token budget spent, resets in {rate.reset_tokens_s:.0f}s"
            )

    def _accept(self, raw: bytes, rate: RateInfo, latency_ms: float, entry: Any) -> Reply:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self.stats.other_errors += 1
            snippet = self.scrub(raw[:120].decode("utf-8", "replace"))
            kind = "empty body" if not raw.strip() else f"not JSON: {snippet!r}"
            raise GatewayError("bad_response", kind, status=200, retryable=True) from None
        if not isinstance(data, dict):
            self.stats.other_errors += 1
            raise GatewayError(
                "bad_response", "reply is not a JSON object", status=200, retryable=True
            )
        usage = data.get("usage")
        if self.tokens is not None and entry is not None and isinstance(usage, dict):
            total = usage.get("total_tokens")
            if isinstance(total, int) and total >= 0:
                self.tokens.settle(entry, total)
        self.stats.ok += 1
        self.limit.succeeded()
        self.pacer.probe(time.monotonic())
        return Reply(200, data, latency_ms, rate)

    def _refuse(self, status: int, headers: Mapping[str, str], raw: bytes) -> None:
        text = raw[:2000].decode("utf-8", "replace")
        message = _error_message(text)
        code, param = error_fields(text)
        hint = retry_after(headers, text)
        if status == 401:
            self.stats.other_errors += 1
            self._stopped = True  # every request would be refused: send no more
            raise GatewayError(
                "auth", self.scrub(message or "unauthorized"), status=status, retryable=False
            )
        if status == 429:
            self.stats.throttled += 1
            long_hint = hint is not None and hint >= _LONG_HINT_S
            announced = rate_info(headers)
            spent = announced.remaining_requests == 0 or announced.remaining_tokens == 0
            if long_hint or spent or self._evidence.burst():
                # Evidence the budget is spent: everyone slows down. A lone 429 among
                # successes is not: only its own request waits (its hint) and retries.
                self.limit.throttled()
            if long_hint:
                # "Come back in a while": the window is spent, and what it accepted is
                # the limit (transient throttles say a second or nothing).
                now = time.monotonic()
                self._count_accepted(int(now), 0)
                self.pacer.estimate(sum(n for _, n in self._accepted), now)
            if hint is not None:
                self.pause(hint, f"429, retry in {hint:.0f}s")
            raise GatewayError(
                "rate_limited",
                self.scrub(message or "too many requests"),
                status=status,
                retryable=True,
                retry_after_s=hint,
            )
        if status >= 500 or status in RETRYABLE_STATUS:
            self.stats.server_errors += 1
            raise GatewayError(
                "server_error",
                self.scrub(message or f"HTTP {status}"),
                status=status,
                retryable=True,
                retry_after_s=hint,
            )
        self.stats.other_errors += 1
        raise GatewayError(
            "content_filter" if code == "content_filter" else "client_error",
            self.scrub(message or f"HTTP {status}"),
            status=status,
            retryable=False,
            code=code,
            param=param,
        )


def _read_time(path: Path) -> float | None:
    try:
        value = float(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None
    return value if math.isfinite(value) and value < time.time() + 60 else None


def _write_time(path: Path) -> None:
    """Record now as the latest request's time (not fsync'd: a process killed keeps its
    page cache; only a power loss could lose it)."""
    with contextlib.suppress(OSError, UnsafePath), open_state(path, "wb") as handle:
        handle.write(f"{time.time():.6f}\n".encode("ascii"))


async def _read_capped(response: aiohttp.ClientResponse, status: int) -> bytes:
    """The body, decompressed, refused once it passes `_MAX_BODY` (with or without a
    length, chunked, or compressed: a small gzip that would inflate to gigabytes is
    refused at the cap, never held)."""
    return b"".join([chunk async for chunk in body_chunks(response, status, _MAX_BODY)])


async def body_chunks(
    response: aiohttp.ClientResponse, status: int, cap: int
) -> AsyncIterator[bytes]:
    """The body a piece at a time, decompressed, ended with a retryable `GatewayError`
    once it passes `cap` bytes (also when chunked or compressed)."""

    def too_large() -> GatewayError:
        # Asked again (within the retries): a gateway that sent garbage once may not twice.
        return GatewayError(
            "bad_response", f"reply larger than {cap // (1024 * 1024)} MB", status=status,
            retryable=True,
        )  # fmt: skip

    if (response.content_length or 0) > cap:
        raise too_large()
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding in ("gzip", "x-gzip", "deflate"):
        # gzip, or zlib-wrapped deflate; raw deflate is tried when zlib's header is absent.
        decoder = zlib.decompressobj(47 if encoding != "deflate" else 15)
    elif encoding in ("identity", ""):
        decoder = None
    else:
        raise GatewayError(
            "bad_response",
            f"reply in an unsupported encoding {encoding[:40]!r}",
            status=status,
            retryable=True,
        )
    size = 0
    started = False
    async for chunk in response.content.iter_chunked(1 << 16):
        if decoder is None:
            size += len(chunk)
            if size > cap:
                raise too_large()
            yield chunk
            continue
        # A gzip body may hold several members, one after the other.
        while chunk:
            try:
                piece = decoder.decompress(chunk, cap + 1 - size)
            except zlib.error:
                if encoding == "deflate" and not started:
                    decoder = zlib.decompressobj(-15)  # raw deflate, no zlib header
                    continue
                raise GatewayError(
                    "bad_response", "reply body does not decompress", status=status,
                    retryable=True,
                ) from None  # fmt: skip
            started = True
            size += len(piece)
            if size > cap or decoder.unconsumed_tail:
                raise too_large()  # it would inflate past the cap
            if piece:
                yield piece
            chunk = decoder.unused_data if decoder.eof else b""
            if decoder.eof:
                decoder = zlib.decompressobj(47 if encoding != "deflate" else 15)


def _error_object(text: str) -> dict[str, Any] | None:
    """The error object of a body: OpenAI's and Azure's `{"error": {...}}`, Anthropic's
    `{"type": "error", "error": {...}}`, Gemini's `[{"error": {...}}]`."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        error: dict[str, Any] = data["error"]
        return error
    return None


def error_fields(text: str) -> tuple[str | None, str | None]:
    """The `code` and `param` an error body names (either may be None)."""
    error = _error_object(text)
    if error is None:
        return None, None
    code, param = error.get("code"), error.get("param")
    inner = error.get("innererror")
    if code is None and isinstance(inner, dict):
        code = inner.get("code")
    return (
        str(code)[:80] if isinstance(code, (str, int)) and not isinstance(code, bool) else None,
        str(param)[:80] if isinstance(param, str) else None,
    )


def _error_message(text: str) -> str:
    """The message of an OpenAI-style error body, else the start of the body."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return " ".join(text.split())[:300]
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]  # Gemini wraps its error in a list
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict):
            message = error.get("message") or error.get("type") or ""
            kind = error.get("type")
            text = f"{message}" if not kind or kind == message else f"{kind}: {message}"
            return " ".join(str(text).split())[:300]
        if isinstance(error, str):
            return error[:300]
    return " ".join(text.split())[:300]
