"""The simulator's Message Batches API (its `anthropic` mode), as Anthropic documents it.

In: `POST /v1/messages/batches` (`requests`: `custom_id` and `params`, a Messages API
request each), `GET /v1/messages/batches[/{id}[/results]]`, `POST
/v1/messages/batches/{id}/cancel`, with `x-api-key` and `anthropic-version`. Out:
message-batch objects (`processing_status` in_progress, canceling or ended;
`request_counts` of processing, succeeded, errored, canceled and expired; `results_url`
once ended), lists (`data`, `has_more`, `first_id`, `last_id`, newest first, `limit`,
`after_id`), and the results as JSON lines (`custom_id`, `result` of type succeeded
with the `message`, errored with the error, canceled or expired).

Refused at creation, as the API does: no `requests`, a `custom_id` outside
`^[a-zA-Z0-9_-]{1,64}$` or given twice, more than 100,000 requests. A request whose
`params` the Messages API would refuse is `errored` in the results (the batch goes
on). Every custom id of every batch created is counted (`submitted`), so a test sees a
request submitted twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from . import providers as modes

if TYPE_CHECKING:
    from .sim import Simulator

MAX_REQUESTS = 100_000
_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def _stamp(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, tz=timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass
class _MessageBatch:
    id: str
    requests: list[dict[str, Any]]
    created_at: float
    status: str = "in_progress"
    ended_at: float | None = None
    cancel_at: float | None = None
    results: list[bytes] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    def to_dict(self, base: str) -> dict[str, Any]:
        ended = self.status == "ended"
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": self.status,
            "request_counts": {
                "processing": len(self.requests) - sum(self.counts.values()),
                "succeeded": self.counts["succeeded"],
                "errored": self.counts["errored"],
                "canceled": self.counts["canceled"],
                "expired": self.counts["expired"],
            },
            "ended_at": _stamp(self.ended_at),
            "created_at": _stamp(self.created_at),
            "expires_at": _stamp(self.created_at + 86_400),
            "archived_at": None,
            "cancel_initiated_at": _stamp(self.cancel_at),
            "results_url": f"{base}/v1/messages/batches/{self.id}/results" if ended else None,
        }


class MessageBatches:
    """Message batches for one simulator (its config holds the batch options)."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.batches: dict[str, _MessageBatch] = {}
        self.submitted: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages/batches", self._create)
        app.router.add_get("/v1/messages/batches", self._list)
        app.router.add_get("/v1/messages/batches/{id}", self._get)
        app.router.add_get("/v1/messages/batches/{id}/results", self._results)
        app.router.add_post("/v1/messages/batches/{id}/cancel", self._cancel)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def stats(self) -> dict[str, Any]:
        return {
            "message_batches": Counter(b.status for b in self.batches.values()),
            "message_batch_requests": sum(self.submitted.values()),
            "message_batch_requests_twice": sum(1 for n in self.submitted.values() if n > 1),
        }

    def _base(self, request: web.Request) -> str:
        return f"{request.scheme}://{request.host}"

    def _denied(self, request: web.Request) -> web.Response | None:
        if self.sim.config.provider != "anthropic":
            return self.sim._refused(modes.openai_error(404, f"Not found: {request.path}"))
        try:
            modes.check_anthropic(
                request.headers,
                {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]},
                self.sim.config.api_key,
            )
        except modes.Refusal as refusal:
            return self.sim._refused(refusal)
        return None

    async def _create(self, request: web.Request) -> web.Response:
        self.calls["create"] += 1
        if (denied := self._denied(request)) is not None:
            return denied
        try:
            data = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            data = None
        requests = data.get("requests") if isinstance(data, dict) else None
        invalid = "invalid_request_error"
        if not isinstance(requests, list) or not requests:
            return self.sim._refused(
                modes.anthropic_error(400, invalid, "requests: Field required")
            )
        if len(requests) > MAX_REQUESTS:
            return self.sim._refused(
                modes.anthropic_error(400, invalid, f"requests: at most {MAX_REQUESTS:,} requests")
            )
        seen: set[str] = set()
        for index, item in enumerate(requests):
            custom = item.get("custom_id") if isinstance(item, dict) else None
            if not isinstance(custom, str) or not _CUSTOM_ID.match(custom):
                return self.sim._refused(
                    modes.anthropic_error(
                        400, invalid, f"requests.{index}.custom_id: String should match pattern "
                        "'^[a-zA-Z0-9_-]{1,64}$'",
                    )
                )  # fmt: skip
            if custom in seen:
                return self.sim._refused(
                    modes.anthropic_error(400, invalid, f"Duplicate custom_id: {custom}")
                )
            if not isinstance(item.get("params"), dict):
                return self.sim._refused(
                    modes.anthropic_error(400, invalid, f"requests.{index}.params: Field required")
                )
            seen.add(custom)
        batch = _MessageBatch(f"msgbatch_{secrets.token_hex(12)}", requests, time.time())
        self.batches[batch.id] = batch
        for custom in seen:
            self.submitted[custom] += 1
        task = asyncio.get_running_loop().create_task(self._process(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return self.sim._reply(200, batch.to_dict(self._base(request)))

    async def _process(self, batch: _MessageBatch) -> None:
        config = self.sim.config
        pause = max(0.0, config.batch_delay_s) / max(1, len(batch.requests))
        for item in batch.requests:
            if batch.cancel_at is not None:
                batch.results.append(_result(item["custom_id"], {"type": "canceled"}))
                batch.counts["canceled"] += 1
                continue
            batch.results.append(self._answer(batch, item))
            if pause:
                await asyncio.sleep(pause)
        batch.status = "ended"
        batch.ended_at = time.time()

    def _answer(self, batch: _MessageBatch, item: dict[str, Any]) -> bytes:
        from .sim import (
            _record_of,
            asked_form,
            error_for,
            verdict_for,
        )  # the simulator imports this module

        params = item["params"]
        custom = item["custom_id"]
        headers = {"x-api-key": "batch", "anthropic-version": "2023-06-01"}
        try:
            modes.check_anthropic(headers, params, None)
        except modes.Refusal as refusal:
            batch.counts["errored"] += 1
            return _result(custom, {"type": "errored", "error": refusal.body})
        if self.sim._rng.random() < self.sim.config.batch_fail_rate:
            batch.counts["errored"] += 1
            error = {"type": "error", "error": {"type": "api_error", "message": "injected"}}
            return _result(custom, {"type": "errored", "error": error})
        record = _record_of(params["messages"])
        last = str(params["messages"][-1].get("content", "")) if params["messages"] else ""
        rates = error_for(self.sim.config, last)
        system = params.get("system", "")
        verdict = verdict_for(
            record, str(params["model"]), self.sim.config.disagreement, rates,
            asked_form(system), self.sim.config.mode_disagreement,
        )  # fmt: skip
        self.sim.models[str(params["model"])] += 1
        message = modes.anthropic_reply(verdict, params, record, len(record) // 4)
        batch.counts["succeeded"] += 1
        return _result(custom, {"type": "succeeded", "message": message})

    async def _list(self, request: web.Request) -> web.Response:
        self.calls["list"] += 1
        if (denied := self._denied(request)) is not None:
            return denied
        items = [b.to_dict(self._base(request)) for b in self.batches.values()][::-1]
        try:
            limit = max(1, min(1000, int(request.query.get("limit", "20"))))
        except ValueError:
            limit = 20
        after = request.query.get("after_id")
        if after is not None:
            ids = [item["id"] for item in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        page = items[:limit]
        return self.sim._reply(
            200,
            {
                "data": page,
                "has_more": len(items) > limit,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
            },
        )

    async def _get(self, request: web.Request) -> web.Response:
        self.calls["poll"] += 1
        if (denied := self._denied(request)) is not None:
            return denied
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return self.sim._refused(
                modes.anthropic_error(404, "not_found_error", "batch not found")
            )
        return self.sim._reply(200, batch.to_dict(self._base(request)))

    async def _results(self, request: web.Request) -> web.Response:
        self.calls["results"] += 1
        if (denied := self._denied(request)) is not None:
            return denied
        batch = self.batches.get(request.match_info["id"])
        if batch is None or batch.status != "ended":
            return self.sim._refused(
                modes.anthropic_error(404, "not_found_error", "no results for this batch yet")
            )
        return web.Response(
            body=b"".join(line + b"\n" for line in batch.results),
            content_type="application/binary",
        )

    async def _cancel(self, request: web.Request) -> web.Response:
        self.calls["cancel"] += 1
        if (denied := self._denied(request)) is not None:
            return denied
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return self.sim._refused(
                modes.anthropic_error(404, "not_found_error", "batch not found")
            )
        if batch.status == "in_progress":
            batch.status = "canceling"
            batch.cancel_at = time.time()
        return self.sim._reply(200, batch.to_dict(self._base(request)))


def _result(custom_id: str, result: dict[str, Any]) -> bytes:
    return orjson.dumps({"custom_id": custom_id, "result": result})


__all__ = ["MAX_REQUESTS", "MessageBatches"]
