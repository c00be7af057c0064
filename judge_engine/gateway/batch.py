"""The Batch API as a transport: requests go out in batches, answers come back per request.

In: request bodies from the asker, each named by its journal key
(`X-Judge-Engine-Key`), exactly as the live gateway takes them. Out: for each, the
reply its batch gave it (a `Reply`, parsed by the asker like a live one), or a
`GatewayError` by the live rules (429 and 5xx lines, expired and cancelled lines may
pass on another try; other 4xx lines and failed batches may not). Between, the
documented OpenAI Batch API: `POST /files` (a JSONL file, purpose `batch`, one line
`{"custom_id": key, "method": "POST", "url": "/v1/chat/completions", "body"}` per
request), `POST /batches`, `GET /batches/{id}` until it ends, `GET /files/{id}/content`
of its output and error files; `GET /files` and `GET /batches` to find what a killed
run left; `POST /batches/{id}/cancel` (`judge-engine batches --cancel`).

Exactly once: every submission is written to `OUT/batches.jsonl` (fsync'd) before it
is acted on: first its keys and the name of its file, then the file's id once uploaded,
then the batch's id once created. The file name and the batch's metadata carry the
run's identity and the submission's tag, so a run killed between an upload or a create
and its record finds them by listing, and never uploads or creates twice. A key that a
submission carries is never put in another, unless that submission's answer for it
was a failure another try may pass (then it goes in a later batch, or live with
`fallback`), or the submission never reached the server.

One model per file and per batch, as the documentation requires ("each input file can
only include requests to a single model"): requests wait in a queue per model they
name (each judge, each fallback), `linger_s` for company, then go in a batch of at most
`batch_size` requests and `MAX_FILE_BYTES` of that model alone. A batch refused for
the enqueued-token limit (a limit per model) waits for another batch of the same model
to end and is created again from the same file. Polls back off from `poll_min_s` to
`poll_max_s` and honour the server's Retry-After. With `no_wait`, requests end as soon
as they are submitted (kind "submitted"): the same command collects later.

Downloads and the server's memory are not trusted blindly: an output or error file is
read under an idle timeout (not the per-request one: a large file over a slow link is
collected) and the size caps, and a dropped, short or stalled download is tried again
with a backoff; a 404 on a poll or a file is tried again for `not_found_s` (a new batch
may not be visible yet, a file may be replicating) before the listing is consulted and
the run says exactly what is missing. A completed batch whose output cannot be read
keeps its keys (the same command tries again; nothing is paid twice) until the user
gives it up (`judge-engine batches OUT --forget BATCH`). An output that answers one
`custom_id` twice counts identical lines once; different answers fail that request
(`conflicting_answers`), asked again by the rule for failed lines.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import anyio
import anyio.abc
import orjson

from ..files import open_state
from ..redact import redact_text
from .client import (
    RETRYABLE_STATUS,
    GatewayStats,
    Reply,
    _error_message,
    _read_capped,
    body_chunks,
)
from .errors import GatewayError
from .hints import MAX_HINT_S, RateInfo, retry_after
from .transport import Transport
from .urls import endpoint_url, safe_url

#: The endpoint every line calls, as the documentation spells it.
ENDPOINT = "/v1/chat/completions"
#: The documented limits of one batch: requests, and bytes of its file (the lower of
#: the documented 100 MB and 200 MB, so every provider takes it).
MAX_REQUESTS = 50_000
MAX_FILE_BYTES = 100 * 1024 * 1024
#: The run's log of submissions, in OUT.
LOG = "batches.jsonl"
#: Statuses a batch does not leave.
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
#: Output and error files are read a line at a time: at most this much a line (one
#: reply), and this much in all.
_MAX_LINE = 16 * 1024 * 1024
_MAX_FILE = 2 * 1024 * 1024 * 1024
#: Statuses of a batch holding enqueued tokens.
_ENQUEUED = frozenset({"validating", "in_progress", "finalizing"})
#: Refusals for the enqueued-token limit, with no other batch of the run in the way,
#: after which a batch is taken never to fit.
TOKEN_TRIES = 5
#: Pages of `GET /batches` looked through for a submission a kill left unrecorded.
_LIST_PAGES = 50
#: Tries of one file download (a dropped, short or stalled transfer is tried again).
DOWNLOAD_TRIES = 6


@dataclass(frozen=True)
class BatchOptions:
    """How requests are batched and batches followed."""

    batch_size: int = 2_000
    linger_s: float = 2.0
    #: The longest a request waits for company before its batch goes, however many
    #: keep arriving.
    max_linger_s: float = 30.0
    poll_min_s: float = 1.0
    poll_max_s: float = 10.0
    #: The longest wait before creating again a batch refused for the enqueued-token
    #: limit (it goes again as soon as another batch of the run ends).
    token_wait_s: float = 30.0
    completion_window: str = "24h"
    no_wait: bool = False
    #: How long a 404 on a poll or a file is taken for a server that does not see it
    #: yet (tried again with a backoff), before the listing is consulted.
    not_found_s: float = 120.0
    #: A file download ends when no byte arrives for this long (then it is tried again).
    download_idle_s: float = 60.0
    #: The first wait before a download or a 404 is tried again (it doubles, to 30 s).
    retry_base_s: float = 1.0


@dataclass
class _Waiter:
    """One request waiting for its batch's answer."""

    body: bytes = b""
    #: The model the request names: its batch holds requests to that model only.
    model: str = ""
    done: anyio.Event = field(default_factory=anyio.Event)
    reply: Reply | None = None
    error: GatewayError | None = None

    def settle(self, outcome: Reply | GatewayError) -> None:
        if self.done.is_set():
            return
        if isinstance(outcome, Reply):
            self.reply = outcome
        else:
            self.error = outcome
        self.done.set()


