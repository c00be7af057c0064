"""Asking one judge: retries, backoff, the breaker, and the verdict or failure it ends in.

In: one planned request and its body, a transport to send it through, the run's cost
budget, tally and control. Out: a journal `Record` (a verdict, or a failure with its
reason and the raw reply), or None when the request was not made (the run is stopping:
it stays for a resume).

What may pass on another try is asked again (up to the retries, after the server's
hint or an exponential backoff): 408, 409, 429, 5xx, timeouts, dropped connections,
bodies that are not a completion, verdicts that do not parse. What cannot is a failure
at once: another 4xx, a model mismatch, a request larger than the tpm. Whatever else
goes wrong with one reply is this request's failure (`internal_error`), never the
run's. A 401, a redirect, or a judge whose first requests all fail for good stop the
run (`FatalError`), and so does a gateway nothing answers at (refused, unknown host)
before it ever answered. A failure whose last error may pass on another try (a
connection, a timeout, a 5xx, a 429) is recorded as transient: the next run asks it
again. A gateway that refuses a JSON Schema response format gets JSON
mode from then on, for that judge.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import anyio
import orjson

from .config import GatewayOptions, RetryOptions
from .control import RunControl
from .gateway import GatewayError, Transport
from .gateway.profiles import ProfileError, learn, profile_for
from .gateway.protocols import DEFAULT_MAX_OUTPUT, Profile, encode
from .gateway.providers import GATEWAY, PROVIDERS, Judge
from .journal import FAILED, OK, JournalError, Record
from .plan import Ask, Job, Planner
from .pricing import Budget
from .progress import Tally
from .prompt import retarget
from .redact import Secrets
from .verdict import ModelMismatch, ReplyError, completion, parse_verdict

#: Consecutive permanent failures of one judge (and no success) that stop the run: a
#: wrong model name or key should not be tried on every session.
BREAKER = 10
#: Tokens expected in a verdict, for the tpm window and the cost limit.
OUTPUT_ESTIMATE = 200
#: Characters of a reasoning model's own thinking kept beside its verdict.
THINKING_CHARS = 8000
#: Replies longer than this are parsed in a worker thread, off the event loop.
PARSE_IN_THREAD = 64 * 1024
#: Tries of a request to a gateway that has never answered and cannot be connected to
#: (refused, unknown host) before the run stops: a wrong --base-url, not a bad moment.
UNREACHABLE_TRIES = 3
#: Reply errors another try may pass (a proxy's HTML page, an empty body); a verdict
#: that does not parse or is cut off is the judge's answer, asked again only within
#: the retries and then failed for good.
_TRANSIENT_REPLIES = ("bad_response",)


class FatalError(Exception):
    """Stops the run at once (exit 2): authentication, a redirect, a judge that always
    fails, nothing listening at the gateway, I/O."""


def refuses_schema(error: GatewayError) -> bool:
    """A 400 that says the gateway does not take a JSON Schema response format."""
    text = str(error).lower()
    return (
        error.status == 400
        and ("response_format" in text or "json_schema" in text or "structured" in text)
        and any(word in text for word in ("support", "invalid", "unknown", "unrecognized"))
    )


class Asker:
    """Asks judges through one transport, for one run."""

    def __init__(
        self,
        transport: Transport,
        planner: Planner,
        *,
        retry: RetryOptions,
        gateway: GatewayOptions,
        budget: Budget,
        tally: Tally,
        control: RunControl,
        secrets: Secrets,
        max_output_tokens: int | None = None,
        unsettled: int = 64,
        judges: Mapping[str, Judge] | None = None,
        profiles: Mapping[str, Profile] | None = None,
        fallback_on: Sequence[str] = (),
    ) -> None:
        self.transport = transport
        #: Requests sent whose outcome is not yet durable (see `ask`).
        self.unsettled = anyio.Semaphore(unsettled)
        self.planner = planner
        self.retry = retry
        self.check_model = not gateway.allow_model_mismatch
        self.budget = budget
        self.tally = tally
        self.control = control
        self.secrets = secrets
        self.max_output = max_output_tokens
        self.output_estimate = max_output_tokens or OUTPUT_ESTIMATE
        #: Each judge's provider and endpoint, and how its requests are shaped (learned
        #: at run time: what a provider refused).
        self.judges = dict(judges or {})
        self.profiles: dict[str, Profile] = dict(profiles or {})
        self._gateway = GatewayOptions() if gateway is None else gateway
        #: Failures that give the slot to a fallback judge (--fallback-on).
        self.fallback_on = frozenset(fallback_on)
        self._failures: dict[str, int] = {}
        #: CPU seconds spent parsing replies.
        self.parse_cpu = 0.0

    @property
    def plain_json(self) -> set[str]:
        """Judges asked in JSON mode because their gateway refused a JSON Schema."""
        return {name for name, p in self.profiles.items() if p.structured == "json_object"}

    def judge(self, name: str) -> Judge:
        """A judge's provider and endpoint: as resolved for the run, or (a transport
        given by the caller) the gateway's, the name sent as it is."""
        judge = self.judges.get(name)
        if judge is None:
            judge = Judge(name, PROVIDERS[GATEWAY], name, "", "a transport given by the caller")
            self.judges[name] = judge
        return judge

    def profile(self, name: str) -> Profile:
        profile = self.profiles.get(name)
        if profile is None:
            profile = self.profiles[name] = profile_for(self.judge(name))
        return profile

    async def ask(self, job: Job, ask: Ask) -> list[Record] | None:
        """Ask until a verdict or no retry is left (module docstring). None: not asked.
        With --fallback-on, a failure it names is followed by the fallback judge's
        answer for the slot: both records are returned, in order.

        A request holds one of the `unsettled` tokens from the moment it is sent until
        its outcome is durable: the records returned still hold it, and the caller calls
        `settled()` once they are in the journal. A request waiting out a backoff
        holds none, so a kill can leave at most `unsettled`'s size answered and not
        durable, however many workers there are."""
        judge = ask.planned.assignment.judge
        assert judge is not None
        request = ask.request
        estimate = request.prompt_tokens + self.output_estimate
        reserve = self.budget.reserve(judge, request.prompt_tokens, self.output_estimate)
        if reserve is None:
            self.control.stop("max_cost")
            return None
        held = _Held(self.unsettled)
        try:
            record = await self._attempts(job, ask, judge, estimate, held)
            records = [record] if record is not None else []
            fallback = self._fallback(job, ask, record)
            if fallback is not None:
                fallback_judge = fallback.planned.assignment.judge
                second = await self._attempts(job, fallback, fallback_judge, estimate, held)
                if second is not None:
                    records.append(second)
        except FatalError:
            held.release()
            self.transport.stop_sending()  # the run ends: nothing more goes out
            raise
        except BaseException:
            held.release()
            raise
        finally:
            self.budget.release(reserve)
        if not records:
            held.release()
            return None
        return records

    def _fallback(self, job: Job, ask: Ask, record: Record | None) -> Ask | None:
        """The fallback judge's request for a slot whose judge failed in a way
        --fallback-on names (a content filter, a refusal), if one may take it."""
        if record is None or record.status != FAILED or not self.fallback_on:
            return None
        reason = (record.error or "").split(":", 1)[0]
        if reason not in self.fallback_on:
            return None
        planned = self.planner.fallback_for(job, ask.planned, f"{record.judge} answered {reason}")
        if planned is None:
            return None
        judge = planned.assignment.judge
        assert judge is not None
        return Ask(planned, retarget(ask.request, judge))

    def settled(self) -> None:
        """The records `ask` returned are durable: their token is free."""
        self.unsettled.release()

    def _learned(self, judge: str, change: str) -> None:
        """A provider refused a parameter: the judge's profile changed (once)."""
        self.tally.adjustments.append(f"{judge}: {change}")

    async def _attempts(
        self, job: Job, ask: Ask, judge: str | None, estimate: int, held: _Held
    ) -> Record | None:
        assert judge is not None
        request = ask.request
        base = self.planner.base_fields(job, ask.planned)
        usage: dict[str, int] = {}
        spent = _Spent()
        attempts = 0
        target = self.judge(judge)
        protocol = target.provider.protocol
        profile = self.profile(judge)
        max_output = self.max_output
        grown = False
        # Which request this is, for the gateway's logs and tracing: the journal key
        # (the same on every retry and resume) and the session.
        headers = {
            "X-Judge-Engine-Key": ask.planned.key,
            "X-Judge-Engine-Session": quote(job.session.session_id[:200], safe=""),
        }
        while True:
            if self.control.halted():
                return None  # no new request, not even a retry, after a signal
            await held.acquire()
            attempts += 1
            error: str
            raw: str | None = None
            hint: float | None = None
            transient = False
            body = encode(request.body, target, profile, max_output)
            try:
                reply = await self.transport.send(body, estimate, headers, model=judge)
                cpu = time.thread_time()
                try:
                    done = completion(
                        reply.data, target.model, check_model=self.check_model, protocol=protocol
                    )
                    spent.add(self, judge, done.usage, request.prompt_tokens, usage)
                    if done.refusal is not None or done.finish_reason == "refusal":
                        text = self.secrets.scrub((done.refusal or "refused")[:500])
                        return self._failed(
                            base, f"refused: {text}", done.content[:4000] or None, usage,
                            attempts, spent, judge, False,
                        )  # fmt: skip
                    if done.finish_reason == "content_filter":
                        return self._failed(
                            base, "content_filter: the provider's content filter stopped the "
                            "reply", None, usage, attempts, spent, judge, False,
                        )  # fmt: skip
                    if done.finish_reason == "length":
                        if not grown:
                            # Cut at the output limit: once more with a larger budget.
                            grown = True
                            max_output = max(2 * (max_output or DEFAULT_MAX_OUTPUT), 2048)
                            attempts -= 1
                            continue
                        return self._failed(
                            base, f"truncated: the reply was cut at {max_output:,} output "
                            "tokens twice", done.content[:4000], usage, attempts, spent, judge,
                            False,
                        )  # fmt: skip
                    if len(done.content) > PARSE_IN_THREAD:
                        # Large replies are parsed off the event loop (Ctrl-C works).
                        verdict = await anyio.to_thread.run_sync(
                            parse_verdict, done.content, None, job.rubric.form
                        )
                    else:
                        verdict = parse_verdict(done.content, None, job.rubric.form)
                finally:
                    self.parse_cpu += time.thread_time() - cpu
                self._failures[judge] = 0
                return Record(
                    **base,
                    status=OK,
                    success=verdict.success,
                    confidence=verdict.confidence,
                    reasoning=verdict.reasoning,
                    failure_mode=verdict.failure_mode,
                    failure_step=verdict.failure_step,
                    failure_note=verdict.failure_note or None,
                    criteria=dict(verdict.criteria) if verdict.criteria else None,
                    thinking=done.reasoning[:THINKING_CHARS] if done.reasoning else None,
                    usage=usage,
                    latency_ms=round(reply.latency_ms, 1),
                    attempts=attempts,
                    cost_usd=spent.value(self.budget),
                    served_model=done.served_model,
                    request_id=done.request_id,
                    at=time.time(),
                )
            except GatewayError as exc:
                if exc.kind == "stopped":
                    return None  # the run stopped before this request was on the wire
                if exc.kind == "submitted":
                    self.tally.submitted += 1  # in a batch at the server (--no-wait)
                    job.submitted += 1
                    return None
                if exc.kind == "auth":
                    raise FatalError(
                        f"the gateway at {self.transport.printable_url} refused the API key "
                        f"of judge {judge}: {exc.describe()}"
                    ) from None
                if exc.kind == "redirect":
                    raise FatalError(
                        f"the gateway at {self.transport.printable_url}: {exc}"
                    ) from None
                if exc.kind == "unreachable" and attempts >= min(
                    UNREACHABLE_TRIES, self.retry.max_retries + 1
                ):
                    raise FatalError(
                        f"cannot reach the gateway at {self.transport.printable_url} ({exc}): "
                        "check --base-url or $OPENAI_BASE_URL"
                    ) from None
                if exc.status == 400 and exc.kind != "content_filter":
                    try:
                        change = learn(profile, exc, _sent(body))
                    except ProfileError as problem:
                        return self._failed(
                            base, f"client_error 400: {problem}", raw, usage, attempts, spent,
                            judge, True,
                        )  # fmt: skip
                    if (
                        change is None
                        and profile.structured == "json_schema"
                        and refuses_schema(exc)
                    ):
                        profile.structured = "json_object"
                        change = "response_format: JSON mode (json_object) instead of a JSON Schema"
                        profile.adjustments.append(change)
                    if change is not None:
                        # This provider refuses a parameter: the profile changes once,
                        # and this request goes again at once, not counted as a retry.
                        if change:
                            self._learned(judge, change)
                        attempts -= 1
                        continue
                if exc.kind == "content_filter":
                    return self._failed(
                        base, f"content_filter: {exc}", raw, usage, attempts, spent, judge, False
                    )
                error = exc.describe()
                hint = exc.retry_after_s
                transient = exc.retryable
                if exc.later:  # for the next run, not for a retry now
                    return self._failed(
                        base, error, raw, usage, attempts, spent, judge, False, transient=True
                    )
                if not exc.retryable:
                    counted = exc.kind != "too_large_for_tpm"
                    return self._failed(base, error, raw, usage, attempts, spent, judge, counted)
            except ModelMismatch as exc:
                error = f"{exc.kind}: {exc}"
                return self._failed(base, error, exc.raw, usage, attempts, spent, judge, True)
            except ReplyError as exc:
                error = f"{exc.kind}: {exc}"
                raw = exc.raw[:4000]
                transient = exc.kind in _TRANSIENT_REPLIES
            except (FatalError, JournalError):
                raise
            except Exception as exc:
                error = f"internal_error: {type(exc).__name__}: {str(exc)[:300]}"
                return self._failed(base, error, raw, usage, attempts, spent, judge, True)
            if attempts > self.retry.max_retries:
                return self._failed(
                    base, error, raw, usage, attempts, spent, judge, False, transient=transient
                )
            self.tally.retries += 1
            held.release()  # a request waiting to retry is not in flight
            await anyio.sleep(self.transport.backoff(attempts, hint))

    def _failed(
        self,
        base: dict[str, Any],
        error: str,
        raw: str | None,
        usage: dict[str, int],
        attempts: int,
        spent: _Spent,
        judge: str,
        breaker: bool,
        *,
        transient: bool = False,
    ) -> Record:
        """A failure record; a judge whose first requests all fail for good stops the run.
        `breaker`: whether this failure counts towards that (retries spent do not: a
        flaky server is not a wrong model name). `transient`: another run may pass."""
        if breaker:
            count = self._failures.get(judge, 0) + 1
            self._failures[judge] = count
            if count >= BREAKER and not self.tally.judge(judge).verdicts:
                raise FatalError(
                    f"every request to judge {judge} fails ({count} in a row, no verdict "
                    f"yet): {self.secrets.scrub(error)}"
                )
        return Record(
            **base,
            status=FAILED,
            error=error,
            raw=raw,
            transient=transient,
            usage=usage,
            attempts=attempts,
            cost_usd=spent.value(self.budget),
            at=time.time(),
        )


