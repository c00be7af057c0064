"""The engine: one resumable, rate-limited grading run, wired from the stages.

In: a `GradeConfig` and the API key. Out: a `RunResult`, and in OUT/ the journal,
`scores.jsonl`, `rejected.jsonl`, `run.json` and `summary.json`.

Three kinds of task run under one anyio task group, each with an owner:
- the producer reads sessions (in a worker thread: files and the hub block) and sends
  those with work left into a bounded stream, so memory stays flat;
- `concurrency` workers take a session, render its request once, guard each judge
  slot, and ask the gateway, retrying what may succeed on a second try;
- one writer appends finished records to the journal, fsync'd in batches, and only
  then counts them and streams their score rows.
Ctrl-C or SIGTERM stops the producer; requests in flight get a grace period, then are
cancelled; everything finished is durable, and the command that resumes is printed.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import orjson
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .gateway import DEFAULT_BASE_URL, Gateway, GatewayError, safe_url
from .guard import Assignment, assign
from .journal import (
    FAILED,
    OK,
    SKIPPED,
    Journal,
    JournalError,
    OutLock,
    Record,
    fingerprint_number,
    request_key,
)
from .pricing import PriceTable
from .progress import JudgeTally, Progress, format_summary
from .prompt import (
    PROMPT_VERSION,
    JudgeRequest,
    TooLarge,
    render_request,
    response_format,
    retarget,
)
from .redact import Secrets, redact_text
from .rubrics import Rubric, RubricSet
from .sessions import (
    DEFAULT_MAX_ROW_MB,
    Rejection,
    Session,
    count_rows,
    expand,
    read_sessions,
)
from .sinks import SCORES, JsonlWriter, RejectLog, rebuild_scores, score_row
from .verdict import ModelMismatch, ReplyError, completion, parse_verdict

#: Sessions the producer reads per trip to its thread.
_BATCH = 16
#: Records the writer makes durable with one fsync, at most.
_WRITE_BATCH = 512
#: Consecutive permanent failures of one judge (and no success) that stop the run:
#: a wrong model name or key should not be tried on every session.
_BREAKER = 10
#: OUT's record of the latest request's time, so that --rpm holds across a restart.
PACE_FILE = "last-request"
#: Tokens expected in a verdict, for the tpm window and the cost limit.
_OUTPUT_ESTIMATE = 200
#: Replies longer than this are parsed in a worker thread, off the event loop.
_PARSE_IN_THREAD = 64 * 1024


class FatalError(Exception):
    """Stops the run at once (exit 2): authentication, a judge that always fails, I/O."""


@dataclass(frozen=True)
class GradeConfig:
    sources: tuple[str, ...]
    judges: tuple[str, ...]
    fallbacks: tuple[str, ...] = ()
    base_url: str = DEFAULT_BASE_URL
    out: Path = Path("out")
    concurrency: int = 64
    rpm: float | None = None
    tpm: int | None = None
    max_retries: int = 6
    timeout_s: float = 120.0
    max_prompt_tokens: int = 32_000
    guard: str = "model"
    max_cost: float | None = None
    limit: int | None = None
    fresh: bool = False
    retry_failed: bool = False
    #: Ask again the sessions graded before whose row has changed since (by default
    #: their verdicts are kept and the run says how many changed).
    regrade_changed: bool = False
    quiet: bool = False
    fmt: str | None = None
    agent_model: str | None = None
    #: Rows larger than this are rejected without being held (`row_too_large`).
    max_row_mb: int = DEFAULT_MAX_ROW_MB
    rubrics_dir: str | None = None
    redact: bool = True
    prices: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    repeats: int = 1
    temperature: float = 0.0
    max_output_tokens: int | None = None
    allow_model_mismatch: bool = False
    grace_s: float = 10.0
    #: Exponential backoff between retries without a server hint: base * 2**n, capped.
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 60.0
    #: The longest one pause may hold every request (whatever the server asks).
    max_pause_s: float = 60.0
    #: The command line that resumes this run (printed when it stops early).
    resume_command: str | None = None

    def public(self) -> dict[str, Any]:
        """The configuration as written to OUT/run.json (it holds no secret)."""
        data = asdict(self)
        data["out"] = str(self.out)
        data["base_url"] = safe_url(self.base_url)
        data["prices"] = {k: list(v) for k, v in self.prices.items()}
        return data


@dataclass
class RunResult:
    exit_code: int
    message: str = ""
    rows_read: int = 0
    sessions: int = 0
    already_done: int = 0
    rejected: int = 0
    verdicts: int = 0
    failed: int = 0
    skipped: int = 0
    requests_sent: int = 0
    retries: int = 0
    throttled: int = 0
    tokens: int = 0
    cost_usd: float | None = 0.0
    wall_s: float = 0.0
    stopped: str | None = None
    score_rows: int = 0
    #: Sessions graded before whose row has changed since (see `regrade_changed`).
    changed: int = 0
    judges: dict[str, JudgeTally] = field(default_factory=dict)
    #: CPU seconds by stage: read (sources, adapters, guard, resume check), render,
    #: parse (verdicts), journal (durable writes, score rows), and the rest: HTTP, the
    #: event loop, limits and progress. Measured per thread, so stages do not overlap.
    cpu_s: dict[str, float] = field(default_factory=dict)

    def summary_json(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "judges"}
        data["judges"] = {
            name: {
                "verdicts": t.verdicts,
                "successes": t.successes,
                "failures": dict(t.failures),
                "skipped": t.skipped,
                "tokens": t.tokens,
                "cost_usd": round(t.cost_usd, 6),
            }
            for name, t in self.judges.items()
        }
        return data


@dataclass
class _Job:
    """One session with work left: its rubric and the requests still to make."""

    session: Session
    rubric: Rubric
    #: (assignment, sample, key) of every request not yet in the journal.
    pending: list[tuple[Assignment, int, str]]
    remaining: int = 0


class _Run:
    def __init__(self, config: GradeConfig, api_key: str | None) -> None:
        self.config = config
        self.api_key = api_key
        self.rubrics = RubricSet.load(config.rubrics_dir)
        self.prices = PriceTable(config.prices)
        self.result = RunResult(exit_code=0)
        self._stop_reason: str | None = None
        self.tallies: dict[str, JudgeTally] = {}
        self.spent = 0.0
        self.reserved = 0.0
        self.cost_known = True
        self.consecutive_failures: dict[str, int] = {}
        self._work_scope: anyio.CancelScope | None = None
        self._control: anyio.abc.TaskGroup | None = None
        self._sessions_limit = config.limit
        self.cpu: defaultdict[str, float] = defaultdict(float)
        #: The run's credentials, scrubbed from everything it writes or prints.
        self.secrets = Secrets(api_key, config.base_url)
        #: Judges whose gateway refused a JSON Schema response format: JSON mode.
        self.plain_json: set[str] = set()

    # --- the run ---------------------------------------------------------------

    async def execute(self) -> RunResult:
        """The run, holding OUT's lock until every output is final (the scores rewrite
        and the summary included): a second run cannot tear what this one writes."""
        config = self.config
        sources = expand(config.sources, exclude=(config.out,))
        with OutLock(config.out) as lock:
            await self._execute(sources, lock)
        return self.result

    async def _execute(self, sources: list[str], lock: OutLock) -> None:
        config = self.config
        started = time.monotonic()
        cpu_started = time.process_time()
        self.journal = Journal(config.out, fresh=config.fresh, lock=lock)
        try:
            self._write_json("run.json", config.public())
            total = self._total_rows(sources)
            self.progress = Progress(total, quiet=config.quiet)
            self.rejects = RejectLog(config.out)
            self.scores = JsonlWriter(config.out / SCORES, append=not config.fresh)
            try:
                async with Gateway(
                    config.base_url,
                    self.api_key,
                    timeout_s=config.timeout_s,
                    concurrency=config.concurrency,
                    rpm=config.rpm,
                    tpm=config.tpm,
                    backoff_base_s=config.backoff_base_s,
                    backoff_cap_s=config.backoff_cap_s,
                    max_pause_s=config.max_pause_s,
                    pace_file=config.out / PACE_FILE,
                ) as gateway:
                    self.gateway = gateway
                    await self._run_tasks(sources)
            finally:
                self.progress.close(self._status())
                self.rejects.close()
                self.scores.close()
        except (FatalError, JournalError) as exc:
            self.result.exit_code = 2
            self.result.message = self.secrets.scrub(str(exc))
        finally:
            self.journal.close()
        self.result.wall_s = time.monotonic() - started
        cpu_total = time.process_time() - cpu_started
        stages = {k: round(v, 4) for k, v in self.cpu.items()}
        stages["http_and_loop"] = round(max(0.0, cpu_total - sum(self.cpu.values())), 4)
        stages["total"] = round(cpu_total, 4)
        self.result.cpu_s = stages
        self._finish()

    async def _run_tasks(self, sources: list[str]) -> None:
        send_jobs, receive_jobs = anyio.create_memory_object_stream[_Job](
            max(2, self.config.concurrency)
        )
        send_records, receive_records = anyio.create_memory_object_stream[_Done](
            self.config.concurrency * 4
        )
        try:
            async with anyio.create_task_group() as outer:
                outer.start_soon(self._writer, receive_records)
                async with anyio.create_task_group() as control:
                    self._control = control
                    control.start_soon(self._watch_signals)
                    control.start_soon(self._tick)
                    async with anyio.create_task_group() as work:
                        self._work_scope = work.cancel_scope
                        work.start_soon(self._produce, send_jobs, sources)
                        for _ in range(self.config.concurrency):
                            work.start_soon(
                                self._worker, receive_jobs.clone(), send_records.clone()
                            )
                        receive_jobs.close()
                        send_records.close()
                    control.cancel_scope.cancel()
        except BaseException as group:  # unwrap the one error that ended the run
            fatal = _first(group, (FatalError, JournalError))
            if fatal is not None:
                raise fatal from None
            raise

    # --- producer ----------------------------------------------------------------

    def _total_rows(self, sources: list[str]) -> int | None:
        counts = [count_rows(s) for s in sources]
        if any(c is None for c in counts):
            return self.config.limit
        total = sum(c for c in counts if c is not None)
        return min(total, self.config.limit) if self.config.limit else total

    async def _produce(self, send: MemoryObjectSendStream[_Job], sources: list[str]) -> None:
        items = read_sessions(
            sources,
            fmt=self.config.fmt,
            agent_model=self.config.agent_model,
            max_row_mb=self.config.max_row_mb,
        )
        async with send:
            while not self.stopping():
                jobs, finished, more = await anyio.to_thread.run_sync(self._next_batch, items)
                self.progress.advance(finished, self._status())
                for job in jobs:
                    if self.stopping():
                        return
                    try:
                        await _send(send, job)
                    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                        return
                if not more:
                    return

    def _next_batch(self, items: Iterator[Session | Rejection]) -> tuple[list[_Job], int, bool]:
        """In the producer's thread: read sessions until a batch has work to do.

        Returns the jobs, how many rows were finished without work (rejected, or done
        in an earlier run) and whether more rows may follow.
        """
        cpu = time.thread_time()
        try:
            return self._read_batch(items)
        finally:
            self.cpu["read"] += time.thread_time() - cpu

    def _read_batch(self, items: Iterator[Session | Rejection]) -> tuple[list[_Job], int, bool]:
        jobs: list[_Job] = []
        finished = 0
        while len(jobs) < _BATCH:
            if self._sessions_limit is not None and self.result.sessions >= self._sessions_limit:
                return jobs, finished, False
            item = next(items, None)
            if item is None:
                return jobs, finished, False
            self.result.rows_read += 1
            if isinstance(item, Rejection):
                self.rejects.add(item)
                self.result.rejected += 1
                finished += 1
                continue
            self.result.sessions += 1
            job = self._job(item)
            if job.pending:
                job.remaining = len(job.pending)
                jobs.append(job)
            else:
                self.result.already_done += 1
                finished += 1
        return jobs, finished, True

    def _job(self, session: Session) -> _Job:
        rubric = self.rubrics.for_benchmark(session.benchmark)
        pending = []
        current = fingerprint_number(session.source.fingerprint)
        changed = False
        assignments = assign(
            self.config.judges, self.config.fallbacks, session.agent_models, self.config.guard
        )
        for assignment in assignments:
            for sample in range(self.config.repeats):
                key = request_key(
                    session.session_id,
                    assignment.slot,
                    assignment.judge or "",
                    rubric.version,
                    PROMPT_VERSION,
                    sample,
                )
                done, graded = self.journal.lookup(key, retry_failed=self.config.retry_failed)
                if done and graded and graded != current:
                    # Graded before, from a row whose content has changed since.
                    changed = True
                    done = not self.config.regrade_changed
                if not done:
                    pending.append((assignment, sample, key))
        if changed:
            self.result.changed += 1
        return _Job(session, rubric, pending)

    # --- workers -----------------------------------------------------------------

    async def _worker(
        self,
        jobs: MemoryObjectReceiveStream[_Job],
        records: MemoryObjectSendStream[_Done],
    ) -> None:
        async with jobs, records:
            while not self.stopping():
                # Take a waiting job without a trip through the event loop; await only
                # when there is none (anyio's receive always checkpoints first).
                try:
                    job = jobs.receive_nowait()
                except anyio.WouldBlock:
                    try:
                        job = await jobs.receive()
                    except anyio.EndOfStream:
                        return
                except anyio.EndOfStream:
                    return
                await self._grade(job, records)

    async def _grade(self, job: _Job, records: MemoryObjectSendStream[_Done]) -> None:
        """Every pending request of one session. Each answer is made durable before the
        worker takes another session: a kill loses at most the requests in flight."""
        requests: dict[str, JudgeRequest] = {}
        base: JudgeRequest | None = None
        asks = []
        for assignment, sample, key in job.pending:
            if assignment.judge is None:
                await self._record(records, job, self._skip_record(job, assignment, sample, key))
                continue
            cpu = time.thread_time()
            try:
                if base is None:
                    base = render_request(
                        job.session,
                        job.rubric,
                        assignment.judge,
                        max_prompt_tokens=self.config.max_prompt_tokens,
                        redact=self.config.redact,
                        temperature=self.config.temperature,
                        max_tokens=self.config.max_output_tokens,
                        secrets=self.secrets.values,
                    )
                    requests[assignment.judge] = base
                request = requests.get(assignment.judge) or retarget(base, assignment.judge)
            except TooLarge as exc:
                record = self._failed_unasked(job, assignment, sample, key, f"too_large: {exc}")
                await self._record(records, job, record)
                continue
            except Exception as exc:  # one session's rendering, never the run's crash
                error = f"render_error: {type(exc).__name__}: {self.secrets.scrub(str(exc))}"
                record = self._failed_unasked(job, assignment, sample, key, error[:500])
                await self._record(records, job, record)
                continue
            finally:
                self.cpu["render"] += time.thread_time() - cpu
            requests[assignment.judge] = request
            asks.append((assignment, sample, key, request))
        if not asks:
            return

        async def ask(assignment: Assignment, sample: int, key: str, request: JudgeRequest) -> None:
            record = await self._ask(job, assignment, sample, key, request)
            if record is not None:
                await self._record(records, job, record)

        if len(asks) == 1:  # one judge: no task group needed
            await ask(*asks[0])
            return
        async with anyio.create_task_group() as group:
            for item in asks:
                group.start_soon(ask, *item)

    async def _record(
        self, records: MemoryObjectSendStream[_Done], job: _Job, record: Record
    ) -> None:
        """Hand a finished record to the writer and wait until it is durable."""
        done = _Done(job, self._scrubbed(record))
        await _send(records, done)
        await done.durable.wait()

    def _scrubbed(self, record: Record) -> Record:
        """The record without the run's credentials, whatever a gateway echoed."""
        secrets = self.secrets
        return replace(
            record,
            reasoning=secrets.scrub_optional(record.reasoning),
            raw=secrets.scrub_optional(record.raw),
            error=secrets.scrub_optional(record.error),
        )

    def _failed_unasked(
        self, job: _Job, assignment: Assignment, sample: int, key: str, error: str
    ) -> Record:
        """A request that could not be made at all (the session does not fit)."""
        return Record(
            **self._base_record(job, assignment, sample, key),
            status=FAILED,
            error=error,
            at=time.time(),
        )

    def _base_record(
        self, job: _Job, assignment: Assignment, sample: int, key: str
    ) -> dict[str, Any]:
        session = job.session
        meta = session.metadata
        label = meta.get("success")
        usage = {
            name: int(meta[name])
            for name in ("input_tokens", "output_tokens", "total_tokens")
            if isinstance(meta.get(name), (int, float)) and not isinstance(meta.get(name), bool)
        }
        if "total_tokens" not in usage and {"input_tokens", "output_tokens"} <= set(usage):
            usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
        agent_cost = meta.get("agent_cost")
        return {
            "key": key,
            "session_id": session.session_id,
            "slot": assignment.slot,
            "judge": assignment.judge,
            "sample": sample,
            "rubric": job.rubric.name,
            "rubric_version": job.rubric.version,
            "prompt_version": PROMPT_VERSION,
            "guard": assignment.to_dict(),
            "benchmark": session.benchmark,
            "harness": session.harness,
            "agent_models": session.agent_models,
            "label": int(label) if isinstance(label, (bool, int)) and label in (0, 1) else None,
            "agent_usage": usage,
            "agent_cost_usd": float(agent_cost)
            if isinstance(agent_cost, (int, float)) and not isinstance(agent_cost, bool)
            else None,
            "fingerprint": session.source.fingerprint or None,
        }

    def _skip_record(self, job: _Job, assignment: Assignment, sample: int, key: str) -> Record:
        return Record(
            **self._base_record(job, assignment, sample, key),
            status=SKIPPED,
            error=assignment.reason,
            at=time.time(),
        )

    async def _ask(
        self,
        job: _Job,
        assignment: Assignment,
        sample: int,
        key: str,
        request: JudgeRequest,
    ) -> Record | None:
        """Ask one judge until it gives a verdict or no retry is left. None: not asked.

        Whatever goes wrong with one reply is this request's failure with its reason,
        never the run's: answered verdicts are never lost to a later strange reply."""
        judge = assignment.judge
        assert judge is not None
        config = self.config
        output = config.max_output_tokens or _OUTPUT_ESTIMATE
        estimate = request.prompt_tokens + output
        reserve = self._reserve(judge, request.prompt_tokens, output)
        if reserve is None:
            return None
        usage: dict[str, int] = {}
        cost = 0.0
        attempts = 0
        base = self._base_record(job, assignment, sample, key)
        # Which request this is, for the gateway's logs and tracing: the journal key
        # (the same on every retry and resume) and the session.
        headers = {
            "X-Judge-Engine-Key": key,
            "X-Judge-Engine-Session": quote(job.session.session_id[:200], safe=""),
        }
        try:
            while True:
                attempts += 1
                error: str
                raw: str | None = None
                hint: float | None = None
                structured = judge not in self.plain_json
                body = orjson.dumps(
                    request.body
                    if structured
                    else {**request.body, "response_format": response_format(False)}
                )
                try:
                    reply = await self.gateway.send(body, estimate, headers)
                    cpu = time.thread_time()
                    try:
                        done = completion(
                            reply.data, judge, check_model=not config.allow_model_mismatch
                        )
                        cost += self._spend(judge, done.usage, request.prompt_tokens, usage)
                        if len(done.content) > _PARSE_IN_THREAD:
                            # Large replies are parsed off the event loop (Ctrl-C works).
                            verdict = await anyio.to_thread.run_sync(
                                parse_verdict, done.content, done.finish_reason
                            )
                        else:
                            verdict = parse_verdict(done.content, done.finish_reason)
                    finally:
                        self.cpu["parse"] += time.thread_time() - cpu
                    self.consecutive_failures[judge] = 0
                    return Record(
                        **base,
                        status=OK,
                        success=verdict.success,
                        confidence=verdict.confidence,
                        reasoning=verdict.reasoning,
                        usage=usage,
                        latency_ms=round(reply.latency_ms, 1),
                        attempts=attempts,
                        cost_usd=round(cost, 8) if self.cost_known else None,
                        served_model=done.served_model,
                        at=time.time(),
                    )
                except GatewayError as exc:
                    if exc.kind == "auth":
                        raise FatalError(
                            f"the gateway at {self.gateway.printable_url} refused the API key: "
                            f"{exc.describe()}"
                        ) from None
                    if exc.kind == "redirect":
                        raise FatalError(
                            f"the gateway at {self.gateway.printable_url}: {exc}"
                        ) from None
                    if structured and _refuses_schema(exc):
                        # This gateway takes no JSON Schema: plain JSON mode from now on,
                        # for this judge, and this request asked again at once.
                        self.plain_json.add(judge)
                        attempts -= 1
                        continue
                    error = exc.describe()
                    hint = exc.retry_after_s
                    if not exc.retryable:
                        breaker = exc.kind != "too_large_for_tpm"
                        return self._failed(
                            base, error, raw, usage, attempts, cost, judge, breaker=breaker
                        )
                except ModelMismatch as exc:
                    return self._failed(
                        base, f"{exc.kind}: {exc}", exc.raw, usage, attempts, cost, judge
                    )
                except ReplyError as exc:
                    error = f"{exc.kind}: {exc}"
                    raw = exc.raw[:4000]
                except (FatalError, JournalError):
                    raise
                except Exception as exc:
                    error = f"internal_error: {type(exc).__name__}: {str(exc)[:300]}"
                    return self._failed(base, error, raw, usage, attempts, cost, judge)
                if attempts > config.max_retries:
                    return self._failed(
                        base, error, raw, usage, attempts, cost, judge, breaker=False
                    )
                self.result.retries += 1
                await anyio.sleep(self.gateway.backoff(attempts, hint))
        finally:
            self.reserved -= reserve

    def _failed(
        self,
        base: dict[str, Any],
        error: str,
        raw: str | None,
        usage: dict[str, int],
        attempts: int,
        cost: float,
        judge: str,
        *,
        breaker: bool = True,
    ) -> Record:
        if breaker:
            count = self.consecutive_failures.get(judge, 0) + 1
            self.consecutive_failures[judge] = count
            if count >= _BREAKER and not self._tally(judge).verdicts:
                raise FatalError(
                    f"every request to judge {judge} fails ({count} in a row, no verdict yet): "
                    f"{error}"
                )
        return Record(
            **base,
            status=FAILED,
            error=error,
            raw=raw,
            usage=usage,
            attempts=attempts,
            cost_usd=round(cost, 8) if self.cost_known else None,
            at=time.time(),
        )

    # --- cost ----------------------------------------------------------------------

    def _reserve(self, judge: str, prompt_tokens: int, output_tokens: int) -> float | None:
        """Hold the request's expected cost; None (and stop) when it would pass --max-cost."""
        expected = self.prices.cost(judge, prompt_tokens, output_tokens)
        if expected is None:
            self.cost_known = False
            return 0.0
        limit = self.config.max_cost
        if limit is not None and self.spent + self.reserved + expected > limit:
            self._stop("max_cost")
            return None
        self.reserved += expected
        return expected

    def _spend(
        self, judge: str, reply_usage: dict[str, int], prompt_estimate: int, usage: dict[str, int]
    ) -> float:
        prompt = reply_usage.get("prompt_tokens", prompt_estimate)
        completion_tokens = reply_usage.get("completion_tokens", 0)
        usage["prompt_tokens"] = usage.get("prompt_tokens", 0) + prompt
        usage["completion_tokens"] = usage.get("completion_tokens", 0) + completion_tokens
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        cost = self.prices.cost(judge, prompt, completion_tokens)
        self.result.tokens += prompt + completion_tokens
        tally = self._tally(judge)
        tally.tokens += prompt + completion_tokens
        if cost is None:
            self.cost_known = False
            return 0.0
        self.spent += cost
        tally.cost_usd += cost
        return cost

    # --- writer ---------------------------------------------------------------------

    async def _writer(self, receive: MemoryObjectReceiveStream[_Done]) -> None:
        async with receive:
            while True:
                try:
                    first = await receive.receive()
                except anyio.EndOfStream:
                    return
                batch = [first]
                # Group commit without waiting: everything already finished joins this
                # fsync; what finishes during it joins the next. Each record's worker
                # waits for it, so no answered request sits in a buffer at a kill.
                while len(batch) < _WRITE_BATCH:
                    try:
                        batch.append(receive.receive_nowait())
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                records = [done.record for done in batch]
                # fsync off the event loop; only after it do the records count.
                await anyio.to_thread.run_sync(self._append, records)
                cpu = time.thread_time()
                finished = 0
                for done in batch:
                    record = done.record
                    self._count(record)
                    if record.sample == 0:
                        self.scores.write(score_row(record), flush=False)
                    done.job.remaining -= 1
                    if done.job.remaining == 0:
                        finished += 1
                self.scores.flush()  # streamed: a batch at a time
                for done in batch:
                    done.durable.set()
                self.cpu["journal"] += time.thread_time() - cpu
                self.progress.advance(finished, self._status())

    def _append(self, records: list[Record]) -> None:
        """In a worker thread: make a batch durable."""
        cpu = time.thread_time()
        try:
            self.journal.append(records)
        finally:
            self.cpu["journal"] += time.thread_time() - cpu

    def _tally(self, judge: str) -> JudgeTally:
        tally = self.tallies.get(judge)
        if tally is None:
            tally = self.tallies[judge] = JudgeTally()
        return tally

    def _count(self, record: Record) -> None:
        if record.status == OK:
            self.result.verdicts += 1
            tally = self._tally(record.judge or record.slot)
            tally.verdicts += 1
            tally.successes += record.success or 0
        elif record.status == FAILED:
            self.result.failed += 1
            reason = (record.error or "unknown").split(":")[0]
            self._tally(record.judge or record.slot).failures[reason] += 1
        else:
            self.result.skipped += 1
            self._tally(record.slot).skipped += 1

    def _status(self) -> dict[str, Any]:
        stats = self.gateway.stats if hasattr(self, "gateway") else None
        status: dict[str, Any] = {
            "verdicts": self.result.verdicts,
            "in_flight": self.gateway.in_flight if stats else 0,
            "retries": self.result.retries,
            "429s": stats.throttled if stats else 0,
            "failed": self.result.failed,
            "tokens": self.result.tokens,
        }
        if self.cost_known:
            status["cost"] = f"${self.spent:,.4f}"
        pause = self.gateway.status() if stats else ""
        if pause:
            status["server"] = pause
        return status

    async def _tick(self) -> None:
        """Refresh the progress line every second, so a pause says so while it lasts."""
        while True:
            await anyio.sleep(1.0)
            self.progress.refresh(self._status())

    # --- stopping ---------------------------------------------------------------

    async def _watch_signals(self) -> None:
        try:
            receiver = anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM)
        except (NotImplementedError, ValueError, RuntimeError):
            return  # not the main thread: the caller owns signals
        with receiver as signals:
            async for _ in signals:
                if self.stopping() and self._work_scope is not None:
                    self._work_scope.cancel()  # a second signal: stop now
                else:
                    self._stop("signal")

    def stopping(self) -> bool:
        """Whether the run takes no new sessions (a method: other tasks change it)."""
        return self._stop_reason is not None

    def _stop(self, reason: str) -> None:
        if self._stop_reason is not None:
            return
        self._stop_reason = reason
        self.result.stopped = reason
        if reason == "signal" and self._control is not None:
            self._control.start_soon(self._grace)

    async def _grace(self) -> None:
        await anyio.sleep(self.config.grace_s)
        if self._work_scope is not None:
            self._work_scope.cancel()

    # --- the end -------------------------------------------------------------------

    def _finish(self) -> None:
        result = self.result
        result.judges = self.tallies
        if hasattr(self, "gateway"):
            result.requests_sent = self.gateway.stats.sent
            result.throttled = self.gateway.stats.throttled
        result.cost_usd = round(self.spent, 6) if self.cost_known else None
        if result.exit_code != 2:
            try:
                result.score_rows = rebuild_scores(self.config.out)
            except OSError as exc:
                result.exit_code = 2
                result.message = f"cannot write {self.config.out / SCORES}: {exc.strerror}"
        if result.exit_code == 0:
            if result.stopped == "signal":
                result.exit_code = 130
            elif result.stopped == "max_cost" or result.failed:
                result.exit_code = 1
        with contextlib.suppress(JournalError):  # the summary is a convenience, not the record
            self._write_json("summary.json", result.summary_json())

    def _write_json(self, name: str, data: Mapping[str, Any]) -> None:
        path = self.config.out / name
        try:
            path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2, default=str))
        except OSError as exc:
            raise JournalError(f"cannot write {path}: {exc.strerror or exc}") from None

    def summary_text(self) -> str:
        r = self.result
        return format_summary(
            self.tallies,
            wall_s=r.wall_s,
            sent=r.requests_sent,
            retries=r.retries,
            throttled=r.throttled,
            tokens=r.tokens,
            cost_usd=r.cost_usd,
        )