@dataclass
class _Queue:
    """Requests of one model waiting for a batch."""

    items: dict[str, _Waiter] = field(default_factory=dict)
    #: Bytes of their bodies.
    size: int = 0
    #: When its oldest request began to wait.
    oldest: float = 0.0


def _model_of(body: bytes) -> str:
    """The model a request body names (for a caller that did not say)."""
    try:
        value = orjson.loads(body).get("model")
    except (orjson.JSONDecodeError, AttributeError):
        return ""
    return value if isinstance(value, str) else ""


@dataclass
class Submission:
    """One batch submission: its keys, and how far it got (from the log or this run)."""

    tag: str
    keys: list[str]
    filename: str
    planned_at: float
    #: The one model its requests name ("" in logs written before it was recorded).
    model: str = ""
    file_id: str | None = None
    batch_id: str | None = None
    #: The batch's last known state, for the progress line.
    status: str = "planned"
    counts: dict[str, int] = field(default_factory=dict)
    #: Answers not yet taken, by key.
    answers: dict[str, Reply | GatewayError] = field(default_factory=dict)
    #: Requests of this run waiting for it, by key.
    waiters: dict[str, _Waiter] = field(default_factory=dict)
    #: Set once its answers are in `answers` (or it is known never to come).
    ended: anyio.Event = field(default_factory=anyio.Event)
    #: Set once it is found at the server (its batch id known) or known void.
    located: anyio.Event = field(default_factory=anyio.Event)
    #: Whether the server never got it (a kill before the upload): its keys are free.
    void: bool = False
    #: Whether an earlier run made it: its failures were that run's to give (asked
    #: again now, the key goes in a new batch).
    recovered: bool = False
    #: Whether its keys stay its own after its answers were given: it is still at the
    #: server (--no-wait, or polls that failed), so asking again means following it.
    kept: bool = False
    following: bool = False
    submitted_at: float = field(default_factory=time.monotonic)