def _sent(body: bytes) -> dict[str, Any]:
    """The body a refused request carried (read again only after a 400)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


class _Held:
    """Whether one request holds an `unsettled` token; released at most once."""

    __slots__ = ("_gate", "_held")

    def __init__(self, gate: anyio.Semaphore) -> None:
        self._gate = gate
        self._held = False

    async def acquire(self) -> None:
        if not self._held:
            await self._gate.acquire()
            self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._gate.release()


class _Spent:
    """What one request's replies cost, as their usage says."""

    __slots__ = ("cost",)

    def __init__(self) -> None:
        self.cost = 0.0

    def add(
        self,
        asker: Asker,
        judge: str,
        reply_usage: dict[str, int],
        prompt_estimate: int,
        usage: dict[str, int],
    ) -> None:
        prompt = reply_usage.get("prompt_tokens", prompt_estimate)
        completion_tokens = reply_usage.get("completion_tokens", 0)
        usage["prompt_tokens"] = usage.get("prompt_tokens", 0) + prompt
        usage["completion_tokens"] = usage.get("completion_tokens", 0) + completion_tokens
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        for detail in (
            "reasoning_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
        ):
            # Kept for the record: reasoning tokens are output the completion count
            # holds already (priced as output); cache tokens are in the prompt's.
            if reply_usage.get(detail):
                usage[detail] = usage.get(detail, 0) + reply_usage[detail]
        cost = asker.budget.spend(judge, prompt, completion_tokens)
        asker.tally.used(judge, prompt + completion_tokens, cost)
        if cost is not None:
            self.cost += cost

    def value(self, budget: Budget) -> float | None:
        return round(self.cost, 8) if budget.known else None
