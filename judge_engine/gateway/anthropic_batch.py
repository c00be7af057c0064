"""Anthropic's Message Batches API as a transport: the same queues, exactly-once log of
submissions, polls, downloads and answers as the OpenAI Batch API's (`batch`), with
Anthropic's own steps.

In: Messages API request bodies from the asker, each named by its journal key. Out:
each request's answer (a `Reply` whose body is the Messages API's message, read by the
asker like a live one) or a `GatewayError` by the live rules.

The steps, as Anthropic documents them: `POST /v1/messages/batches` with `requests`
(`custom_id`, the journal key; `params`, the request); `GET /v1/messages/batches/{id}`
until `processing_status` is `ended`; its `results_url` streamed as JSON lines, one
`result` a request (`succeeded` with the message; `errored`; `canceled`; `expired`);
`POST .../cancel`. There is no file to upload and a batch carries no metadata: a run
killed between creating a batch and logging it looks it up in the listing by its size
and creation time (adopted only if exactly one unlogged batch fits, else its requests
are submitted anew); the log is `OUT/anthropic-batches.jsonl`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
from yarl import URL

from .batch import BatchTransport, Submission, _object, _Waiter
from .client import RETRYABLE_STATUS, Reply
from .errors import GatewayError
from .hints import RateInfo, parse_duration

#: The log of submissions in OUT.
LOG = "anthropic-batches.jsonl"
#: How far a batch's creation time may lie before its logged plan and still be its.
_FIND_WINDOW_S = 120.0
#: Error types of an `errored` result that another try may pass.
_TRANSIENT = frozenset({"api_error", "overloaded_error", "rate_limit_error", "timeout_error"})


class AnthropicBatchTransport(BatchTransport):
    """Requests through Anthropic's Message Batches API (the module docstring)."""

    LOG_NAME = LOG
    BATCHES = "/messages/batches"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Each submission's request payload, from its plan until its batch is made.
        self._payload_of: dict[str, bytes] = {}

    def _payloads(self) -> dict[str, bytes]:
        return self._payload_of

    async def _submit(self, model: str, batch: dict[str, _Waiter]) -> None:
        assert self._log is not None
        keys = list(batch)
        payload = (
            b'{"requests":['
            + b",".join(
                b'{"custom_id":' + orjson.dumps(key) + b',"params":' + waiter.body + b"}"
                for key, waiter in batch.items()
            )
            + b"]}"
        )
        submission = self._log.plan(keys, model)
        submission.waiters = dict(batch)
        for key in keys:
            self._owner[key] = submission
        submission.following = True
        self.stats.sent += len(keys)
        del batch
        self._payloads()[submission.tag] = payload
        try:
            await self._create(submission)
        except GatewayError as error:
            self._end(submission, error)
            return
        finally:
            self._payloads().pop(submission.tag, None)  # not kept while the batch runs
        await self._follow(submission)

    async def _create(self, submission: Submission) -> None:
        assert self._log is not None
        payload = self._payloads().get(submission.tag)
        if payload is None:
            raise GatewayError(
                "batch_failed", "the batch's requests are no longer at hand", retryable=True
            )
        try:
            answer, _ = await self.client.call(
                "POST", self.BATCHES, data=payload, tries=1, content_type="application/json"
            )
            batch = _object(answer, "message batch")
        except GatewayError as error:
            if error.kind in ("auth", "redirect") or not error.retryable:
                raise
            found = await self._find_batch(submission)  # created, but the answer was lost?
            if found is None:
                answer, _ = await self.client.call(
                    "POST", self.BATCHES, data=payload, content_type="application/json"
                )
                found = _object(answer, "message batch")
            batch = found
        self._log.record(submission, "created", batch_id=batch["id"])
        self._note(submission, batch)
        submission.located.set()

    async def _find_batch(self, submission: Submission) -> dict[str, Any] | None:
        """The one unlogged batch of this size created about when it was planned."""
        assert self._log is not None
        logged = {s.batch_id for s in self._log.submissions.values() if s.batch_id}
        fits = []
        async for item in self.client.listing(self.BATCHES, {"limit": "100"}, after="after_id"):
            created = _epoch(item.get("created_at"))
            if created is not None and created < submission.planned_at - _FIND_WINDOW_S:
                break
            counts = item.get("request_counts")
            total = sum(v for v in counts.values() if isinstance(v, int)) if isinstance(
                counts, dict
            ) else -1  # fmt: skip
            if item.get("id") not in logged and total == len(submission.keys):
                fits.append(item)
        return fits[0] if len(fits) == 1 else None

    async def _resume(self, submission: Submission) -> None:
        assert self._log is not None
        try:
            if submission.batch_id is None:
                batch = await self._find_batch(submission)
                if batch is None:  # never created (or not to be told apart): anew
                    self._log.record(submission, "void")
                    submission.located.set()
                    submission.ended.set()
                    return
                self._log.record(submission, "created", batch_id=batch["id"])
                self._note(submission, batch)
        except GatewayError as error:
            self._end(submission, error)
            return
        finally:
            submission.located.set()
        await self._follow(submission)

    def _note(self, submission: Submission, batch: Mapping[str, Any]) -> None:
        note(submission, batch)

    async def _collect(self, submission: Submission, batch: Mapping[str, Any]) -> None:
        """The answers of an ended batch, from its `results_url` (on the API's own host:
        the key goes nowhere else)."""
        from .batch import _Answers

        keys = set(submission.keys)
        latency = (time.monotonic() - submission.submitted_at) * 1000
        found = _Answers(keys, latency, self)
        url = batch.get("results_url")
        if isinstance(url, str):
            path = _same_host(url, self.client.base)
            if path is None:
                raise GatewayError(
                    "batch_output_unreadable",
                    f"batch {submission.batch_id}'s results are at another host than the "
                    "API's; the key is not sent there",
                    retryable=True,
                    later=True,
                )
            await self._download(submission, path, "output_file_id", found)
        answers = found.answers
        if found.conflicts:
            assert self._log is not None
            self._log.record(submission, "conflict", keys=sorted(found.conflicts))
            self.stats.conflicts += len(found.conflicts)
        missing = GatewayError(
            "batch_missing", f"no answer in batch {submission.batch_id}", retryable=True
        )
        for key in keys - answers.keys():
            answers[key] = missing
        self.stats.ok += sum(isinstance(a, Reply) for a in answers.values())
        submission.answers.update(answers)
        for key, waiter in list(submission.waiters.items()):
            self._give(submission, key, waiter)
        self._ended(submission)

    def _lines_of(self, where: str) -> AsyncIterator[tuple[bytes, dict[str, Any]]]:
        """The lines of a batch's results, by their path on the API's host."""
        return self.client.lines(where, idle_s=self.options.download_idle_s, path=where)

    def _answer(self, line: Mapping[str, Any], latency_ms: float) -> Reply | GatewayError:
        """One result line as the live API would have answered it."""
        result = line.get("result")
        kind = result.get("type") if isinstance(result, dict) else None
        if (
            kind == "succeeded"
            and isinstance(result, dict)
            and isinstance(result.get("message"), dict)
        ):
            return Reply(200, result["message"], latency_ms, RateInfo())
        if kind == "errored" and isinstance(result, dict):
            error = result.get("error")
            inner = error.get("error") if isinstance(error, dict) else None
            what = str(inner.get("type")) if isinstance(inner, dict) else "api_error"
            message = str(inner.get("message", what)) if isinstance(inner, dict) else what
            status = 400 if what == "invalid_request_error" else 500
            self.stats.by_status[status] = self.stats.by_status.get(status, 0) + 1
            retryable = what in _TRANSIENT or status in RETRYABLE_STATUS
            return GatewayError(
                "client_error" if status == 400 else "server_error",
                self.client.scrub(f"{what}: {message}"[:300]),
                status=status,
                retryable=retryable,
            )
        if kind in ("canceled", "expired"):
            return GatewayError(f"batch_{kind}", f"this request was {kind}", retryable=True)
        return GatewayError("bad_response", "a result line without a result", retryable=True)


