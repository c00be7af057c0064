"""The limits' behaviour: token window admission and settling, the adaptive cap."""

from __future__ import annotations

import contextlib

import anyio
import pytest

from judge_engine.gateway.limits import AdaptiveLimit, RequestPacer, ThrottleEvidence, TokenWindow


async def test_token_window_blocks_when_full_and_settling_frees_room() -> None:
    window = TokenWindow(1000)
    first = await window.acquire(600)
    await window.acquire(300)
    assert window.used == 900
    admitted = anyio.Event()

    async def late() -> None:
        await window.acquire(400)
        admitted.set()

    async with anyio.create_task_group() as group:
        group.start_soon(late)
        await anyio.sleep(0.05)
        assert not admitted.is_set()  # 900 + 400 > 1000: it waits
        window.settle(first, 100)  # the reply used far fewer tokens than estimated
        with anyio.fail_after(5):
            await admitted.wait()
    assert window.used == 100 + 300 + 400


async def test_token_window_refuses_a_request_larger_than_the_limit() -> None:
    with pytest.raises(ValueError, match="more than --tpm"):
        await TokenWindow(100).acquire(101)


async def test_adaptive_limit_starts_slow_and_doubles_each_round_trip() -> None:
    limit = AdaptiveLimit(64)
    assert limit.limit == 8  # nothing is known of the server before its first reply
    for _ in range(8):
        limit.succeeded()
    assert limit.limit == 16  # one round trip of successes doubles it
    for _ in range(100):
        limit.succeeded()
    assert limit.limit == 64


async def test_adaptive_limit_halves_on_429_and_grows_back() -> None:
    limit = AdaptiveLimit(16, cooldown_s=0.0, initial=16)
    limit.throttled()
    assert limit.limit == 8
    limit.throttled()
    limit.throttled()
    limit.throttled()
    limit.throttled()
    assert limit.limit == 1  # never below one
    for _ in range(15):
        limit.succeeded()
    assert limit.limit < 8  # after a 429 it grows by about one per cap's worth, no doubling
    for _ in range(200):
        limit.succeeded()
    assert limit.limit == 16  # and never above the maximum


async def test_adaptive_limit_bounds_requests_in_flight() -> None:
    limit = AdaptiveLimit(3)
    peak = 0

    async def one() -> None:
        nonlocal peak
        await limit.acquire()
        peak = max(peak, limit.in_flight)
        await anyio.sleep(0.01)
        await limit.release()

    async with anyio.create_task_group() as group:
        for _ in range(20):
            group.start_soon(one)
    assert peak == 3 and limit.in_flight == 0


def test_pacer_adopts_the_servers_limit_unless_the_user_set_a_lower_one() -> None:
    free = RequestPacer(None)
    free.adopt(500)
    assert free.rpm == 500
    capped = RequestPacer(100)
    capped.adopt(500)
    assert capped.rpm == 100
    capped.adopt(50)
    assert capped.rpm == 50


def test_pacer_estimates_only_when_nobody_said_the_limit() -> None:
    pacer = RequestPacer(None)
    pacer.estimate(120, now=0.0)
    assert (pacer.rpm, pacer.source) == (120, "estimate")
    pacer.estimate(200, now=1.0)
    assert pacer.rpm == 120  # an estimate only comes down
    pacer.probe(now=30.0)
    assert pacer.rpm == 120  # not a quiet minute yet
    pacer.probe(now=61.5)
    assert pacer.rpm == pytest.approx(126)  # a quiet minute: try 5% more
    pacer.adopt(500)
    assert pacer.source == "server"
    pacer.estimate(50, now=100.0)
    assert pacer.rpm == 500  # an announced limit beats any estimate
    told = RequestPacer(300)
    told.estimate(10, now=0.0)
    assert (told.rpm, told.source) == (300, "user")


