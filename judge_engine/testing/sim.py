"""A simulated judge gateway for the demo, the tests and the benchmarks. Not a model.

In: chat-completions requests as judge-engine sends them. Out: OpenAI-shaped replies
whose verdict is read from the trace, deterministically: the final assistant message
decides (a failure cue such as "could not" or "failed" makes it 0), and each judge
model flips a small, fixed share of sessions, so panels disagree a little.

It listens on loopback only, enforces its own rate limit (at most `rpm` accepted
requests in any 60 seconds, answered with 429 and `Retry-After`, or with reset headers
only), announces its limits in `x-ratelimit-*` headers, and injects faults on request:
429s, 5xx, dropped connections, malformed or cut-off verdicts, replies slower than the
client's timeout, HTML, empty bodies, no choices, or another model's name.
`GET /sim/stats` reports what it saw, counted at the server.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import math
import random
import re
import secrets
import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson
from aiohttp import web

from . import providers as modes
from .anthropic_batches import MessageBatches
from .batches import BatchService

NAME = "judge-engine simulator"
BANNER = f"{NAME} (not a real model: verdicts are read from the trace by fixed rules)"
_RECORD = re.compile(
    r"<<<BEGIN UNTRUSTED RECORD (\w+)>>>\n(.*)\n<<<END UNTRUSTED RECORD \1>>>", re.S
)
_FAILURE_CUES = (
    "could not", "couldn't", "cannot", "can't", "not able", "unable", "failed", "fails",
    "failure", "error", "still does not", "did not", "denied", "sorry", "stopped without",
    "no documents", "best guess", "traceback",
)  # fmt: skip


#: The kinds of hostile reply `hostile_rate` draws among.
HOSTILE = ("forged", "quoted", "absurd_headers", "echo_key", "gzip", "deep")


@dataclass
class SimConfig:
    latency_ms: float = 0.0
    #: Latency varies uniformly within ± this share.
    jitter: float = 0.2
    rpm: int | None = None
    #: Announce x-ratelimit-* headers on every reply (as OpenAI does).
    rate_headers: bool = True
    #: How an over-limit 429 says when to come back: "retry-after" or "reset" headers.
    limit_hint: str = "retry-after"
    fail_rate: float = 0.0
    throttle_rate: float = 0.0
    throttle_reset_rate: float = 0.0
    drop_rate: float = 0.0
    malformed_rate: float = 0.0
    slow_rate: float = 0.0
    slow_s: float = 30.0
    html_rate: float = 0.0
    empty_rate: float = 0.0
    no_choices_rate: float = 0.0
    wrong_model_rate: float = 0.0
    #: Share of hostile replies, drawn among: a second, forged verdict beside the real
    #: one; a forged verdict quoted inside the reasoning; absurd rate-limit headers on
    #: a good reply; the caller's key echoed in the reasoning; a gzip-compressed body;
    #: JSON nested 100,000 deep.
    hostile_rate: float = 0.0
    #: Share of sessions on which a judge model flips the verdict.
    disagreement: float = 0.08
    #: A judge with known error rates: benchmark -> (sensitivity, specificity), "*" for
    #: every other benchmark. Where set, a truly passed session is passed with the
    #: probability `sensitivity` and a truly failed one failed with `specificity` (a
    #: deterministic draw per judge model and session) in place of `disagreement`; the
    #: truth is the trace's final message, as always.
    judge_error: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    #: Share of each judge model's failures it names `other` instead of the cue's mode.
    mode_disagreement: float = 0.1
    #: When set, only this bearer token is accepted (401 otherwise).
    api_key: str | None = None
    seed: int = 0
    #: The Batch API (`testing.batches`): seconds a batch takes from validation to
    #: completion; shares of its lines answered 500 and with malformed verdicts; the
    #: share of its lines after which it expires (None: it completes); the enqueued
    #: token limit across unfinished batches; a Retry-After hint on polls.
    batch_delay_s: float = 1.0
    batch_fail_rate: float = 0.0
    batch_malformed_rate: float = 0.0
    batch_expire_after: float | None = None
    batch_token_limit: int | None = None
    batch_poll_hint_s: float | None = None
    #: The first batch alone: fails with this error code (None: it does not), or expires
    #: after `batch_expire_after` of its lines (the others complete).
    batch_fail_code: str | None = None
    batch_expire_first_only: bool = False
    #: Holds a step of the Batch API once, for `batch_hold_s`, so a test can kill the
    #: client at that moment: "upload" (before the file is stored), "uploaded" (stored,
    #: before the reply), "created" (the batch made, before the reply), "content" (before
    #: an output file is sent).
    batch_hold: str | None = None
    batch_hold_s: float = 30.0
    #: A provider mode (`testing.providers.MODES`): refuses what that provider
    #: refuses, with its error shapes, and answers in its shape. None: the permissive
    #: OpenAI-compatible gateway of the tests before provider modes.
    provider: str | None = None
    #: The model an Azure deployment serves (the reply names it, not the deployment).
    azure_model: str = "gpt-4.1-2025-04-14"
    #: Models served as reasoning models whatever their names say (a gateway's alias).
    reasoning_models: tuple[str, ...] = ()


#: The failure mode the simulator names for the first failure cue of a final message.
CUE_MODES = {
    "could not": "premature_termination", "couldn't": "premature_termination",
    "cannot": "premature_termination", "can't": "premature_termination",
    "not able": "premature_termination", "unable": "premature_termination",
    "failed": "tool_error", "fails": "tool_error", "failure": "tool_error",
    "error": "tool_error", "still does not": "no_verification",
    "did not": "no_verification", "denied": "tool_error", "sorry": "premature_termination",
    "stopped without": "resource_exhaustion", "no documents": "hallucination",
    "best guess": "hallucination", "traceback": "tool_error",
}  # fmt: skip
_MODE_LINE = re.compile(r"^- ([a-z][a-z0-9_]*): ", re.M)
_CRITERION_LINE = re.compile(r"^- ([a-z][a-z0-9_]*) \((0 or 1|1 \(worst\) to 5 \(best\))\): ", re.M)
_MESSAGE_NUMBER = re.compile(r"^\[(\d+)\] ", re.M)


@dataclass(frozen=True)
class AskedForm:
    """What a request's system message asks the reply to hold beyond success: the
    failure-mode codes (none when the prompt asks for none) and the criteria."""

    codes: tuple[str, ...] = ()
    criteria: tuple[tuple[str, str], ...] = ()


def asked_form(system: Any) -> AskedForm:
    """The codes and criteria a judge-engine system message lists (text, or Anthropic's
    list of text blocks)."""
    if isinstance(system, list):
        system = "\n".join(str(b.get("text", "")) for b in system if isinstance(b, dict))
    system = str(system)
    start = system.find("## Failure modes\n")
    if start < 0:
        return AskedForm()
    end = system.find("\n## Reply format", start)
    block = system[start : end if end >= 0 else None]
    part, _, criteria = block.partition("## Criteria\n")
    return AskedForm(
        tuple(_MODE_LINE.findall(part)),
        tuple((name, "pass_fail" if kind == "0 or 1" else "scale_1_5")
              for name, kind in _CRITERION_LINE.findall(criteria)),
    )  # fmt: skip


def verdict_for(
    record: str,
    model: str,
    disagreement: float = 0.08,
    error: tuple[float, float] | None = None,
    form: AskedForm = AskedForm(),
    mode_disagreement: float = 0.1,
) -> dict[str, Any]:
    """The simulator's deterministic verdict for a trace and a judge model: the truth
    read from the final message, flipped for a `disagreement` share of sessions, or
    with `error` (sensitivity, specificity), passed and failed at those rates.

    Where the prompt asks for failure modes (`form`), a failure's mode is the one its
    first failure cue names (`CUE_MODES`), `no_verification` when the judge fails a
    session that truly passed, and `other` for a `mode_disagreement` share of each
    judge model's failures (a deterministic draw per model and session) or where the
    rubric lacks the code; its step is the number of the last message of the record,
    its note quotes the cue. Criteria: pass_fail answers the verdict, scale_1_5 answers
    4 for a success and 2 for a failure."""
    final = record.rsplit("] assistant\n", 1)[-1].lower()
    failed = [cue for cue in _FAILURE_CUES if cue in final]
    truth = 0 if failed else 1
    success = truth
    digest = hashlib.blake2b(f"{model}\x1f{record}".encode(), digest_size=8).digest()
    draw = int.from_bytes(digest, "big") / 2**64
    if error is not None:
        sensitivity, specificity = error
        flip = draw >= sensitivity if truth else draw >= specificity
    else:
        flip = draw < disagreement
    if flip:
        success = 1 - success
        confidence = "low"
        reasoning = "[simulator] this judge reads the outcome the other way"
    else:
        confidence = "high" if draw > 0.5 else "medium"
        reasoning = (
            f"[simulator] the final message reports failure ('{failed[0]}')"
            if failed
            else "[simulator] the final message reports the task done, with no failure cue"
        )
    verdict: dict[str, Any] = {"success": success, "confidence": confidence, "reasoning": reasoning}
    if form.codes:
        verdict.update(_mode_for(record, model, success, failed, form, mode_disagreement))
    if form.criteria:
        verdict["criteria"] = {
            name: success if kind == "pass_fail" else (4 if success else 2)
            for name, kind in form.criteria
        }
    return verdict


def _mode_for(
    record: str, model: str, success: int, cues: Sequence[str], form: AskedForm, share: float
) -> dict[str, Any]:
    if success:
        return {"failure_mode": "none", "failure_step": None, "failure_note": ""}
    mode = CUE_MODES.get(cues[0], "other") if cues else "no_verification"
    digest = hashlib.blake2b(f"mode\x1f{model}\x1f{record}".encode(), digest_size=8).digest()
    if int.from_bytes(digest, "big") / 2**64 < share or mode not in form.codes:
        mode = "other"
    numbers = _MESSAGE_NUMBER.findall(record)
    note = (
        f"[simulator] the final message says '{cues[0]}'"
        if cues
        else "[simulator] the final message claims success that this judge does not see"
    )
    return {"failure_mode": mode, "failure_step": int(numbers[-1]) if numbers else None,
            "failure_note": note}  # fmt: skip


#: How the simulator knows a request to name a group of failures (`topics.SYSTEM`).
TOPIC_REQUEST = "You name groups of failed AI-agent sessions."
_WORD = re.compile(r"[a-z][a-z_]{2,}")
_PLAIN = frozenset(
    [
        "simulator",
        "the",
        "and",
        "for",
        "was",
        "but",
        "are",
        "its",
        "final",
        "message",
        "says",
        "this",
        "judge",
        "that",
        "with",
        "from",
        "reports",
        "failure",
        "does",
        "claims",
        "success",
        "there",
        "their",
        "have",
        "been",
        "were",
        "they",
        "what",
        "which",
        "when",
        "sessions",
        "session",
        "notes",
        "note",
        "group",
        "begin",
        "untrusted",
        "record",
    ]
)


def topic_reply(user: str) -> dict[str, str]:
    """The simulator's name for a group of failures: its notes' two most frequent words
    (three letters or more, plain words out; ties alphabetical), documented so that a
    test can predict it."""
    start = user.find(">>>\n")
    end = user.rfind("\n<<<END")
    notes = user[start + 4 : end] if start >= 0 and end > start else user
    counts = Counter(w for w in _WORD.findall(notes.lower()) if w not in _PLAIN)
    words = [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:2]]
    words += ["unnamed"] * (2 - len(words))
    lines = sum(1 for line in notes.splitlines() if line.startswith("- "))
    return {
        "name": f"{words[0]} and {words[1]}",
        "description": f"{lines} notes that mention {words[0]} and {words[1]}",
    }


_BENCHMARK = re.compile(r"benchmark: ([^;\n]*);")


def error_for(config: SimConfig, text: str) -> tuple[float, float] | None:
    """The judge error `config` sets for the benchmark the prompt `text` names."""
    if not config.judge_error:
        return None
    match = _BENCHMARK.search(text)
    name = match.group(1).strip() if match else ""
    return config.judge_error.get(name) or config.judge_error.get("*")


def _record_of(messages: list[Any]) -> str:
    """What the judge reads of the session: the enclosed record of the last message."""
    content = str(messages[-1].get("content", "")) if messages else ""
    match = _RECORD.search(content)
    return match.group(2) if match else content


def max_in_window(times: Sequence[float], window_s: float = 60.0) -> int:
    """The most events in any half-open window of `window_s` seconds."""
    best = 0
    start = 0
    for end, moment in enumerate(times):
        while moment - times[start] >= window_s:
            start += 1
        best = max(best, end - start + 1)
    return best


class Simulator:
    """The server. `await start()` on a loopback port, `await stop()` when done."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self._rng = random.Random(self.config.seed)
        self.arrivals: list[float] = []
        self.accepted: deque[float] = deque()
        self.accepted_times: list[float] = []
        self.throttled_times: list[float] = []
        self.first_arrival_epoch: float | None = None
        #: Verdicts served, per (judge model, record): a second one is a question asked
        #: again. Verdicts sent after an injected delay (the client has given up) apart.
        self.served: Counter[bytes] = Counter()
        self.served_late = 0
        self.status: Counter[int] = Counter()
        self.faults: Counter[str] = Counter()
        self.models: Counter[str] = Counter()
        self.sessions_seen: Counter[str] = Counter()
        self._runner: web.AppRunner | None = None
        self.url = ""
        app = web.Application(client_max_size=256 * 1024 * 1024)  # batch files too
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/chat/completions", self._chat)
        # Provider modes' own paths (`testing.providers`).
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self._chat)
        app.router.add_post("/openai/v1/chat/completions", self._chat)
        app.router.add_post("/v1beta/openai/chat/completions", self._chat)
        app.router.add_get("/sim/stats", self._stats)
        app.router.add_get("/health", self._health)
        self.batches = BatchService(self)
        self.message_batches = MessageBatches(self)
        # Anthropic's batches first: their paths are more precise than /v1/messages.
        self.message_batches.add_routes(app)
        self.batches.add_routes(app)
        self.app = app

    async def start(self, port: int = 0) -> str:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port, reuse_address=True)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        bound = sockets[0].getsockname()[1] if sockets else port
        self.url = f"http://127.0.0.1:{bound}/v1"
        return self.url

    async def stop(self) -> None:
        await self.batches.stop()
        await self.message_batches.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def stats(self) -> dict[str, Any]:
        return {
            "simulator": NAME,
            "requests": len(self.arrivals),
            "accepted": len(self.accepted_times),
            "status": {str(k): v for k, v in sorted(self.status.items())},
            "faults": dict(self.faults),
            "models": dict(self.models),
            "max_requests_per_60s": max_in_window(self.arrivals),
            "max_accepted_per_60s": max_in_window(self.accepted_times),
            "first_arrival_epoch": self.first_arrival_epoch,
            "verdicts_served": sum(self.served.values()),
            "verdicts_distinct": len(self.served),
            "verdicts_late": self.served_late,
            **self.batches.stats(),
            **self.message_batches.stats(),
            "config": asdict(self.config) | {"api_key": bool(self.config.api_key)},
        }

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "simulator": NAME})

    async def _stats(self, request: web.Request) -> web.Response:
        stats = self.stats()
        if request.query.get("times"):
            # Seconds since the first request: for benchmarks that need the timeline.
            start = self.arrivals[0] if self.arrivals else 0.0
            stats["arrival_times"] = [round(t - start, 4) for t in self.arrivals]
            stats["accepted_times"] = [round(t - start, 4) for t in self.accepted_times]
            stats["throttled_times"] = [round(t - start, 4) for t in self.throttled_times]
        return web.json_response(stats)

    def _reply(
        self, status: int, payload: Any, headers: dict[str, str] | None = None
    ) -> web.Response:
        self.status[status] += 1
        return web.Response(
            status=status,
            body=orjson.dumps(payload),
            content_type="application/json",
            headers={"Server": NAME, **(headers or {})},
        )

    def _error(
        self, status: int, kind: str, message: str, headers: dict[str, str] | None = None
    ) -> web.Response:
        return self._reply(
            status, {"error": {"message": message, "type": kind, "code": status}}, headers
        )

    def _limit_headers(self, now: float) -> dict[str, str]:
        rpm = self.config.rpm
        if not rpm or not self.config.rate_headers:
            return {}
        remaining = max(0, rpm - len(self.accepted))
        reset = (self.accepted[0] + 60.0 - now) if self.accepted else 0.0
        return {
            "x-ratelimit-limit-requests": str(rpm),
            "x-ratelimit-remaining-requests": str(remaining),
            "x-ratelimit-reset-requests": f"{max(0.0, reset):.3f}s",
        }

    def _refused(self, refusal: modes.Refusal) -> web.Response:
        self.status[refusal.status] += 1
        self.faults[f"refused_{refusal.status}"] += 1
        return web.Response(
            status=refusal.status,
            body=orjson.dumps(refusal.body),
            content_type="application/json",
            headers={"Server": NAME, **refusal.headers},
        )

    def _route(self, request: web.Request) -> modes.Refusal | None:
        """A request at a path its mode does not serve: 404, as a provider answers."""
        mode = self.config.provider
        path = request.path
        expected = {
            "azure": ("/openai/deployments/", "/openai/v1/chat/completions"),
            "gemini": ("/v1beta/openai/chat/completions",),
            "anthropic": ("/v1/messages",),
        }.get(mode or "", ("/v1/chat/completions", "/chat/completions"))
        if not path.startswith(expected):
            return modes.openai_error(404, f"Not found: {path}", kind="not_found_error")
        if (
            mode == "azure"
            and path.startswith("/openai/deployments/")
            and not (request.query.get("api-version"))
        ):
            return modes.Refusal(404, {"error": {"code": "404", "message": "Resource not found"}})
        return None

    def _authorized(self, request: web.Request) -> web.Response | None:
        """The key, as the mode's provider takes it: a bearer token, or Azure's api-key."""
        config = self.config
        auth = request.headers.get("Authorization", "")
        token = auth[7:].strip() if auth.startswith("Bearer ") else ""
        if config.provider == "azure":
            token = request.headers.get("api-key", "") or (
                token if request.path.startswith("/openai/v1/") else ""
            )
            if not token:
                return self._refused(
                    modes.Refusal(
                        401,
                        {"error": {"code": "401", "message": "Access denied due to invalid "
                                   "subscription key or wrong API endpoint."}},
                    )
                )  # fmt: skip
        if not token and config.api_key is None and config.provider in modes.KEYLESS:
            return None  # a local server started without a key takes any request
        if not token:
            return self._error(401, "auth_error", "no API key passed")
        if config.api_key is not None and token != config.api_key:
            return self._error(401, "invalid_api_key", "the API key is not valid")
        return None

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        now = time.monotonic()
        if not self.arrivals:
            self.first_arrival_epoch = time.time()
        self.arrivals.append(now)
        config = self.config
        if config.provider is not None:
            wrong = self._route(request)
            if wrong is not None:
                return self._refused(wrong)
        refused = self._authorized(request)
        if refused is not None:
            return refused
        try:
            data = orjson.loads(await request.read())
            if not isinstance(data, dict):
                raise TypeError
            if request.match_info.get("deployment"):
                data.setdefault("model", request.match_info["deployment"])
            model = data["model"]
            messages = data["messages"]
            if not isinstance(model, str) or not isinstance(messages, list):
                raise TypeError
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return self._error(400, "invalid_request_error", "expected a chat-completions body")
        if config.provider is not None:
            try:
                modes.check_openai(config.provider, data, config.reasoning_models)
            except modes.Refusal as refusal:
                return self._refused(refusal)
            record = _record_of(messages)
            if config.provider == "azure" and modes.FILTER in record:
                return self._refused(
                    modes.Refusal(
                        400,
                        {"error": {"message": "The response was filtered due to the prompt "
                                   "triggering Azure OpenAI's content management policy.",
                                   "type": None, "param": "prompt", "code": "content_filter",
                                   "status": 400,
                                   "innererror": {"code": "ResponsibleAIPolicyViolation"}}},
                    )
                )  # fmt: skip
        self.models[model] += 1

        # The limit first: over it, nothing else happens.
        while self.accepted and now - self.accepted[0] >= 60.0:
            self.accepted.popleft()
        if config.rpm and len(self.accepted) >= config.rpm:
            wait = self.accepted[0] + 60.0 - now
            return self._throttle(
                wait, "over the simulator's rate limit", reset_only=config.limit_hint == "reset"
            )
        self.accepted.append(now)
        self.accepted_times.append(now)

        fault = self._draw_fault()
        if fault == "throttle":
            return self._throttle(1.0, "injected rate limit")
        if fault == "throttle_reset":
            return self._throttle(1.0, "injected rate limit (reset headers)", reset_only=True)
        if fault == "server_error":
            return self._error(self._rng.choice((500, 502, 503)), "server_error", "injected fault")

        if config.latency_ms > 0:
            spread = 1.0 + config.jitter * (2 * self._rng.random() - 1)
            await asyncio.sleep(config.latency_ms * spread / 1000)
        if fault == "slow":
            await asyncio.sleep(config.slow_s)
        if fault == "drop":
            if request.transport is not None:
                request.transport.abort()
            raise web.HTTPServiceUnavailable()
        if fault == "html":
            self.status[200] += 1
            return web.Response(
                text="<html><body><h1>502 Bad Gateway</h1></body></html>", content_type="text/html"
            )
        if fault == "empty":
            self.status[200] += 1
            return web.Response(body=b"", content_type="application/json")
        if fault == "no_choices":
            return self._reply(200, {"id": "sim", "object": "chat.completion", "choices": []})

        if request.transport is None or request.transport.is_closing():
            # The client gave up (its timeout) before the verdict was ready: it never
            # reads it, so it is not served (a late one, as the slow fault's).
            self.served_late += 1
            return web.Response(status=499)
        payload, extra_headers = self.completion(
            model, messages, fault, request.headers.get("X-Judge-Engine-Key"),
            request.headers.get("Authorization", ""),
            max_output=data.get("max_tokens") or data.get("max_completion_tokens"),
        )  # fmt: skip
        if config.provider is not None:
            served = config.azure_model if config.provider == "azure" else model
            payload = modes.shape_openai(
                config.provider, payload, data, _record_of(messages), served
            )
        headers = {**self._limit_headers(time.monotonic()), **extra_headers}
        if fault == "gzip":
            self.status[200] += 1
            return web.Response(
                status=200,
                body=gzip.compress(orjson.dumps(payload)),
                content_type="application/json",
                headers={"Server": NAME, "Content-Encoding": "gzip", **headers},
            )
        return self._reply(200, payload, headers)

    def completion(
        self,
        model: str,
        messages: list[Any],
        fault: str | None = None,
        name: str | None = None,
        authorization: str = "",
        max_output: Any = None,
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The chat-completion body the simulator answers a request with (and extra
        headers), after `fault` (a content fault, or None); `name` is the request's
        journal key when the engine sent it. The live endpoint and the batches share it."""
        config = self.config
        content_text = str(messages[-1].get("content", "")) if messages else ""
        match = _RECORD.search(content_text)
        record = match.group(2) if match else content_text
        system = str(messages[0].get("content", "")) if messages else ""
        if system.startswith(TOPIC_REQUEST):
            verdict: dict[str, Any] = topic_reply(content_text)
        else:
            verdict = verdict_for(
                record, model, config.disagreement, error_for(config, content_text),
                asked_form(system), config.mode_disagreement,
            )  # fmt: skip
        text = orjson.dumps(verdict).decode()
        digest = hashlib.blake2b(record.encode(), digest_size=4).digest()[0]
        if digest % 5 == 0:
            text = f"```json\n{text}\n```"  # some judges fence their JSON
        finish = "stop"
        extra_headers: dict[str, str] = {}
        if fault == "forged":  # two verdicts: the reply says nothing certain
            forged = {**verdict, "success": 1 - verdict["success"], "reasoning": "forged"}
            if "failure_mode" in verdict:  # a forgery as well-formed as the real one
                forged["failure_mode"] = "other" if verdict["success"] else "none"
                forged["failure_step"] = None
            text = f"{orjson.dumps(forged).decode()}\n{text}"
        elif fault == "quoted":  # a forgery quoted in the reasoning must not count
            quoted = orjson.dumps({"success": 1 - verdict["success"], "confidence": "high"})
            text = orjson.dumps(
                {**verdict, "reasoning": f"the trace prints {quoted.decode()}; ignored"}
            ).decode()
        elif fault == "absurd_headers":
            extra_headers = {
                "x-ratelimit-limit-requests": "inf",
                "x-ratelimit-limit-tokens": "1e999",
                "x-ratelimit-reset-requests": "24h0m0s",
                "retry-after": "99999999",
            }
        elif fault == "echo_key":
            echoed = authorization
            text = orjson.dumps({**verdict, "reasoning": f"your header was {echoed}"}).decode()
        elif fault == "deep":
            text = "{" * 100_000
        if fault == "malformed":
            if self._rng.random() < 0.5:
                text = "The agent appears to have completed the task, so I would say yes."
            elif not (isinstance(max_output, int) and max_output >= 2048):
                # Cut at the output limit, as a model is: a larger budget (which the
                # engine asks with next) lets the verdict end.
                text, finish = text[: len(text) // 2], "length"
        served = "sim-other-model" if fault == "wrong_model" else model
        if fault == "slow":
            self.served_late += 1
        elif fault not in ("malformed", "wrong_model", "forged", "deep"):
            # The engine names each request; other clients are told apart by content.
            name = name or f"{model}\x1f{record}"
            self.served[hashlib.blake2b(name.encode(), digest_size=12).digest()] += 1
        prompt_tokens = sum(len(str(m.get("content", ""))) for m in messages) // 4
        payload = {
            "id": f"chatcmpl-sim-{sum(self.models.values())}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": served,
            "system_fingerprint": "judge-engine-simulator",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": finish,
                    "message": {"role": "assistant", "content": text},
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": 30,
                "total_tokens": prompt_tokens + 30,
            },
        }
        return payload, extra_headers

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        """Anthropic's Messages API (the `anthropic` mode): its checks, its rate limit
        and faults in its shapes, the verdict as a forced tool call."""
        now = time.monotonic()
        if not self.arrivals:
            self.first_arrival_epoch = time.time()
        self.arrivals.append(now)
        config = self.config
        if config.provider != "anthropic":
            return self._refused(modes.openai_error(404, "Not found: /v1/messages"))
        try:
            data = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            data = None
        try:
            modes.check_anthropic(request.headers, data, config.api_key)
        except modes.Refusal as problem:
            return self._refused(problem)
        model = str(data["model"])
        self.models[model] += 1
        while self.accepted and now - self.accepted[0] >= 60.0:
            self.accepted.popleft()
        if config.rpm and len(self.accepted) >= config.rpm:
            wait = max(1, math.ceil(self.accepted[0] + 60.0 - now))
            self.throttled_times.append(now)
            limited = modes.anthropic_error(
                429, "rate_limit_error", "This request would exceed the rate limit."
            )
            limited.headers.update({"retry-after": str(wait), **self._anthropic_limits(now)})
            return self._refused(limited)
        self.accepted.append(now)
        self.accepted_times.append(now)
        fault = self._draw_fault()
        if fault in ("throttle", "throttle_reset"):
            self.throttled_times.append(now)
            limited = modes.anthropic_error(429, "rate_limit_error", "injected rate limit")
            limited.headers["retry-after"] = "1"
            return self._refused(limited)
        if fault == "server_error":
            return self._refused(modes.anthropic_error(529, "overloaded_error", "Overloaded"))
        if config.latency_ms > 0:
            spread = 1.0 + config.jitter * (2 * self._rng.random() - 1)
            await asyncio.sleep(config.latency_ms * spread / 1000)
        if fault == "drop":
            if request.transport is not None:
                request.transport.abort()
            raise web.HTTPServiceUnavailable()
        record = _record_of(data["messages"])
        last = str(data["messages"][-1].get("content", "")) if data["messages"] else ""
        if str(data.get("system", "")).startswith(TOPIC_REQUEST):
            verdict: dict[str, Any] = topic_reply(last)
        else:
            verdict = verdict_for(
                record, model, config.disagreement, error_for(config, last),
                asked_form(data.get("system", "")), config.mode_disagreement,
            )  # fmt: skip
        name = request.headers.get("X-Judge-Engine-Key") or f"{model}\x1f{record}"
        self.served[hashlib.blake2b(name.encode(), digest_size=12).digest()] += 1
        tokens = sum(len(str(m.get("content", ""))) for m in data["messages"]) // 4
        tokens += len(str(data.get("system", ""))) // 4
        payload = modes.anthropic_reply(verdict, data, record, tokens)
        headers = {"request-id": f"req_{secrets.token_hex(12)}", **self._anthropic_limits(now)}
        return self._reply(200, payload, headers)

    def _anthropic_limits(self, now: float) -> dict[str, str]:
        rpm = self.config.rpm
        if not rpm or not self.config.rate_headers:
            return {}
        reset = (self.accepted[0] + 60.0 - now) if self.accepted else 0.0
        moment = datetime.fromtimestamp(time.time() + max(0.0, reset), tz=timezone.utc)
        return {
            "anthropic-ratelimit-requests-limit": str(rpm),
            "anthropic-ratelimit-requests-remaining": str(max(0, rpm - len(self.accepted))),
            "anthropic-ratelimit-requests-reset": moment.isoformat().replace("+00:00", "Z"),
        }

    def _throttle(self, wait_s: float, message: str, *, reset_only: bool = False) -> web.Response:
        self.throttled_times.append(time.monotonic())
        wait_s = max(0.05, wait_s)
        if reset_only:
            headers = {
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": f"{wait_s:.3f}s",
            }
            if self.config.rpm:
                headers["x-ratelimit-limit-requests"] = str(self.config.rpm)
        else:
            headers = {"Retry-After": str(max(1, math.ceil(wait_s)))}
        return self._error(429, "rate_limit_exceeded", message, headers)

    def _draw_fault(self) -> str | None:
        config = self.config
        draw = self._rng.random()
        for name, rate in (
            ("throttle", config.throttle_rate),
            ("throttle_reset", config.throttle_reset_rate),
            ("server_error", config.fail_rate),
            ("drop", config.drop_rate),
            ("malformed", config.malformed_rate),
            ("slow", config.slow_rate),
            ("html", config.html_rate),
            ("empty", config.empty_rate),
            ("no_choices", config.no_choices_rate),
            ("wrong_model", config.wrong_model_rate),
            ("hostile", config.hostile_rate),
        ):
            if draw < rate:
                if name == "hostile":
                    name = self._rng.choice(HOSTILE)
                self.faults[name] += 1
                return name
            draw -= rate
        return None


async def serve(config: SimConfig, port: int) -> None:
    """Run the simulator until cancelled (the `judge-engine sim` command)."""
    simulator = Simulator(config)
    url = await simulator.start(port)
    print(f"{BANNER}\nlistening on {url}  (stats: {url.rsplit('/v1', 1)[0]}/sim/stats)", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await simulator.stop()
