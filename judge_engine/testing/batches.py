"""The simulator's Batch API: files and batches as OpenAI documents them, on loopback.

In: `POST /v1/files` (multipart: `purpose`, `file`), `GET /v1/files[/{id}[/content]]`,
`POST /v1/batches` (`input_file_id`, `endpoint`, `completion_window`, `metadata`),
`GET /v1/batches[/{id}]`, `POST /v1/batches/{id}/cancel`. Out: file and batch objects,
lists (`data`, `has_more`, `first_id`, `last_id`, newest first, `limit` and `after`),
and for each batch an output file and an error file of JSON lines (`id`, `custom_id`,
`response` with `status_code`, `request_id` and `body`, `error` with `code` and
`message`).

It refuses what OpenAI documents it refuses, with OpenAI's shapes. An upload over
`MAX_FILE_BYTES` is a 400. A batch's input file is validated as the documentation
says, and a file that breaks a rule makes the batch `failed` with `errors.data` items
(`code`, `message`, `param`, `line`): a line that is not a JSON object
(`invalid_json_line`), a `custom_id` seen before (`duplicate_custom_id`), a `url` other
than the batch's endpoint (`url_mismatch`), a `body.model` other than the first line's
("each input file can only include requests to a single model": `model_mismatch`), a
line without `custom_id`, `method` POST or a `body` (`invalid_request`), more than
`MAX_REQUESTS` lines (`too_many_tasks`), no line at all (`empty_file`); a batch that
would pass the enqueued-token limit of its model fails with `token_limit_exceeded`.
Then it is answered line by line over `batch_delay_s` by the simulator's own verdict
rule, with the faults asked for: a share of lines answered 500,
a share of malformed verdicts, expiry after a share of its lines (the rest in the error
file as `batch_expired`), a hint on polls (`Retry-After`). Every custom id of every
batch that passed validation is counted (`submitted`), so a test sees a request
submitted twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

if TYPE_CHECKING:
    from .sim import Simulator

ENDPOINT = "/v1/chat/completions"
#: The documented limits of one input file: requests, and bytes.
MAX_REQUESTS = 50_000
MAX_FILE_BYTES = 200 * 1024 * 1024
#: Statuses a batch no longer leaves.
TERMINAL = ("completed", "failed", "expired", "cancelled")


@dataclass
class _File:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
        }


@dataclass
class _Batch:
    id: str
    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: dict[str, str] | None
    created_at: int
    status: str = "validating"
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: dict[str, Any] | None = None
    times: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(
        default_factory=lambda: {"total": 0, "completed": 0, "failed": 0}
    )
    tokens: int = 0
    model: str = ""
    cancel: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": self.errors,
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            "in_progress_at": self.times.get("in_progress"),
            "expires_at": self.created_at + 86_400,
            "finalizing_at": self.times.get("finalizing"),
            "completed_at": self.times.get("completed"),
            "failed_at": self.times.get("failed"),
            "expired_at": self.times.get("expired"),
            "cancelling_at": self.times.get("cancelling"),
            "cancelled_at": self.times.get("cancelled"),
            "request_counts": dict(self.counts),
            "metadata": self.metadata,
        }


class BatchService:
    """Files and batches for one simulator (its config holds the batch options)."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.files: dict[str, _File] = {}
        self.batches: dict[str, _Batch] = {}
        #: Custom ids of every batch that passed validation: a second is a resubmission.
        self.submitted: Counter[str] = Counter()
        #: Custom ids answered with a well-formed verdict: a second was paid twice.
        self.answered: Counter[str] = Counter()
        #: Calls per route, for tests of polite polling.
        self.calls: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()
        #: Set when the held step (`batch_hold`) is reached, for a test to act then.
        self.holding = asyncio.Event()
        self._held = False
        self._release = asyncio.Event()

    def add_routes(self, app: web.Application) -> None:
        for prefix in ("/v1", ""):
            app.router.add_post(f"{prefix}/files", self._upload)
            app.router.add_get(f"{prefix}/files", self._list_files)
            app.router.add_get(f"{prefix}/files/{{id}}", self._file)
            app.router.add_get(f"{prefix}/files/{{id}}/content", self._content)
            app.router.add_post(f"{prefix}/batches", self._create)
            app.router.add_get(f"{prefix}/batches", self._list_batches)
            app.router.add_get(f"{prefix}/batches/{{id}}", self._batch)
            app.router.add_post(f"{prefix}/batches/{{id}}/cancel", self._cancel)

    async def stop(self) -> None:
        self._release.set()  # a held step lets go: the server can close
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def stats(self) -> dict[str, Any]:
        return {
            "batches": Counter(b.status for b in self.batches.values()),
            "batch_files": len(self.files),
            "submitted_requests": sum(self.submitted.values()),
            "submitted_twice": sum(1 for n in self.submitted.values() if n > 1),
            "answered_twice": sum(1 for n in self.answered.values() if n > 1),
            "calls": dict(self.calls),
        }

    # --- the routes ------------------------------------------------------------------

    async def _hold(self, step: str) -> None:
        """Wait `batch_hold_s` the first time `step` is the configured `batch_hold`."""
        config = self.sim.config
        if config.batch_hold == step and not self._held:
            self._held = True
            self.holding.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._release.wait(), config.batch_hold_s)

    def _refused(self, request: web.Request) -> web.Response | None:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return self.sim._error(401, "auth_error", "no API key passed")
        key = self.sim.config.api_key
        if key is not None and auth[7:] != key:
            return self.sim._error(401, "invalid_api_key", "the API key is not valid")
        return None

    async def _upload(self, request: web.Request) -> web.Response:
        self.calls["upload"] += 1
        if (refused := self._refused(request)) is not None:
            return refused
        await self._hold("upload")
        try:
            form = await request.post()
        except ValueError as exc:
            return self.sim._error(400, "invalid_request_error", f"not a form: {exc}")
        purpose = form.get("purpose")
        upload = form.get("file")
        if purpose != "batch" or not isinstance(upload, web.FileField):
            return self.sim._error(
                400, "invalid_request_error", "expected purpose=batch and a file part"
            )
        data = upload.file.read()
        if len(data) > MAX_FILE_BYTES:
            return self.sim._error(
                400,
                "invalid_request_error",
                f"File size {len(data)} exceeds the maximum of {MAX_FILE_BYTES} bytes "
                "for purpose 'batch'",
            )
        entry = _File(_new_id("file"), upload.filename or "upload.jsonl", "batch", data, _now())
        self.files[entry.id] = entry
        await self._hold("uploaded")
        return self.sim._reply(200, entry.to_dict())

    async def _list_files(self, request: web.Request) -> web.Response:
        self.calls["list_files"] += 1
        if (refused := self._refused(request)) is not None:
            return refused
        purpose = request.query.get("purpose")
        items = [f for f in self.files.values() if purpose is None or f.purpose == purpose]
        return self.sim._reply(200, _page([f.to_dict() for f in items], request, 10_000))

    async def _file(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        entry = self.files.get(request.match_info["id"])
        if entry is None:
            return self.sim._error(404, "not_found", "no such file")
        return self.sim._reply(200, entry.to_dict())

    async def _content(self, request: web.Request) -> web.Response:
        self.calls["content"] += 1
        if (refused := self._refused(request)) is not None:
            return refused
        entry = self.files.get(request.match_info["id"])
        if entry is None:
            return self.sim._error(404, "not_found", "no such file")
        await self._hold("content")
        return web.Response(body=entry.data, content_type="application/octet-stream")

    async def _create(self, request: web.Request) -> web.Response:
        self.calls["create"] += 1
        if (refused := self._refused(request)) is not None:
            return refused
        try:
            data = orjson.loads(await request.read())
            file_id = data["input_file_id"]
            endpoint = data["endpoint"]
            window = data["completion_window"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return self.sim._error(400, "invalid_request_error", "expected a batch body")
        if endpoint != ENDPOINT or window != "24h":
            return self.sim._error(400, "invalid_request_error", "unsupported endpoint or window")
        if file_id not in self.files:
            return self.sim._error(400, "invalid_request_error", f"no file {file_id}")
        metadata = data.get("metadata")
        if metadata is not None and (
            not isinstance(metadata, dict)
            or len(metadata) > 16
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
        ):
            return self.sim._error(400, "invalid_request_error", "bad metadata")
        batch = _Batch(_new_id("batch"), file_id, endpoint, window, metadata, _now())
        self.batches[batch.id] = batch
        task = asyncio.get_running_loop().create_task(self._process(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        await self._hold("created")
        return self.sim._reply(200, batch.to_dict())

    async def _list_batches(self, request: web.Request) -> web.Response:
        self.calls["list_batches"] += 1
        if (refused := self._refused(request)) is not None:
            return refused
        items = [b.to_dict() for b in self.batches.values()]
        return self.sim._reply(200, _page(items, request, 100))

    async def _batch(self, request: web.Request) -> web.Response:
        self.calls["poll"] += 1
        if (refused := self._refused(request)) is not None:
            return refused
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return self.sim._error(404, "not_found", "no such batch")
        hint = self.sim.config.batch_poll_hint_s
        headers = {"Retry-After": f"{hint:g}"} if hint and batch.status not in TERMINAL else {}
        return self.sim._reply(200, batch.to_dict(), headers)

    async def _cancel(self, request: web.Request) -> web.Response:
        self.calls["cancel"] += 1
        if (refused := self._refused(request)) is not None:
            return refused
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return self.sim._error(404, "not_found", "no such batch")
        if batch.status not in TERMINAL:
            batch.cancel = True
            batch.status = "cancelling"
            batch.times["cancelling"] = _now()
        return self.sim._reply(200, batch.to_dict())

    # --- processing ---------------------------------------------------------------------

    def _enqueued(self, other: _Batch) -> int:
        """Tokens other unfinished batches of the same model hold (the limit is per
        model, as OpenAI's is)."""
        return sum(
            b.tokens
            for b in self.batches.values()
            if b is not other
            and b.model == other.model
            and b.status in ("validating", "in_progress", "finalizing")
        )

    async def _process(self, batch: _Batch) -> None:
        config = self.sim.config
        step = max(0.0, config.batch_delay_s) / 4
        await asyncio.sleep(step)
        lines, problem = _validate(self.files[batch.input_file_id].data, batch.endpoint)
        first = batch is next(iter(self.batches.values()))
        if problem is None and first and config.batch_fail_code:
            problem = _problem(None, f"injected failure: {config.batch_fail_code}")
            problem["code"] = config.batch_fail_code
        if problem is not None:
            batch.errors = {"object": "list", "data": [problem]}
            batch.status = "failed"
            batch.times["failed"] = _now()
            return
        batch.counts["total"] = len(lines)
        batch.model = str(lines[0]["body"]["model"])
        batch.tokens = sum(len(orjson.dumps(line["body"])) // 4 for line in lines)
        limit = config.batch_token_limit
        if limit is not None and self._enqueued(batch) + batch.tokens > limit:
            model = str(lines[0]["body"].get("model", "the model")) if lines else "the model"
            batch.errors = {
                "object": "list",
                "data": [
                    {
                        "code": "token_limit_exceeded",
                        "message": f"Enqueued token limit reached for {model} in organization "
                        f"sim. Limit: {limit:,} enqueued tokens. Please try submitting "
                        "fewer tokens, or wait for other batches to finish.",
                        "param": None,
                        "line": None,
                    }
                ],
            }
            batch.status = "failed"
            batch.times["failed"] = _now()
            return
        for line in lines:
            self.submitted[line["custom_id"]] += 1
        batch.status = "in_progress"
        batch.times["in_progress"] = _now()
        outputs: list[bytes] = []
        errors: list[bytes] = []
        stop_after = (
            int(len(lines) * config.batch_expire_after)
            if config.batch_expire_after is not None
            and (first or not config.batch_expire_first_only)
            else None
        )
        pause = (2 * step) / max(1, len(lines))
        ending = "completed"
        for index, line in enumerate(lines):
            if batch.cancel or (stop_after is not None and index >= stop_after):
                ending = "cancelled" if batch.cancel else "expired"
                code = "batch_cancelled" if batch.cancel else "batch_expired"
                for rest in lines[index:]:
                    errors.append(
                        _line(rest["custom_id"], None, code, f"this request was {ending}")
                    )
                    batch.counts["failed"] += 1
                break
            answered, failed = self._answer(line)
            (errors if failed else outputs).append(answered)
            batch.counts["failed" if failed else "completed"] += 1
            if pause:
                await asyncio.sleep(pause)
        if ending == "completed":
            batch.status = "finalizing"
            batch.times["finalizing"] = _now()
            await asyncio.sleep(step)
        batch.output_file_id = self._store(batch, "output", outputs)
        batch.error_file_id = self._store(batch, "error", errors)
        batch.status = ending
        batch.times[ending] = _now()

    def _answer(self, line: dict[str, Any]) -> tuple[bytes, bool]:
        """One line's output line, and whether it belongs in the error file."""
        config = self.sim.config
        rng = self.sim._rng
        body = line["body"]
        custom_id = line["custom_id"]
        model, messages = body.get("model"), body.get("messages")
        if not isinstance(model, str) or not isinstance(messages, list):
            return _line(custom_id, 400, None, "expected a chat-completions body"), True
        if rng.random() < config.batch_fail_rate:
            return _line(custom_id, 500, None, "injected server error"), True
        fault = "malformed" if rng.random() < config.batch_malformed_rate else None
        self.sim.models[model] += 1
        payload, _ = self.sim.completion(
            model,
            messages,
            fault,
            custom_id,
            max_output=body.get("max_tokens") or body.get("max_completion_tokens"),
        )
        if fault is None:
            self.answered[custom_id] += 1
        response = {"status_code": 200, "request_id": _new_id("req"), "body": payload}
        return orjson.dumps(
            {
                "id": _new_id("batch_req"),
                "custom_id": custom_id,
                "response": response,
                "error": None,
            }
        ), False

    def _store(self, batch: _Batch, kind: str, lines: list[bytes]) -> str | None:
        if not lines:
            return None
        data = b"".join(line + b"\n" for line in lines)
        entry = _File(_new_id("file"), f"{batch.id}_{kind}.jsonl", f"batch_{kind}", data, _now())
        self.files[entry.id] = entry
        return entry.id


def _validate(data: bytes, endpoint: str) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The lines of an input file, or the first problem (as a batch error), by the
    documented rules (the module docstring)."""
    lines: list[dict[str, Any]] = []
    seen: set[str] = set()
    model: str | None = None
    for number, raw in enumerate(data.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            line = None
        if not isinstance(line, dict):
            return [], _problem(number, "This line is not parseable as valid JSON.",
                                "invalid_json_line")  # fmt: skip
        body = line.get("body")
        if (
            not isinstance(line.get("custom_id"), str)
            or line.get("method") != "POST"
            or not isinstance(body, dict)
        ):
            return [], _problem(number, "a line needs custom_id, method POST and a body")
        if line.get("url") != endpoint:
            return [], _problem(
                number,
                f"The URL provided for this request does not match the batch endpoint {endpoint}.",
                "url_mismatch",
                "url",
            )
        if line["custom_id"] in seen:
            return [], _problem(
                number,
                f"The custom_id {line['custom_id']!r} is already used in this file.",
                "duplicate_custom_id",
                "custom_id",
            )
        if not isinstance(body.get("model"), str):
            return [], _problem(number, "the body names no model", param="body.model")
        if model is None:
            model = body["model"]
        elif body["model"] != model:
            return [], _problem(
                number,
                f"The provided model {body['model']!r} does not match the model {model!r} "
                "of the file's other requests: each input file can only include requests "
                "to a single model.",
                "model_mismatch",
                "body.model",
            )
        seen.add(line["custom_id"])
        lines.append(line)
        if len(lines) > MAX_REQUESTS:
            return [], _problem(
                None, f"The file holds more than {MAX_REQUESTS:,} requests.", "too_many_tasks"
            )
    if not lines:
        return [], _problem(None, "The input file holds no request.", "empty_file")
    return lines, None


def _problem(
    line: int | None, message: str, code: str = "invalid_request", param: str | None = None
) -> dict[str, Any]:
    return {"code": code, "message": message, "param": param, "line": line}


def _line(custom_id: str, status: int | None, code: str | None, message: str) -> bytes:
    """An error-file line: an HTTP error (`status`) or a non-HTTP one (`code`)."""
    if status is not None:
        body = {"error": {"message": message, "type": "server_error", "code": status}}
        response = {"status_code": status, "request_id": _new_id("req"), "body": body}
        return orjson.dumps(
            {
                "id": _new_id("batch_req"),
                "custom_id": custom_id,
                "response": response,
                "error": None,
            }
        )
    error = {"code": code, "message": message}
    return orjson.dumps(
        {"id": _new_id("batch_req"), "custom_id": custom_id, "response": None, "error": error}
    )


def _page(items: list[dict[str, Any]], request: web.Request, most: int) -> dict[str, Any]:
    """A list page as OpenAI lists: newest first (`items` come oldest first), `limit`
    (1 to `most`), `after` an id."""
    items = items[::-1]
    try:
        limit = max(1, min(most, int(request.query.get("limit", "20"))))
    except ValueError:
        limit = 20
    after = request.query.get("after")
    if after is not None:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    page = items[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(items) > limit,
    }


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def _now() -> int:
    return int(time.time())