class SubmissionLog:
    """`OUT/batches.jsonl`: every submission's keys, file and batch, made durable before
    they are acted on. The first line names the run (the identity the server's file
    names and batch metadata carry)."""

    def __init__(self, out_dir: Path, *, read_only: bool = False, name: str = LOG) -> None:
        self.path = out_dir / name
        self.run_id = ""
        self.submissions: dict[str, Submission] = {}
        self._load()
        self._handle = None if read_only else open_state(self.path, "ab")
        if not self.run_id and not read_only:
            self.run_id = secrets.token_hex(6)
            self._write({"event": "run", "run": self.run_id})

    def _load(self) -> None:
        if not self.path.exists():
            return
        with open(self.path, "rb") as handle:
            for line in handle:
                if not line.endswith(b"\n"):
                    break  # a torn last line: the act it announced did not follow
                with contextlib.suppress(orjson.JSONDecodeError, KeyError, TypeError):
                    self._apply(orjson.loads(line))

    def _apply(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "run":
            self.run_id = self.run_id or str(event["run"])
            return
        tag = str(event["tag"])
        if kind == "planned":
            self.submissions[tag] = Submission(
                tag,
                [str(k) for k in event["keys"]],
                str(event["file"]),
                float(event["at"]),
                model=str(event.get("model") or ""),
                recovered=True,
            )
            return
        submission = self.submissions.get(tag)
        if submission is None:
            return
        if kind == "uploaded":
            submission.file_id = str(event["file_id"])
        elif kind == "created":
            submission.batch_id = str(event["batch_id"])
        elif kind in ("void", "lost"):  # never reached the server, or it knows it not
            submission.void = True

    def _write(self, event: dict[str, Any]) -> None:
        assert self._handle is not None, "a read-only log"
        self._handle.write(orjson.dumps(event) + b"\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def plan(self, keys: list[str], model: str = "") -> Submission:
        """A new submission of these keys (all to `model`), recorded before anything
        is uploaded."""
        tag = f"{self.run_id}-{len(self.submissions) + 1:06d}"
        submission = Submission(tag, keys, f"judge-engine-{tag}.jsonl", time.time(), model)
        self._write(
            {
                "event": "planned",
                "tag": tag,
                "model": model,
                "keys": keys,
                "file": submission.filename,
                "at": submission.planned_at,
            }
        )
        self.submissions[tag] = submission
        return submission

    def record(self, submission: Submission, event: str, **values: Any) -> None:
        self._write({"event": event, "tag": submission.tag, **values})
        self._apply({"event": event, "tag": submission.tag, **values})

    def latest(self) -> dict[str, Submission]:
        """Each key's latest submission that reached the server (or may have)."""
        owner: dict[str, Submission] = {}
        for submission in self.submissions.values():
            if submission.void:
                continue
            for key in submission.keys:
                owner[key] = submission
        return owner

    def close(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.close()


@dataclass(frozen=True)
class BatchState:
    """One submission of a results folder, as the server sees it now."""

    tag: str
    requests: int
    batch_id: str | None
    #: The server's status; "not submitted" (never uploaded, or uploaded and never
    #: made a batch) or "unknown" (the server could not say: `problem`).
    status: str
    counts: Mapping[str, int]
    problem: str = ""
    #: Whether `--cancel` asked the server to cancel it now.
    cancelled: bool = False


def forget(out_dir: Path, batch_id: str, name: str = LOG) -> int:
    """Give up a batch whose answers cannot be collected (its output file cannot be
    read): the log records it lost, so the next run submits its requests anew (and pays
    for them again). Returns how many requests it held; `KeyError` if the log names no
    such batch."""
    log = SubmissionLog(out_dir, name=name)
    try:
        for submission in log.submissions.values():
            if submission.batch_id == batch_id and not submission.void:
                log.record(submission, "lost")
                return len(submission.keys)
    finally:
        log.close()
    raise KeyError(batch_id)


async def batch_states(
    out_dir: Path,
    base_url: str,
    api_key: str | None,
    *,
    cancel: bool = False,
    timeout_s: float = 60.0,
    log_name: str = LOG,
    batches_path: str = "/batches",
    auth: Mapping[str, str] | None = None,
) -> list[BatchState]:
    """The submissions a log records (`OUT/batches.jsonl`; Anthropic's with its
    `log_name`, `batches_path` and `auth`), each with the server's state of its batch
    (latest first); with `cancel`, the batches still running are cancelled. Raises
    `GatewayError` for a key the server refuses or a server that redirects."""
    log = SubmissionLog(out_dir, read_only=True, name=log_name)
    states: list[BatchState] = []
    async with BatchClient(base_url, api_key, timeout_s=timeout_s, auth=auth) as client:
        for submission in reversed(list(log.submissions.values())):
            if submission.batch_id is None:
                status = (
                    "void"
                    if submission.void
                    else ("uploaded" if submission.file_id else "not submitted")
                )
                states.append(BatchState(submission.tag, len(submission.keys), None, status, {}))
                continue
            path = f"{batches_path}/{submission.batch_id}"
            try:
                batch = _object((await client.call("GET", path))[0], "batch")
                if "processing_status" in batch:  # Anthropic's: its state as OpenAI's words
                    _anthropic_state(submission, batch)
                    batch = {"status": submission.status, "request_counts": submission.counts}
                cancelled = False
                if cancel and batch.get("status") not in TERMINAL | {"cancelling"}:
                    batch = _object((await client.call("POST", f"{path}/cancel"))[0], "batch")
                    cancelled = True
            except GatewayError as error:
                if error.kind in ("auth", "redirect"):
                    raise
                states.append(
                    BatchState(
                        submission.tag,
                        len(submission.keys),
                        submission.batch_id,
                        "unknown",
                        {},
                        problem=client.scrub(str(error)),
                    )
                )
                continue
            counts = batch.get("request_counts")
            states.append(
                BatchState(
                    submission.tag,
                    len(submission.keys),
                    submission.batch_id,
                    str(batch.get("status", "unknown"))[:40],
                    {k: v for k, v in counts.items() if isinstance(v, int)}
                    if isinstance(counts, dict)
                    else {},
                    cancelled=cancelled,
                )
            )
    return states


def _anthropic_state(submission: Submission, batch: Mapping[str, Any]) -> None:
    from .anthropic_batch import note  # a protocol of its own, beside this one

    note(submission, batch)


class BatchClient:
    """The Batch API's calls over one aiohttp session, classified as the gateway does:
    401 (auth) and redirects stop the run; 429 and 5xx are retried here, with the
    server's hint; other 4xx are the caller's error."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        timeout_s: float = 120.0,
        auth: Mapping[str, str] | None = None,
    ) -> None:
        """`auth`: the headers that carry the key, where the provider does not take a
        bearer token (Anthropic's `x-api-key` and `anthropic-version`)."""
        self._auth = dict(auth) if auth is not None else None
        chat, self._basic_auth = endpoint_url(base_url)
        self.base = chat.with_path(chat.path[: -len("/chat/completions")])
        self.printable_url = safe_url(base_url)
        self._api_key = api_key or ""
        self._timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None
        self._rng = random.Random()
        self.calls: Counter[str] = Counter()

    async def __aenter__(self) -> BatchClient:
        headers = {"User-Agent": "judge-engine", "Accept-Encoding": "gzip, deflate"}
        if self._auth is not None:
            headers.update(self._auth)
        elif self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        elif self._basic_auth is not None:
            headers["Authorization"] = self._basic_auth
        self._session = aiohttp.ClientSession(
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=self._timeout_s),
            raise_for_status=False,
            auto_decompress=False,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def scrub(self, text: str) -> str:
        if self._api_key:
            text = text.replace(self._api_key, "[REDACTED]")
        return redact_text(text)

    def _url(self, path: str) -> str:
        return str(self.base.with_path(self.base.path.rstrip("/") + path))

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: Any = None,
        query: Mapping[str, str] | None = None,
        tries: int = 6,
        content_type: str | None = None,
    ) -> tuple[Any, float | None]:
        """One API call: its JSON answer and the server's retry hint (for polls)."""
        headers = {"Content-Type": content_type} if content_type else None
        assert self._session is not None, "use the client inside 'async with'"
        name = path.split("/")[1] if "/" in path else path
        for attempt in range(1, tries + 1):
            self.calls[f"{method} {name}"] += 1
            hint: float | None = None
            try:
                async with self._session.request(
                    method,
                    self._url(path),
                    json=json,
                    data=data() if callable(data) else data,
                    params=query,
                    headers=headers,
                    allow_redirects=False,
                ) as response:
                    status = response.status
                    raw = await _read_capped(response, status)
                    hint = retry_after(response.headers, raw[:2000].decode("utf-8", "replace"))
            except (TimeoutError, aiohttp.ClientError) as exc:
                error = GatewayError(
                    "connection", self.scrub(f"{type(exc).__name__}: {exc}"), retryable=True
                )
            else:
                if status == 200:
                    try:
                        return orjson.loads(raw), hint
                    except orjson.JSONDecodeError:
                        error = GatewayError(
                            "bad_response",
                            f"{method} {path}: not JSON",
                            status=status,
                            retryable=True,
                        )
                else:
                    message = self.scrub(_error_message(raw[:2000].decode("utf-8", "replace")))
                    if status == 401:
                        raise GatewayError(
                            "auth", message or "unauthorized", status=401, retryable=False
                        )
                    if 300 <= status < 400:
                        raise GatewayError(
                            "redirect",
                            f"{method} {path} was redirected ({status}); requests "
                            "are not sent on to another address",
                            status=status,
                            retryable=False,
                        )
                    retryable = status >= 500 or status in RETRYABLE_STATUS
                    error = GatewayError(
                        "server_error" if status >= 500 else "client_error",
                        f"{method} {path}: {message or status}",
                        status=status,
                        retryable=retryable,
                        retry_after_s=hint,
                    )
                    if not retryable:
                        raise error
            if attempt == tries:
                raise error
            wait = error.retry_after_s or min(30.0, 0.5 * 2 ** (attempt - 1))
            await anyio.sleep(min(wait, MAX_HINT_S) * (0.5 + 0.5 * self._rng.random()))
        raise AssertionError("unreachable")

    async def upload(self, filename: str, content: bytes) -> dict[str, Any]:
        def form() -> aiohttp.FormData:
            data = aiohttp.FormData()
            data.add_field("purpose", "batch")
            data.add_field("file", content, filename=filename, content_type="application/jsonl")
            return data

        answer, _ = await self.call("POST", "/files", data=form)
        return _object(answer, "file")

    async def listing(
        self, path: str, query: Mapping[str, str], *, after: str = "after"
    ) -> AsyncIterator[dict[str, Any]]:
        """The items of a list endpoint, newest first, page after page (`after`: the
        name of the cursor parameter)."""
        cursor: str | None = None
        for _ in range(_LIST_PAGES):
            params = dict(query) | ({after: cursor} if cursor else {})
            answer, _ = await self.call("GET", path, query=params)
            items = answer.get("data") if isinstance(answer, dict) else None
            if not isinstance(items, list):
                return
            for item in items:
                if isinstance(item, dict):
                    yield item
            last = items[-1].get("id") if items and isinstance(items[-1], dict) else None
            if not answer.get("has_more") or not isinstance(last, str):
                return
            cursor = last

    async def lines(
        self, file_id: str, *, idle_s: float = 60.0, path: str | None = None
    ) -> AsyncIterator[tuple[bytes, dict[str, Any]]]:
        """The JSON lines of a file's content, each with its bytes, a line at a time
        (bounded by `_MAX_LINE` and `_MAX_FILE`). The download may take as long as it
        needs while bytes keep arriving: it fails (retryably) when none arrives for
        `idle_s`, or the connection drops, or the body ends short of its length."""
        assert self._session is not None
        self.calls["GET content"] += 1
        path = path or f"/files/{file_id}/content"
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30.0, sock_read=idle_s)
        try:
            async with self._session.get(
                self._url(path), allow_redirects=False, timeout=timeout
            ) as response:
                if 300 <= response.status < 400:
                    raise GatewayError(
                        "redirect",
                        f"GET {path} was redirected ({response.status}); requests are not "
                        "sent on to another address",
                        status=response.status,
                        retryable=False,
                    )
                if response.status != 200:
                    raw = await _read_capped(response, response.status)
                    message = self.scrub(_error_message(raw[:2000].decode("utf-8", "replace")))
                    raise GatewayError(
                        "auth" if response.status == 401 else "download_failed",
                        f"GET {path} answered {response.status}: {message[:200]}",
                        status=response.status,
                        retryable=response.status != 401,
                    )
                buffer = b""
                async for chunk in body_chunks(response, response.status, _MAX_FILE):
                    buffer += chunk
                    *complete, buffer = buffer.split(b"\n")
                    if len(buffer) > _MAX_LINE:
                        raise GatewayError(
                            "bad_response", "an output line over 16 MB", retryable=True
                        )
                    for line in complete:
                        parsed = _json_line(line)
                        if parsed is not None:
                            yield line, parsed
                parsed = _json_line(buffer)
                if parsed is not None:
                    yield buffer, parsed
        except (TimeoutError, aiohttp.ClientError) as exc:
            what = (
                f"no byte for {idle_s:g} s"
                if isinstance(exc, TimeoutError)
                else self.scrub(f"{type(exc).__name__}: {exc}")[:200]
            )
            raise GatewayError(
                "download_failed", f"GET {path} broke off: {what}", retryable=True
            ) from None


def _json_line(line: bytes) -> dict[str, Any] | None:
    if not line.strip():
        return None
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _object(answer: Any, kind: str) -> dict[str, Any]:
    if not isinstance(answer, dict) or not isinstance(answer.get("id"), str):
        raise GatewayError("bad_response", f"the answer is not a {kind} object", retryable=True)
    return answer


class BatchTransport:
    """Requests through the Batch API (see the module docstring); a `Transport`."""

    #: The log of this transport's submissions in OUT, and where batches live.
    LOG_NAME = LOG
    BATCHES = "/batches"

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        out_dir: Path,
        options: BatchOptions | None = None,
        *,
        fallback: Transport | None = None,
        timeout_s: float = 120.0,
        auth: Mapping[str, str] | None = None,
    ) -> None:
        self.options = options or BatchOptions()
        self.client = BatchClient(base_url, api_key, timeout_s=timeout_s, auth=auth)
        self.printable_url = self.client.printable_url
        self.stats = GatewayStats()
        self._out = out_dir
        self._fallback = fallback
        self._log: SubmissionLog | None = None
        self._owner: dict[str, Submission] = {}
        #: Requests waiting for a batch, per model they name.
        self._queues: dict[str, _Queue] = {}
        self._arrived = anyio.Event()
        self._stopped = False
        #: Keys whose batch answer was a failure another try may pass (`fallback`).
        self._retried: set[str] = set()
        self._tasks: anyio.abc.TaskGroup | None = None
        self._rng = random.Random()
        #: Set (and renewed) whenever a submission of this run ends: its enqueued
        #: tokens are free again.
        self._freed = anyio.Event()

    # --- the Transport protocol ------------------------------------------------------

    @property
    def in_flight(self) -> int:
        waiting = sum(len(s.waiters) for s in self._active())
        return waiting + sum(len(q.items) for q in self._queues.values())

    async def send(
        self,
        body: bytes,
        estimated_tokens: int,
        extra_headers: Mapping[str, str] | None = None,
        *,
        model: str | None = None,
    ) -> Reply:
        if self._stopped:
            raise GatewayError("stopped", "the run is stopping", retryable=False)
        key = (extra_headers or {}).get("X-Judge-Engine-Key")
        if not key:
            raise GatewayError("client_error", "a batch request needs its key", retryable=False)
        if self._fallback is not None and key in self._retried:
            return await self._fallback.send(body, estimated_tokens, extra_headers, model=model)
        waiter = _Waiter(body, model or _model_of(body))
        submission = self._owner.get(key)
        if submission is not None:
            await self._recovered(submission)
            if not submission.void:
                return await self._await(submission, key, waiter)
        self._queue(key, waiter)
        return await self._outcome(key, waiter)

    def _queue(self, key: str, waiter: _Waiter) -> None:
        """The request waits for the next batch of its model."""
        queue = self._queues.setdefault(waiter.model, _Queue())
        if not queue.items:
            queue.oldest = time.monotonic()
        queue.items[key] = waiter
        queue.size += len(waiter.body)
        self._arrived.set()

    def backoff(self, attempt: int, hint_s: float | None) -> float:
        """A batch retry waits little: it joins a later batch anyway."""
        return min(hint_s or 0.5, MAX_HINT_S)

    def status(self) -> str:
        active = self._active()
        waiting = sum(len(q.items) for q in self._queues.values())
        if not active:
            return f"{waiting} waiting for a batch" if waiting else ""
        states = Counter(s.status for s in active)
        done = sum(s.counts.get("completed", 0) + s.counts.get("failed", 0) for s in active)
        total = sum(s.counts.get("total", 0) or len(s.keys) for s in active)
        shown = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
        return f"batches: {shown}; {done:,}/{total:,} answered"

    def stop_sending(self) -> None:
        """Submit nothing more; every waiting request ends ("stopped"). Batches already
        submitted go on at the server: the same command collects them."""
        self._stopped = True
        stopped = GatewayError("stopped", "the run is stopping", retryable=False)
        for queue in self._queues.values():
            for waiter in queue.items.values():
                waiter.settle(stopped)
        for submission in self._active():
            for waiter in submission.waiters.values():
                waiter.settle(stopped)
        self._arrived.set()

    # --- its life ------------------------------------------------------------------------

    async def __aenter__(self) -> BatchTransport:
        if self._fallback is not None:
            await self._fallback.__aenter__()  # type: ignore[attr-defined]
        await self.client.__aenter__()
        self._log = SubmissionLog(self._out, name=self.LOG_NAME)
        self._owner = self._log.latest()
        self._tasks = anyio.create_task_group()
        await self._tasks.__aenter__()
        self._tasks.start_soon(self._flusher)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._tasks is not None
        self._tasks.cancel_scope.cancel()
        with contextlib.suppress(BaseException):
            await self._tasks.__aexit__(None, None, None)
        if self._log is not None:
            self._log.close()
        await self.client.__aexit__()
        if self._fallback is not None:
            await self._fallback.__aexit__(kind, value, traceback)  # type: ignore[attr-defined]

    def submissions(self) -> list[Submission]:
        """This OUT's submissions, oldest first (for `judge-engine batches`)."""
        return list(self._log.submissions.values()) if self._log else []

    def _active(self) -> list[Submission]:
        return [s for s in self._owner_submissions() if s.following and not s.ended.is_set()]

    def _owner_submissions(self) -> list[Submission]:
        return list({id(s): s for s in self._owner.values()}.values())

    # --- submitting ----------------------------------------------------------------------

    async def _flusher(self) -> None:
        """Put waiting requests in batches, one model per batch: a model's queue goes
        when it fills a batch or its oldest request waited `max_linger_s`; every queue
        goes when no request arrived for `linger_s`."""
        options = self.options
        limit = min(options.batch_size, MAX_REQUESTS)
        while not self._stopped:
            if not any(q.items for q in self._queues.values()):
                await self._arrived.wait()
                self._arrived = anyio.Event()
                continue
            now = time.monotonic()
            ready = [
                model
                for model, queue in self._queues.items()
                if queue.items
                and (
                    len(queue.items) >= limit
                    or queue.size >= MAX_FILE_BYTES
                    or now - queue.oldest >= options.max_linger_s
                )
            ]
            if not ready:
                with anyio.move_on_after(options.linger_s):
                    await self._arrived.wait()
                    self._arrived = anyio.Event()
                    continue  # more came: wait for company again (or a full batch)
                ready = [model for model, queue in self._queues.items() if queue.items]
            for model in ready:
                batch = self._take(model, limit)  # requests stopped meanwhile are left out
                if batch:
                    assert self._tasks is not None
                    self._tasks.start_soon(self._submit, model, batch)

    def _take(self, model: str, limit: int) -> dict[str, _Waiter]:
        """Waiting requests of one model for one batch: at most `limit`, and within
        the byte limit."""
        queue = self._queues[model]
        taken: dict[str, _Waiter] = {}
        size = 0
        for key in list(queue.items):
            waiter = queue.items[key]
            line = len(waiter.body) + len(key) + 80
            if taken and (len(taken) >= limit or size + line > MAX_FILE_BYTES):
                break
            del queue.items[key]
            queue.size -= len(waiter.body)
            if waiter.done.is_set():  # the request was stopped meanwhile
                continue
            taken[key] = waiter
            size += line
        queue.oldest = time.monotonic()
        if not queue.items:
            del self._queues[model]
        return taken

    async def _submit(self, model: str, batch: dict[str, _Waiter]) -> None:
        assert self._log is not None
        keys = list(batch)
        content = b"".join(
            orjson.dumps({"custom_id": key, "method": "POST", "url": ENDPOINT})[:-1]
            + b', "body": '
            + waiter.body
            + b"}\n"
            for key, waiter in batch.items()
        )
        submission = self._log.plan(keys, model)
        submission.waiters = dict(batch)
        for key in keys:
            self._owner[key] = submission
        submission.following = True
        self.stats.sent += len(keys)
        del batch
        try:
            await self._upload(submission, content)
            del content  # the file's copy of the bodies: not kept while the batch runs
            await self._create(submission)
        except GatewayError as error:
            self._end(submission, error)
            return
        await self._follow(submission)

    async def _upload(self, submission: Submission, content: bytes) -> None:
        assert self._log is not None
        try:
            answer = await self.client.upload(submission.filename, content)
        except GatewayError as error:
            if error.kind in ("auth", "redirect") or not error.retryable:
                raise
            found = await self._find_file(submission)  # it may have arrived all the same
            if found is None:
                raise
            answer = found
        self._log.record(submission, "uploaded", file_id=answer["id"])
        submission.status = "uploaded"

    async def _create(self, submission: Submission) -> None:
        assert self._log is not None and submission.file_id is not None
        metadata = {
            "judge_engine_run": self._log.run_id,
            "judge_engine_submission": submission.tag,
        }
        body = {
            "input_file_id": submission.file_id,
            "endpoint": ENDPOINT,
            "completion_window": self.options.completion_window,
            "metadata": metadata,
        }
        try:
            answer, _ = await self.client.call("POST", "/batches", json=body, tries=1)
            batch = _object(answer, "batch")
        except GatewayError as error:
            if error.kind in ("auth", "redirect") or not error.retryable:
                raise
            found = await self._find_batch(submission)  # created, but the answer was lost?
            if found is None:
                answer, _ = await self.client.call("POST", "/batches", json=body)
                found = _object(answer, "batch")
            batch = found
        self._log.record(submission, "created", batch_id=batch["id"])
        self._note(submission, batch)
        submission.located.set()

    async def _find_file(self, submission: Submission) -> dict[str, Any] | None:
        async for item in self.client.listing("/files", {"purpose": "batch", "limit": "10000"}):
            if item.get("filename") == submission.filename and isinstance(item.get("id"), str):
                return item
            created = item.get("created_at")
            if isinstance(created, (int, float)) and created < submission.planned_at - 3600:
                return None
        return None

    async def _find_batch(self, submission: Submission) -> dict[str, Any] | None:
        async for item in self.client.listing("/batches", {"limit": "100"}):
            metadata = item.get("metadata")
            if (
                isinstance(metadata, dict)
                and metadata.get("judge_engine_submission") == submission.tag
            ) or (
                submission.file_id is not None and item.get("input_file_id") == submission.file_id
            ):
                return item
            created = item.get("created_at")
            if isinstance(created, (int, float)) and created < submission.planned_at - 3600:
                return None
        return None

    async def _recovered(self, submission: Submission) -> None:
        """A submission an earlier run logged: found again at the server and followed,
        or known void (never uploaded); looked for once, whoever asks first."""
        if submission.batch_id is not None:
            submission.located.set()
        if not submission.following:
            submission.following = True
            if submission.kept:  # lost from sight earlier in this run: look again
                submission.kept = False
                submission.answers.clear()
                submission.ended = anyio.Event()
            assert self._tasks is not None
            self._tasks.start_soon(self._resume, submission)
        await submission.located.wait()

    async def _resume(self, submission: Submission) -> None:
        assert self._log is not None
        try:
            if submission.file_id is None:
                found = await self._find_file(submission)
                if found is None:  # never uploaded: its keys go in new batches
                    self._log.record(submission, "void")
                    submission.located.set()
                    submission.ended.set()
                    return
                self._log.record(submission, "uploaded", file_id=found["id"])
            if submission.batch_id is None:
                batch = await self._find_batch(submission)
                if batch is None:
                    await self._create(submission)
                else:
                    self._log.record(submission, "created", batch_id=batch["id"])
                    self._note(submission, batch)
        except GatewayError as error:
            self._end(submission, error)
            return
        finally:
            submission.located.set()
        await self._follow(submission)

    # --- following and collecting -----------------------------------------------------------

    def _note(self, submission: Submission, batch: Mapping[str, Any]) -> None:
        status = batch.get("status")
        submission.status = status if isinstance(status, str) else submission.status
        counts = batch.get("request_counts")
        if isinstance(counts, dict):
            submission.counts = {k: int(v) for k, v in counts.items() if isinstance(v, int)}

    async def _follow(self, submission: Submission) -> None:
        """Poll until the batch ends, then collect its answers; politely: the server's
        hint, else a wait that grows from `poll_min_s` to `poll_max_s`."""
        options = self.options
        wait = options.poll_min_s
        refused = 0
        try:
            while True:
                if self._stopped:
                    return
                answer, hint = await self._poll(submission)
                batch = _object(answer, "batch")
                self._note(submission, batch)
                if submission.status in TERMINAL:
                    if submission.status == "failed" and _token_limited(batch):
                        refused += 1
                        if not await self._token_wait(submission, refused):
                            raise GatewayError(
                                "batch_failed",
                                f"batch {submission.batch_id} alone passes the provider's "
                                f"enqueued-token limit for {submission.model or 'its model'}; "
                                "lower --batch-size",
                                retryable=False,
                            )
                        await self._create(submission)  # the same file, a new batch
                        wait = options.poll_min_s
                        continue
                    await self._collect(submission, batch)
                    return
                if options.no_wait:
                    submitted = f"in batch {submission.batch_id}"
                    self._end(submission, GatewayError("submitted", submitted, retryable=False))
                    return
                delay = min(hint, MAX_HINT_S) if hint else wait
                await anyio.sleep(delay)
                wait = min(options.poll_max_s, wait * 1.5)
        except GatewayError as error:
            if error.kind == "batch_unknown":
                assert self._log is not None
                self._log.record(submission, "lost")  # later runs submit its keys anew
            elif error.kind != "batch_failed" and submission.batch_id is not None:
                # Out of touch with a batch that goes on at the server (or whose output
                # cannot be read yet): its keys stay its own, and asking one again
                # follows it again. Nothing is submitted (and paid) twice.
                submission.kept = True
                submission.following = False
                if error.kind not in ("batch_output_unreadable",):
                    error = GatewayError(
                        error.kind,
                        f"batch {submission.batch_id} could not be followed: {error}",
                        status=error.status,
                        retryable=True,
                    )
            self._end(submission, error)

    async def _poll(self, submission: Submission) -> tuple[Any, float | None]:
        """`GET /batches/{id}`. A 404 is not proof that the batch is gone (a new batch
        may not be visible yet): it is asked again for `not_found_s`, then the listing
        is consulted; only a batch found in neither is unknown (`batch_unknown`)."""
        path = f"{self.BATCHES}/{submission.batch_id}"
        started = time.monotonic()
        delay = self.options.retry_base_s
        while True:
            try:
                return await self.client.call("GET", path)
            except GatewayError as error:
                if error.status != 404:
                    raise
                if time.monotonic() - started < self.options.not_found_s:
                    await anyio.sleep(delay * (0.5 + 0.5 * self._rng.random()))
                    delay = min(30.0, delay * 2)
                    continue
            listed = await self._find_batch(submission)
            if listed is not None:
                return listed, None
            raise GatewayError(
                "batch_unknown",
                f"batch {submission.batch_id} is unknown to {self.printable_url}: "
                f"GET {path} answered 404 for {self.options.not_found_s:g} s and the "
                "listing of batches does not hold it (another gateway or account?); "
                "--retry-failed submits its requests anew",
                status=404,
                retryable=False,
            )

    async def _token_wait(self, submission: Submission, refused: int) -> bool:
        """After a batch was refused for the enqueued-token limit (a limit per model):
        wait until another of this run's batches of the same model ends (freeing its
        tokens), or `token_wait_s` (batches of others may be holding them). False when
        none of them is in the way and it was refused `TOKEN_TRIES` times: it will never
        fit alone."""
        options = self.options
        if not any(
            s.status in _ENQUEUED and s.model == submission.model
            for s in self._active()
            if s is not submission
        ):
            if refused >= TOKEN_TRIES:
                return False
            await anyio.sleep(min(options.token_wait_s, options.poll_min_s * 2**refused))
            return True
        with anyio.move_on_after(options.token_wait_s):
            await self._freed.wait()
        return True

    async def _collect(self, submission: Submission, batch: Mapping[str, Any]) -> None:
        """The answers of an ended batch, from its output and error files. A download
        that breaks off is tried again (`_download`); one that never succeeds leaves
        the batch's keys with it (`batch_output_unreadable`, raised to `_follow`)."""
        keys = set(submission.keys)
        latency = (time.monotonic() - submission.submitted_at) * 1000
        found = _Answers(keys, latency, self)
        for name in ("output_file_id", "error_file_id"):
            file_id = batch.get(name)
            if isinstance(file_id, str):
                await self._download(submission, file_id, name, found)
        answers = found.answers
        if found.conflicts:
            assert self._log is not None
            self._log.record(submission, "conflict", keys=sorted(found.conflicts))
            self.stats.conflicts += len(found.conflicts)
        status = str(batch.get("status"))
        if status == "failed":
            reason = _errors(batch) or "the batch failed"
            missing = GatewayError("batch_failed", self.client.scrub(reason), retryable=False)
        else:
            missing = GatewayError(
                "batch_missing",
                f"no answer in batch {submission.batch_id} ({status})",
                retryable=True,
            )
        for key in keys - answers.keys():
            answers[key] = missing
        self.stats.ok += sum(isinstance(a, Reply) for a in answers.values())
        submission.answers.update(answers)
        for key, waiter in list(submission.waiters.items()):
            self._give(submission, key, waiter)
        self._ended(submission)

    async def _download(
        self, submission: Submission, file_id: str, name: str, found: _Answers
    ) -> None:
        """One output or error file, read whole into `found`: a dropped, short or
        stalled download is tried again (`DOWNLOAD_TRIES`, with a backoff; lines read
        before the break are met again and count once); a 404 is tried again for
        `not_found_s` (a file may be replicating). Then `batch_output_unreadable`."""
        options = self.options
        started = time.monotonic()
        delay = options.retry_base_s
        tries = 0
        while True:
            tries += 1
            try:
                async for raw, line in self._lines_of(file_id):
                    found.add(raw, line)
                return
            except GatewayError as error:
                if error.kind in ("auth", "redirect"):
                    raise
                not_found = error.status == 404
                if not_found and time.monotonic() - started < options.not_found_s:
                    tries -= 1  # waiting for a file to appear is not a failed download
                elif not error.retryable or tries >= DOWNLOAD_TRIES or not_found:
                    what = "only its output file" if name == "output_file_id" else "its error file"
                    raise GatewayError(
                        "batch_output_unreadable",
                        f"batch {submission.batch_id} ended, but {what} {file_id} cannot be "
                        f"read ({error}); its answers stay at the server and the same "
                        "command collects them (nothing is submitted again): "
                        f"`judge-engine batches OUT --forget {submission.batch_id}` gives "
                        "them up and submits them anew",
                        status=error.status,
                        retryable=True,
                        later=True,
                    ) from None
            await anyio.sleep(delay * (0.5 + 0.5 * self._rng.random()))
            delay = min(30.0, delay * 2)

    def _lines_of(self, where: str) -> AsyncIterator[tuple[bytes, dict[str, Any]]]:
        """The lines of an output or error file, by its id."""
        return self.client.lines(where, idle_s=self.options.download_idle_s)

    def _answer(self, line: Mapping[str, Any], latency_ms: float) -> Reply | GatewayError:
        """One output or error line as the live gateway would have answered it."""
        response = line.get("response")
        error = line.get("error")
        if isinstance(response, dict):
            status = response.get("status_code")
            body = response.get("body")
            if status == 200 and isinstance(body, dict):
                return Reply(200, body, latency_ms, RateInfo())
            if isinstance(status, int):
                text = orjson.dumps(body).decode() if body is not None else ""
                message = self.client.scrub(_error_message(text[:2000])) or f"HTTP {status}"
                self.stats.by_status[status] = self.stats.by_status.get(status, 0) + 1
                if status == 429:
                    self.stats.throttled += 1
                retryable = status >= 500 or status in RETRYABLE_STATUS
                kind = (
                    "rate_limited"
                    if status == 429
                    else ("server_error" if status >= 500 else "client_error")
                )
                return GatewayError(kind, message, status=status, retryable=retryable)
        if isinstance(error, dict):
            code = str(error.get("code") or "batch_error")[:80]
            message = self.client.scrub(str(error.get("message") or code)[:300])
            return GatewayError(
                code if code.startswith("batch_") else f"batch_{code}", message, retryable=True
            )
        return GatewayError(
            "bad_response", "a batch line with neither response nor error", retryable=True
        )

    def _end(self, submission: Submission, error: GatewayError) -> None:
        """The submission will give no answer in this run (an error, no-wait)."""
        for key in submission.keys:
            submission.answers.setdefault(key, error)
        for key, waiter in list(submission.waiters.items()):
            self._give(submission, key, waiter)
        self._ended(submission)

    def _ended(self, submission: Submission) -> None:
        submission.ended.set()
        self._freed.set()
        self._freed = anyio.Event()

    def _give(self, submission: Submission, key: str, waiter: _Waiter) -> None:
        """Hand a key its answer; the key then belongs to no submission: asked again, it
        goes in a new one."""
        answer = submission.answers.pop(key, None)
        if answer is None:
            return
        submission.waiters.pop(key, None)
        error = answer if isinstance(answer, GatewayError) else None
        kept = submission.kept or (error is not None and error.kind in ("submitted", "stopped"))
        if self._owner.get(key) is submission and not kept:
            del self._owner[key]
        anew = error is not None and error.kind != "batch_unknown" and not kept
        if anew and submission.recovered and not self._stopped:
            self._queue(key, waiter)  # an earlier run's failure, asked again: try anew
            return
        if error is not None and error.retryable and not kept:
            self._retried.add(key)
        waiter.settle(answer)

    async def _await(self, submission: Submission, key: str, waiter: _Waiter) -> Reply:
        if key in submission.answers:
            self._give(submission, key, waiter)
        else:
            submission.waiters[key] = waiter
            if not submission.following:
                submission.following = True
                assert self._tasks is not None
                self._tasks.start_soon(self._follow, submission)
        return await self._outcome(key, waiter)

    async def _outcome(self, key: str, waiter: _Waiter) -> Reply:
        await waiter.done.wait()
        if waiter.error is not None:
            raise waiter.error
        assert waiter.reply is not None
        return waiter.reply


class _Answers:
    """What the lines of a batch's files answer, one answer a key. A key met twice
    with the same answer (a line repeated, or read again after a broken download)
    counts once; with a different answer, the request fails (`conflicting_answers`)
    and is asked again like a failed line."""

    def __init__(self, keys: set[str], latency_ms: float, transport: BatchTransport) -> None:
        self.keys = keys
        self.latency_ms = latency_ms
        self.transport = transport
        self.answers: dict[str, Reply | GatewayError] = {}
        #: Keys answered twice, differently.
        self.conflicts: set[str] = set()
        self._digests: dict[str, bytes] = {}

    def add(self, raw: bytes, line: Mapping[str, Any]) -> None:
        key = line.get("custom_id")
        if not isinstance(key, str) or key not in self.keys:
            return
        digest = _identity(line)
        seen = self._digests.get(key)
        if seen is None:
            self._digests[key] = digest
            self.answers[key] = self.transport._answer(line, self.latency_ms)
        elif seen != digest and key not in self.conflicts:
            self.conflicts.add(key)
            self.answers[key] = GatewayError(
                "conflicting_answers",
                f"the batch's files answer request {key} more than once, differently",
                retryable=True,
            )


def _identity(line: Mapping[str, Any]) -> bytes:
    """What one answer says: its response (status and body) or error; the line's own
    id and the provider's request id aside."""
    response = line.get("response")
    if isinstance(response, dict):
        response = {k: v for k, v in response.items() if k != "request_id"}
    content = orjson.dumps([response, line.get("error")], option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.blake2b(content, digest_size=16).digest()


def _token_limited(batch: Mapping[str, Any]) -> bool:
    errors = batch.get("errors")
    data = errors.get("data") if isinstance(errors, dict) else None
    return isinstance(data, list) and any(
        isinstance(item, dict) and item.get("code") == "token_limit_exceeded" for item in data
    )


def _errors(batch: Mapping[str, Any]) -> str:
    errors = batch.get("errors")
    data = errors.get("data") if isinstance(errors, dict) else None
    if not isinstance(data, list):
        return ""
    parts = [
        f"{item.get('code')}: {item.get('message')}"
        + (f" (line {item['line']})" if isinstance(item.get("line"), int) else "")
        for item in data[:3]
        if isinstance(item, dict)
    ]
    return "; ".join(parts)[:500]


__all__ = [
    "ENDPOINT",
    "LOG",
    "MAX_FILE_BYTES",
    "MAX_REQUESTS",
    "BatchClient",
    "BatchOptions",
    "BatchState",
    "BatchTransport",
    "Submission",
    "SubmissionLog",
    "batch_states",
    "forget",
]