def _refuses_schema(error: GatewayError) -> bool:
    """A 400 that says the gateway does not take a JSON Schema response format."""
    text = str(error).lower()
    return (
        error.status == 400
        and ("response_format" in text or "json_schema" in text or "structured" in text)
        and any(word in text for word in ("support", "invalid", "unknown", "unrecognized"))
    )


@dataclass
class _Done:
    """A finished record on its way to the journal; `durable` is set once it is."""

    job: _Job
    record: Record
    durable: anyio.Event = field(default_factory=anyio.Event)


async def _send(stream: MemoryObjectSendStream[Any], item: Any) -> None:
    """Send without a trip through the event loop when the buffer has room."""
    try:
        stream.send_nowait(item)
    except anyio.WouldBlock:
        await stream.send(item)


def _first(error: BaseException, kinds: tuple[type[BaseException], ...]) -> BaseException | None:
    """The first error of the given kinds inside a (nested) exception group."""
    if isinstance(error, kinds):
        return error
    for inner in getattr(error, "exceptions", ()):
        found = _first(inner, kinds)
        if found is not None:
            return found
    return None


async def grade(config: GradeConfig, api_key: str | None) -> tuple[RunResult, str]:
    """Run one grading run; return its result and the closing summary text."""
    run = _Run(config, api_key)
    result = await run.execute()
    return result, run.summary_text()


def resume_command(argv: Sequence[str], secrets: Secrets | None = None) -> str:
    """The command line that resumes a run: the same one, without --fresh (options are
    never abbreviated, and a config file may not set it), and with any credential in it
    (say, in a --base-url) replaced: it is printed and stored."""
    kept = [a for a in argv if a != "--fresh"]
    line = "judge-engine " + shlex.join(kept)
    return secrets.scrub(line) if secrets is not None else redact_text(line)


__all__ = ["FatalError", "GradeConfig", "RunResult", "grade", "resume_command"]