async def test_a_long_retry_hint_teaches_the_gateway_the_limit() -> None:
    from judge_engine.gateway import Gateway, GatewayError

    from .servers import ScriptedServer, error, ok

    script = [ok()] * 5 + [error(429, "window spent", **{"Retry-After": "30"})]
    async with ScriptedServer(script) as server, Gateway(server.url, "k") as gateway:
        for _ in range(5):
            await gateway.send(b'{"model": "m", "messages": []}', 10)
        with pytest.raises(GatewayError) as refused:
            await gateway.send(b'{"model": "m", "messages": []}', 10)
    assert refused.value.kind == "rate_limited" and refused.value.retry_after_s == 30
    assert (gateway.pacer.rpm, gateway.pacer.source) == (5, "estimate")


async def test_a_short_retry_hint_teaches_nothing() -> None:
    from judge_engine.gateway import Gateway, GatewayError

    from .servers import ScriptedServer, error, ok

    script = [ok()] * 3 + [error(429, "busy", **{"Retry-After": "1"})]
    async with ScriptedServer(script) as server, Gateway(server.url, "k") as gateway:
        for _ in range(3):
            await gateway.send(b'{"model": "m", "messages": []}', 10)
        with pytest.raises(GatewayError):
            await gateway.send(b'{"model": "m", "messages": []}', 10)
    assert gateway.pacer.rpm is None


@pytest.mark.parametrize(("hint", "everyone_waits"), [("1", False), ("5", True)])
async def test_only_a_long_retry_hint_pauses_every_request(hint: str, everyone_waits: bool) -> None:
    from judge_engine.gateway import Gateway, GatewayError

    from .servers import ScriptedServer, error

    script = [error(429, "slow", **{"Retry-After": hint})]
    async with ScriptedServer(script) as server, Gateway(server.url, "k") as gateway:
        with pytest.raises(GatewayError) as refused:
            await gateway.send(b'{"model": "m", "messages": []}', 10)
        assert refused.value.retry_after_s == float(hint)  # the request itself waits
        assert (gateway.paused_for > 0) is everyone_waits
        # A lone 429 with a short hint is not evidence of a spent budget: nobody else
        # slows down; a long hint is.
        assert (gateway.limit.limit < 8) is everyone_waits


def test_throttle_evidence_tells_a_burst_from_noise() -> None:
    evidence = ThrottleEvidence(window_s=2.0, burst=3, share=0.25)
    now = 0.0
    for n in range(200):  # one 429 in twenty, spread out: noise
        now += 0.01
        evidence.reply(now, n % 20 == 0)
        assert not evidence.burst()
    now += 2.5  # a quiet window, then 429s that are most of the replies: a burst
    for throttled in (False, True, True, False, True):
        now += 0.01
        evidence.reply(now, throttled)
    assert evidence.burst()
    now += 2.5  # the window moves on
    evidence.reply(now, False)
    assert not evidence.burst()


async def test_sporadic_429s_leave_the_cap_and_a_burst_halves_it() -> None:
    from judge_engine.gateway import Gateway, GatewayError

    from .servers import ScriptedServer, error, ok

    noise = [error(429, "busy", **{"Retry-After": "0"}) if n % 20 == 0 else ok() for n in range(60)]
    burst = [error(429, "busy", **{"Retry-After": "0"})] * 4
    async with (
        ScriptedServer(noise + burst) as server,
        Gateway(server.url, "k", concurrency=16) as gateway,
    ):
        gateway.limit.limit = 16.0

        async def one() -> None:
            with contextlib.suppress(GatewayError):
                await gateway.send(b'{"model": "m", "messages": []}', 10)

        gateway._evidence = ThrottleEvidence(window_s=0.5)
        for _ in range(60):
            await one()
        assert gateway.limit.limit == 16.0 and gateway.stats.throttled == 3
        await anyio.sleep(0.6)  # the noise leaves the window
        for _ in range(4):
            await one()
        assert gateway.limit.limit == 8.0
