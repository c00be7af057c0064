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