def note(submission: Submission, batch: Mapping[str, Any]) -> None:
    """A message batch's status and counts, in the words of OpenAI's (`batch`)."""
    raw = batch.get("request_counts")
    counts = {k: v for k, v in raw.items() if isinstance(v, int)} if isinstance(raw, dict) else {}
    done = counts.get("succeeded", 0)
    failed = sum(counts.get(k, 0) for k in ("errored", "canceled", "expired"))
    submission.counts = {
        "total": done + failed + counts.get("processing", 0),
        "completed": done,
        "failed": failed,
    }
    state = batch.get("processing_status")
    if state == "ended":
        submission.status = "cancelled" if batch.get("cancel_initiated_at") else "completed"
    elif state == "canceling":
        submission.status = "cancelling"
    elif isinstance(state, str):
        submission.status = state


def _epoch(value: Any) -> float | None:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        left = parse_duration(value, now=0.0)  # a date: seconds since the epoch
        return left
    return None


def _same_host(url: str, base: URL) -> str | None:
    """The path of `url` below the API's base (`/messages/batches/ID/results` of
    `https://api.anthropic.com/v1/...`) when it is on the API's own scheme, host, port
    and base path; else None."""
    try:
        target = URL(url)
    except ValueError:
        return None
    if (target.scheme, target.host, target.port) != (base.scheme, base.host, base.port):
        return None
    prefix = base.path.rstrip("/")
    if not target.path.startswith(prefix + "/"):
        return None
    relative = target.path[len(prefix) :]
    return relative + (f"?{target.query_string}" if target.query_string else "")


__all__ = ["LOG", "AnthropicBatchTransport", "note"]
