"""Limits on what is sent: requests per minute, tokens per minute, requests in flight.

In: the user's `--rpm`, `--tpm` and `--concurrency`, and what the server's replies say.
Out: three awaitable gates a request passes before it is sent.

- `RequestPacer` spaces requests evenly at the rpm (aiolimiter's leaky bucket with a
  capacity of one), so no 60-second window ever holds more than rpm requests. With no
  `--rpm` it adopts the limit the server announces, or estimates it from the replies.
- `TokenWindow` admits a request when the tokens of the last 60 seconds plus its
  estimate fit the tpm, and settles the estimate with the reply's `usage` afterwards
  (aiolimiter cannot give back an over-estimate).
- `AdaptiveLimit` caps requests in flight; evidence of a spent budget halves the cap
  for everyone, and successes grow it back by about one per cap's worth of replies.
- `ThrottleEvidence` tells a spent budget from noise: a 429 with a long hint, a
  remaining count of 0, or a burst of 429s is evidence; a 429 here and there among
  successes is not, and only its own request waits and asks again.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import anyio
from aiolimiter import AsyncLimiter

#: Pace a little under the limit: arrival jitter at the server must not tip a window over.
_MARGIN = 0.995
_WINDOW_S = 60.0


class RequestPacer:
    """At most `rpm` request starts in any 60-second window, spaced evenly.

    The rate comes from the user (`--rpm`), else from the limit the server announces,
    else from an estimate: when a server that announces nothing refuses with a long
    retry hint, the requests it accepted in the last 60 s are its limit. An estimate
    is raised by 5% after every minute without such a refusal, in case it was low.
    """

    def __init__(self, rpm: float | None, last_sent: float | None = None) -> None:
        self.user_rpm = rpm
        self.rpm: float | None = None
        #: The wall-clock time of the previous run's last request, if known: the first
        #: request here keeps the spacing from it (a restart is no burst).
        self._last_sent = last_sent
        #: Where the rate came from: "user", "server", "estimate" or None.
        self.source: str | None = None
        self._limiter: AsyncLimiter | None = None
        self._estimated_at = 0.0
        if rpm is not None:
            self._set(rpm, "user")

    def _set(self, rpm: float, source: str) -> None:
        self.rpm = rpm
        self.source = source
        self._limiter = AsyncLimiter(1, 60.0 / (rpm * _MARGIN))

    def adopt(self, server_rpm: int) -> None:
        """Follow the limit the server announces, unless the user set a lower one."""
        if server_rpm <= 0 or server_rpm == self.rpm:
            return
        if self.user_rpm is not None and self.user_rpm <= server_rpm:
            return
        self._set(float(server_rpm), "server")

    def estimate(self, accepted_last_minute: int, now: float) -> None:
        """A refusal with a long retry hint: what the server accepted in the last minute
        is its limit. Only when nobody said what the limit is."""
        if self.source in ("user", "server") or accepted_last_minute < 1:
            return
        if self.rpm is None or accepted_last_minute < self.rpm:
            self._set(float(accepted_last_minute), "estimate")
        self._estimated_at = now

    def probe(self, now: float) -> None:
        """After a quiet minute, raise an estimated rate by 5%."""
        if self.source == "estimate" and self.rpm and now - self._estimated_at >= 60.0:
            self._set(self.rpm * 1.05, "estimate")
            self._estimated_at = now

    async def wait(self) -> None:
        if self._limiter is None:
            return
        if self._last_sent is not None and self.rpm:
            gap = self._last_sent + 60.0 / (self.rpm * _MARGIN) - time.time()
            self._last_sent = None
            if gap > 0:
                await anyio.sleep(min(gap, 60.0 / (self.rpm * _MARGIN)))
        await self._limiter.acquire()


@dataclass(slots=True)
class _Entry:
    at: float
    tokens: int
    #: Still inside the window (counted in the total).
    live: bool = True


class TokenWindow:
    """Tokens per minute over a sliding 60-second window, estimates settled later."""

    def __init__(self, tpm: int) -> None:
        self.limit = tpm
        self._entries: deque[_Entry] = deque()
        self._total = 0
        self._freed = anyio.Event()

    def _expire(self, now: float) -> None:
        while self._entries and now - self._entries[0].at >= _WINDOW_S:
            old = self._entries.popleft()
            old.live = False
            self._total -= old.tokens

    async def acquire(self, tokens: int) -> _Entry:
        """Wait until `tokens` more fit in the window, then count them in."""
        if tokens > self.limit:
            raise ValueError(f"one request needs {tokens:,} tokens, more than --tpm {self.limit:,}")
        while True:
            now = time.monotonic()
            self._expire(now)
            if self._total + tokens <= self.limit:
                entry = _Entry(now, tokens)
                self._entries.append(entry)
                self._total += tokens
                return entry
            # Wake when enough old entries leave the window, or when a settle frees some.
            needed = self._total + tokens - self.limit
            wait = _WINDOW_S
            freed = 0
            for old in self._entries:
                freed += old.tokens
                if freed >= needed:
                    wait = max(0.0, _WINDOW_S - (now - old.at)) + 0.001
                    break
            freed_event = self._freed
            with anyio.move_on_after(wait):
                await freed_event.wait()

    def settle(self, entry: _Entry, tokens: int) -> None:
        """Replace an estimate by the tokens the reply says were used."""
        delta = tokens - entry.tokens
        entry.tokens = tokens
        if entry.live:
            self._total += delta
        if delta < 0:
            self._freed.set()
            self._freed = anyio.Event()

    @property
    def used(self) -> int:
        self._expire(time.monotonic())
        return self._total


class ThrottleEvidence:
    """Whether the 429s of the last few seconds say the budget is spent.

    A server may answer a few requests with 429 at random (a shared gateway, a brief
    spike) while its budget is far from spent: halving the cap on each would cost a
    quarter of the throughput for nothing. A burst is evidence: at least `burst` 429s
    within `window_s` seconds that make at least `share` of the replies then.
    """

    def __init__(self, window_s: float = 2.0, burst: int = 3, share: float = 0.25) -> None:
        self._window_s = window_s
        self._burst = burst
        self._share = share
        #: (time, throttled) of the replies within the window, oldest first.
        self._replies: deque[tuple[float, bool]] = deque()
        self._throttled = 0

    def reply(self, now: float, throttled: bool) -> None:
        """Count one reply (a 429 or not) at time `now`."""
        self._replies.append((now, throttled))
        self._throttled += throttled
        horizon = now - self._window_s
        while self._replies and self._replies[0][0] < horizon:
            _, old = self._replies.popleft()
            self._throttled -= old

    def burst(self) -> bool:
        """Whether the window holds a burst of 429s."""
        return self._throttled >= self._burst and self._throttled >= self._share * len(
            self._replies
        )


class AdaptiveLimit:
    """A cap on requests in flight that halves on 429s and grows back on successes.

    It starts small and doubles every round trip (one more per success: a slow start,
    as TCP does) until the first 429 or the maximum: before the first reply the engine
    knows nothing of the server's limit, and a blind burst of the full concurrency would
    fill a rate window the server only announces in that reply. After a 429 it grows by
    about one per cap's worth of replies.
    """

    def __init__(self, maximum: int, cooldown_s: float = 2.0, initial: int = 8) -> None:
        self.maximum = maximum
        self.limit = float(min(maximum, initial))
        self.in_flight = 0
        self._slow_start = self.limit < maximum
        self._cooldown_s = cooldown_s
        self._last_cut = -1e9
        #: Requests waiting for a slot, first come first served. A slot is handed over
        #: by counting it in `in_flight` before the waiter's event is set.
        self._waiters: deque[anyio.Event] = deque()

    def _cap(self) -> int:
        return max(1, int(self.limit))

    async def acquire(self) -> None:
        if self.in_flight < self._cap() and not self._waiters:
            self.in_flight += 1  # the common case: no lock, no wait
            return
        event = anyio.Event()
        self._waiters.append(event)
        try:
            await event.wait()
        except BaseException:
            if event.is_set():
                self.release_nowait()  # handed a slot it will not use: pass it on
            else:
                self._waiters.remove(event)
            raise

    def release_nowait(self) -> None:
        self.in_flight -= 1
        while self._waiters and self.in_flight < self._cap():
            self.in_flight += 1
            self._waiters.popleft().set()

    async def release(self) -> None:
        self.release_nowait()

    def throttled(self) -> None:
        """Evidence of a spent budget: halve the cap, at most once per cooldown (one
        burst is one signal)."""
        self._slow_start = False
        now = time.monotonic()
        if now - self._last_cut >= self._cooldown_s:
            self.limit = max(1.0, self.limit / 2)
            self._last_cut = now

    def succeeded(self) -> None:
        if self.limit < self.maximum:
            step = 1.0 if self._slow_start else 1.0 / self.limit
            self.limit = min(float(self.maximum), self.limit + step)
