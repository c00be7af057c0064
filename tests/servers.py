"""A scripted OpenAI-compatible server on loopback, for exact fault sequences."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

VERDICT = '{"success": 1, "confidence": "high", "reasoning": "tests pass"}'


@dataclass
class Action:
    """What the server does with one request."""

    status: int = 200
    content: str | None = VERDICT
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None  # raw body instead of a completion
    delay_s: float = 0.0
    drop: bool = False
    model: str | None = None  # the model the reply names (default: the one asked)
    finish_reason: str = "stop"
    #: Writes the whole response itself (chunked bodies, compressed bombs, redirects).
    raw: Callable[[web.Request], Awaitable[web.StreamResponse]] | None = None


def ok(content: str = VERDICT) -> Action:
    return Action(content=content)


def error(status: int, message: str = "boom", **headers: str) -> Action:
    payload = {"error": {"message": message, "type": "test_error", "code": status}}
    return Action(status=status, body=orjson.dumps(payload), headers=dict(headers))


class ScriptedServer:
    """Answers from a script (a queue of actions), then with `default` forever."""

    def __init__(
        self,
        script: list[Action] | None = None,
        default: Callable[[dict[str, Any]], Action] | None = None,
    ) -> None:
        self.script: deque[Action] = deque(script or [])
        self.default = default or (lambda body: ok())
        self.arrivals: list[float] = []
        #: ("in", n) when request n arrives and ("out", n) when its answer is sent.
        self.events: list[tuple[str, int]] = []
        self.bodies: list[dict[str, Any]] = []
        self.auth: list[str] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> ScriptedServer:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        number = len(self.arrivals)
        self.events.append(("in", number))
        try:
            return await self._answer(request)
        finally:
            self.events.append(("out", number))

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        self.arrivals.append(time.monotonic())
        self.auth.append(request.headers.get("Authorization", ""))
        body = orjson.loads(await request.read())
        self.bodies.append(body)
        action = self.script.popleft() if self.script else self.default(body)
        if action.delay_s:
            await asyncio.sleep(action.delay_s)
        if action.raw is not None:
            return await action.raw(request)
        if action.drop:
            assert request.transport is not None
            request.transport.abort()
            raise web.HTTPServiceUnavailable()
        if action.body is not None:
            return web.Response(
                status=action.status,
                body=action.body,
                headers=action.headers,
                content_type="application/json",
            )
        payload = {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "model": action.model or body["model"],
            "choices": [
                {
                    "index": 0,
                    "finish_reason": action.finish_reason,
                    "message": {"role": "assistant", "content": action.content},
                }
            ],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
        }
        return web.Response(
            status=action.status,
            body=orjson.dumps(payload),
            headers=action.headers,
            content_type="application/json",
        )


#: What a `HostileProxy` does with one request: None passes it to the upstream; else a
#: coroutine that answers it itself, given the request and the upstream's answer
#: (status, headers, body) when it asked for it.
Sabotage = Callable[[web.Request, "Upstream"], Awaitable[web.StreamResponse | None]]


@dataclass
class Upstream:
    """The upstream's answer to a request the proxy forwarded (fetched on demand)."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class HostileProxy:
    """A reverse proxy on loopback in front of another server (the simulator), whose
    `rules` may answer any request otherwise: a dropped connection, a short body, a
    stalled stream, a 404, a rewritten body. Each rule is `(method, path regex,
    sabotage)`; the first whose method and path match decides, and a sabotage that
    returns None lets the upstream's answer through."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.rules: list[tuple[str, str, Sabotage]] = []
        self.seen: list[tuple[str, str]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._client: Any = None

    async def __aenter__(self) -> HostileProxy:
        import aiohttp

        self._client = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=512 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()
        await self._client.close()

    async def fetch(self, request: web.Request, body: bytes) -> Upstream:
        base = self.upstream.rsplit("/v1", 1)[0]
        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")
        }
        async with self._client.request(
            request.method, base + request.path_qs, data=body, headers=headers
        ) as response:
            return Upstream(
                response.status,
                {
                    k: v
                    for k, v in response.headers.items()
                    if k.lower() not in ("content-length", "transfer-encoding", "connection")
                },
                await response.read(),
            )

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        import re

        body = await request.read()
        self.seen.append((request.method, request.path))
        upstream = Upstream()
        for method, pattern, sabotage in self.rules:
            if method == request.method and re.fullmatch(pattern, request.path):
                fetched = await self.fetch(request, body)
                upstream.status, upstream.headers, upstream.body = (
                    fetched.status,
                    fetched.headers,
                    fetched.body,
                )
                answer = await sabotage(request, upstream)
                if answer is not None:
                    return answer
                break
        else:
            upstream = await self.fetch(request, body)
        return web.Response(status=upstream.status, body=upstream.body, headers=upstream.headers)
