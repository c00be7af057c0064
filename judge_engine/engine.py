"""The engine: one resumable, rate-limited grading run, wired from the stages.

In: a `Config`, the API key, and optionally a `Transport` (default: the live HTTP
gateway the config names). Out: a `RunResult` whose `status` says how the run ended,
and in OUT/ the journal, `scores.jsonl`, `rejected.jsonl`, `run.json` and
`summary.json`.

Three kinds of task run under one anyio task group, each with an owner:
- the producer reads sessions (in a worker thread: files and the hub block), plans each
  (`plan`) and sends those with work left into a bounded stream, so memory stays flat;
- `WORKERS_PER_SLOT` x `concurrency` workers take a session, render its requests once
  and ask each judge (`asking`); a worker takes no new session until its answers are
  durable. The transport caps what is in flight at `concurrency`; the extra workers
  keep its slots full while others wait out a retry's backoff;
- one writer appends finished records to the journal, fsync'd in groups, and only
  then counts them, streams their score rows and tells their workers.
Stopping (`control`) ends the producer and every new request; what is on the wire gets
the grace period; the writer drains last. OUT is locked from the first read to the last
write.
"""

from __future__ import annotations

import contextlib
import shlex
import threading
import time
from array import array
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import anyio
import orjson
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from . import canary, transcripts
from .asking import Asker, FatalError
from .config import Config
from .control import RunControl
from .endpoints import Keys, describe, open_transport, profiles, resolve_judges
from .files import UnsafePath, write_atomic
from .gateway import Transport, safe_url
from .journal import FAILED, SKIPPED, Journal, JournalError, OutLock, Record
from .plan import Ask, GradedRows, Job, Planner, Prepared, known_rows
from .pricing import Budget
from .progress import JudgeTally, Progress, Tally, format_summary
from .redact import Secrets, redact_text
from .rubrics import RubricSet
from .sessions import (
    Known,
    KnownRows,
    ReadOptions,
    Rejection,
    Session,
    SourceError,
    count_rows,
    expand,
    read_sessions,
)
from .sinks import (
    SCORES,
    JsonlWriter,
    RejectLog,
    mark_scores,
    rebuild_scores,
    score_row,
    scores_current,
)
from .transcripts import TranscriptLog
from .workers import PoolError, PreparedReader, Setup, default_workers

#: Workers per request the transport may have in flight: a worker waiting out a
#: retry's backoff holds no slot, and another worker's request takes it.
WORKERS_PER_SLOT = 2
#: Sessions the producer reads per trip to its thread.
_BATCH = 16
#: Records the writer makes durable with one fsync, at most.
_WRITE_BATCH = 512
#: The sources options that change which sessions rows make (with their defaults, for
#: a run.json written before the option existed): a resume skips rows unparsed only
#: when they are read as before.
_READING = (
    ("format", None), ("agent_model", None), ("session_by", "auto"), ("benchmark", None),
    ("benchmark_from", None),
)  # fmt: skip
#: How a run ended: "done" (every session has its verdicts, guard skips included),
#: "incomplete" (some could not be graded), "max_cost" (stopped before --max-cost),
#: "submitted" (requests left in batches at the server, --no-wait: the same command
#: collects them), "interrupted" (a signal; resumable), "error" (it could not run:
#: `message` says why).
STATUSES = ("done", "incomplete", "max_cost", "submitted", "interrupted", "error")


@dataclass
class RunResult:
    status: str = "done"
    message: str = ""
    rows_read: int = 0
    #: Sessions read (rejected rows are not sessions).
    sessions: int = 0
    #: Sessions of which this run finished every request with a verdict (or a skip).
    graded: int = 0
    #: Sessions earlier runs had finished: nothing was asked.
    already_done: int = 0
    #: Sessions lacking a verdict because a request failed: in this run, or for good in
    #: an earlier one (left for --retry-failed).
    sessions_failed: int = 0
    #: Sessions taken but not finished when the run stopped (asked again on resume).
    not_reached: int = 0
    #: Sessions whose every request this run was a guard skip (no model may judge them).
    sessions_skipped: int = 0
    #: Sessions whose requests wait in batches at the server (--no-wait).
    sessions_submitted: int = 0
    #: Whether the run stopped before reading every source.
    sources_left: bool = False
    rejected: int = 0
    #: Requests: verdicts, failures and guard skips made durable by this run.
    verdicts: int = 0
    failed: int = 0
    #: Of the failed requests, those another try may pass: the next run asks them.
    failed_transient: int = 0
    #: Requests earlier runs failed for good, not asked (see --retry-failed).
    failed_before: int = 0
    #: Requests left in batches at the server (--no-wait), and those batches.
    submitted: int = 0
    skipped: int = 0
    #: Guard skips by judge slot, and the reason of one of them per slot.
    skipped_slots: dict[str, int] = field(default_factory=dict)
    skip_reasons: dict[str, str] = field(default_factory=dict)
    #: Sources (files, or hub datasets) read to their end that yielded no session.
    empty_sources: list[str] = field(default_factory=list)
    #: Sources a stopped run did not reach (not read at all).
    sources_not_read: int = 0
    #: Where --fresh moved the earlier journal.
    moved_aside: str | None = None
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
    #: Requests a batch's files answered twice, differently (asked again).
    conflicting: int = 0
    #: What earlier runs on OUT spent (USD), counted against --max-cost.
    spent_before: float = 0.0
    #: What providers refused and how each judge's requests were adjusted, by judge.
    adjustments: dict[str, list[str]] = field(default_factory=dict)
    judges: dict[str, JudgeTally] = field(default_factory=dict)
    #: What the canaries said (`--canary`): graded how many, and any judge that moved
    #: since the last run (`canary.compare`).
    canary_lines: list[str] = field(default_factory=list)
    #: CPU seconds by stage: read (sources, adapters, planning, resume check), render,
    #: parse (verdicts), journal (durable writes, score rows), and the rest: HTTP, the
    #: event loop, limits and progress. Measured per thread, so stages do not overlap.
    cpu_s: dict[str, float] = field(default_factory=dict)

    @property
    def lacking(self) -> int:
        """Sessions without all their verdicts when the run ended."""
        return self.sessions_failed + self.not_reached

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
class _Done:
    """A finished record on its way to the journal; `durable` is set once it is."""

    job: Job
    record: Record
    #: The session's rendered user message (`transcripts`), with its first record.
    transcript: bytes | None = None
    #: A failure a fallback judge's answer follows (--fallback-on): not the session's.
    superseded: bool = False
    durable: anyio.Event = field(default_factory=anyio.Event)


class _Run:
    """One run's producer, workers and writer, and the stages they share."""

    def __init__(
        self,
        config: Config,
        api_key: str | None,
        transport: Transport | None,
        resume_command: str | None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.api_key = api_key
        #: The panel's judges, resolved to their providers and endpoints, and their keys.
        self.judges = resolve_judges(config, environ)
        self.keys = Keys.of(
            self.judges,
            api_key,
            config.gateway.api_key_env,
            environ,
            require=transport is None,
        )
        self.resume_command = resume_command
        self.out = Path(config.run.out)
        self._given_transport = transport
        self.rubrics = RubricSet.load(config.request.rubrics)
        #: How each judge is asked: its family's profile and what earlier runs learned.
        self.profiles = profiles(config, self.judges, self._learned())
        self.result = RunResult()
        self.tally = Tally()
        self.budget = Budget(config.price_table(), config.run.max_cost)
        #: The run's credentials (every provider's key, every endpoint's URL), scrubbed
        #: from everything it writes or prints.
        self.secrets = Secrets(
            [k for k in (api_key, *self.keys.values()) if k],
            [config.gateway.url, *(j.base_url for j in self.judges.values())],
        )
        self.cpu: defaultdict[str, float] = defaultdict(float)
        #: Sessions read per source, to name the sources that yielded none; the sources
        #: that gave anything (a session or a rejection).
        self.per_source: Counter[str] = Counter()
        self.reached: set[str] = set()
        #: Sessions handed to workers and not yet finished.
        self.open_jobs = 0
        #: Whether the producer read every row it was meant to (or up to --limit).
        self.read_all = False
        #: The rows the sources hold, once counted (`_count`).
        self.counted: int | None = None
        #: Whether the journal was new (empty) when the run began.
        self.started_empty = False
        #: Whether the streamed scores.jsonl was made durable at the end.
        self.scores_synced = False

    async def execute(self) -> RunResult:
        """The run, holding OUT's lock until every output is final (the scores rewrite
        and the summary included): a second run cannot tear what this one writes."""
        sources = expand(self.config.sources.sources, exclude=(self.out,))
        with OutLock(self.out) as lock:
            await self._execute(sources, lock)
        return self.result

    async def _execute(self, sources: list[str], lock: OutLock) -> None:
        config = self.config
        started = time.monotonic()
        cpu_started = time.process_time()
        self.planner = Planner(
            config.panel,
            config.request,
            self.rubrics,
            lookup=lambda key: self.journal.lookup(key, retry_failed=config.run.retry_failed),
            regrade_changed=config.run.regrade_changed,
            secrets=self.secrets.values,
        )
        # Rows graded before are skipped unparsed, if they would be read as they were.
        before = self._previous_sources()
        same_reading = isinstance(before, dict) and all(
            before.get(name, default) == getattr(config.sources, name) for name, default in _READING
        )
        graded = GradedRows(self.planner) if same_reading and not config.run.fresh else None
        self.journal = Journal(
            self.out,
            fresh=config.run.fresh,
            lock=lock,
            visit=graded.visit if graded else None,
            snapshot_tag=self._snapshot_tag() if graded else None,
        )
        # --max-cost is the folder's: what its earlier runs spent counts against it.
        self.budget.before = self.journal.spent_before
        self.result.spent_before = round(self.journal.spent_before, 6)
        self.known: KnownRows | None = None
        #: The same rows as arrays, for worker processes (`workers.Setup`).
        self._known_arrays: tuple[array[int], array[int]] | None = None
        if graded is not None:
            snapshot = self.journal.snapshot
            prints, ids = (
                (snapshot["known_prints"], snapshot["known_ids"])
                if snapshot is not None
                else graded.rows(self.journal.lookup_number)
            )
            self.known = known_rows(prints, ids)
            self._known_arrays = (prints, ids) if self.known is not None else None
        try:
            self._write_json("run.json", self._run_json())
            self.progress = Progress(config.run.limit, quiet=config.run.quiet)
            self._count(sources)
            self.rejects = RejectLog(self.out)
            # A new journal: the rows streamed now are all the score columns there are.
            self.started_empty = self.journal.size_at_start == 0
            self.scores = JsonlWriter(self.out / SCORES, append=not self.started_empty)
            self.transcripts = TranscriptLog(self.out)
            try:
                async with self._transport() as transport:
                    self.transport = transport
                    self.control = RunControl(
                        config.run.grace,
                        in_flight=lambda: transport.in_flight,
                        say=self.progress.say,
                        on_stop=transport.stop_sending,
                    )
                    self.asker = Asker(
                        transport,
                        self.planner,
                        retry=config.retry,
                        gateway=config.gateway,
                        budget=self.budget,
                        tally=self.tally,
                        control=self.control,
                        secrets=self.secrets,
                        max_output_tokens=config.panel.max_output_tokens,
                        unsettled=self._capacity(),
                        judges=self.judges,
                        profiles=self.profiles,
                        fallback_on=config.panel.fallback_on,
                    )
                    await self._run_tasks(sources)
            finally:
                if self.read_all and not self.open_jobs:
                    self.progress.complete()  # every session was read and finished
                self.progress.close(self._status())
                self.rejects.close()
                with contextlib.suppress(JournalError):  # _finish rebuilds what is not synced
                    self.scores.sync()
                    self.scores_synced = True
                self.scores.close()
                self.transcripts.close()
        except (FatalError, JournalError, SourceError, PoolError) as exc:
            self.result.status = "error"
            self.result.message = self.secrets.scrub(str(exc))
        finally:
            self.journal.close()
        self.result.moved_aside = (
            str(self.journal.moved_aside) if self.journal.moved_aside else None
        )
        # A stopped run says nothing of the sources it did not reach: only those read to
        # their end may be empty.
        reached = [i for i, s in enumerate(sources) if s in self.reached]
        last = len(sources) if self.read_all else (max(reached) if reached else 0)
        self.result.empty_sources = [s for s in sources[:last] if not self.per_source[s]]
        self.result.sources_not_read = 0 if self.read_all else len(sources) - last - bool(reached)
        self.result.wall_s = time.monotonic() - started
        asker = getattr(self, "asker", None)
        if asker is not None:
            self.cpu["parse"] += asker.parse_cpu
        cpu_total = time.process_time() - cpu_started
        # The stages this process ran; "workers" is the worker processes' own CPU.
        stages = {k: round(v, 4) for k, v in self.cpu.items()}
        here = sum(v for k, v in self.cpu.items() if k != "workers")
        stages["http_and_loop"] = round(max(0.0, cpu_total - here), 4)
        stages["total"] = round(cpu_total + self.cpu["workers"], 4)
        self.result.cpu_s = stages
        self._finish()

    def _transport(self) -> contextlib.AbstractAsyncContextManager[Transport]:
        """The transport given, or the ones the judges' endpoints need (`endpoints`):
        live gateways, or the Batch API (with the live gateway behind it for
        --batch-fallback live), one per endpoint, behind one router."""
        if self._given_transport is not None:
            return contextlib.nullcontext(self._given_transport)
        return open_transport(self.config, self.judges, self.keys, self.out)

    def _capacity(self) -> int:
        """Requests in flight at most, over every endpoint."""
        endpoints = len({j.endpoint for j in self.judges.values()}) or 1
        return self.config.in_flight() * (1 if self.config.batch.batch else endpoints)

    def _snapshot_tag(self) -> str:
        """What the journal snapshot's known rows depend on: the plan and the reading."""
        reading = orjson.dumps([getattr(self.config.sources, name) for name, _ in _READING])
        return f"{self.planner.signature()}:{reading.hex()}"

    def _snapshot(self) -> None:
        """Keep a snapshot of the journal for the next run (`journal.write_snapshot`),
        unless the one this run began from still holds."""
        if self.journal.snapshot is not None and self.journal.appended == 0:
            return
        graded = GradedRows(self.planner)
        self.journal.reload(graded.visit)
        prints, ids = graded.rows(self.journal.lookup_number)
        self.journal.save_snapshot(self._snapshot_tag(), {"known_prints": prints, "known_ids": ids})

    def _previous_sources(self) -> Any:
        """The sources options of the run before this one, from its run.json."""
        with contextlib.suppress(OSError, orjson.JSONDecodeError, AttributeError):
            return orjson.loads((self.out / "run.json").read_bytes()).get("sources")
        return None

    def _run_json(self) -> dict[str, Any]:
        """The run's options as `--config` reads them, the command that resumes, and
        each judge's provider, endpoint and request profile (what a provider refused is
        kept there, so the next run starts right)."""
        data: dict[str, Any] = self.config.to_mapping()
        if self.resume_command:
            data["resume_command"] = self.resume_command
        data["judges"] = {
            name: {
                "provider": judge.provider.name,
                "model": judge.model,
                "url": safe_url(judge.base_url),
                "key": judge.provider.api_key_env,
                "protocol": judge.provider.protocol,
                "chosen": judge.chosen,
                "profile": describe(self.profiles[name]),
            }
            for name, judge in self.judges.items()
        }
        return data

    def _learned(self) -> dict[str, Any]:
        """The profiles an earlier run on OUT learned, by judge (run.json)."""
        with contextlib.suppress(OSError, orjson.JSONDecodeError, AttributeError, TypeError):
            judges = orjson.loads((self.out / "run.json").read_bytes()).get("judges") or {}
            return {
                name: entry.get("profile") or {}
                for name, entry in judges.items()
                if isinstance(entry, dict)
                and name in self.judges
                and entry.get("provider") == self.judges[name].provider.name
            }
        return {}

    async def _run_tasks(self, sources: list[str]) -> None:
        in_flight = self._capacity()
        # Batches answer in minutes: a retry's backoff is no reason for extra workers.
        workers = in_flight + 64 if self.config.batch.batch else in_flight * WORKERS_PER_SLOT
        send_jobs, receive_jobs = anyio.create_memory_object_stream[Job](workers)
        send_records, receive_records = anyio.create_memory_object_stream[_Done](workers * 4)
        try:
            async with anyio.create_task_group() as outer:
                outer.start_soon(self._writer, receive_records)
                async with anyio.create_task_group() as control:
                    control.start_soon(self.control.watch_signals)
                    control.start_soon(self._tick)
                    async with anyio.create_task_group() as work:
                        self.control.attach(work.cancel_scope, control)
                        work.start_soon(self._produce, send_jobs, sources)
                        for _ in range(workers):
                            work.start_soon(
                                self._worker, receive_jobs.clone(), send_records.clone()
                            )
                        receive_jobs.close()
                        send_records.close()
                    control.cancel_scope.cancel()
        except BaseException as group:  # unwrap the one error that ended the run
            fatal = _first(group, (FatalError, JournalError, SourceError, PoolError))
            if fatal is not None:
                raise fatal from None
            raise

    # --- the producer -----------------------------------------------------------

    def _count(self, sources: list[str]) -> None:
        """The progress bar's total, counted beside the run in a daemon thread (never
        before the first request: a large file takes a while to count, and a run that
        ends first does not wait for it). `_tick` shows it."""

        def count() -> None:
            self.counted = self._total_rows(sources)

        if not self.config.run.quiet:
            threading.Thread(target=count, name="count-rows", daemon=True).start()

    def _total_rows(self, sources: list[str]) -> int | None:
        counts = [count_rows(s) for s in sources]
        limit = self.config.run.limit
        if any(c is None for c in counts):
            return limit
        total = sum(c for c in counts if c is not None)
        return min(total, limit) if limit else total

    async def _produce(self, send: MemoryObjectSendStream[Job], sources: list[str]) -> None:
        items, reader = self._items(sources)
        try:
            async with send:
                while not self.control.stopping():
                    jobs, finished, more = await anyio.to_thread.run_sync(self._next_batch, items)
                    self.progress.advance(finished, self._status())
                    for job in jobs:
                        if self.control.stopping():
                            return
                        try:
                            await _send(send, job)
                        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                            return
                    if not more:
                        self.read_all = True
                        return
        finally:
            if reader is not None:
                with anyio.CancelScope(shield=True):  # the pool's processes are joined
                    await anyio.to_thread.run_sync(reader.close)
                self.cpu["workers"] += reader.worker_cpu

    def _items(
        self, sources: list[str]
    ) -> tuple[Iterator[Prepared | Session | Rejection | Known], PreparedReader | None]:
        """The sessions to plan, in order: read here (--workers 1), or read and
        rendered by worker processes (`workers`)."""
        options = self.config.sources
        count = self.config.run.workers or default_workers()
        if count == 1:
            return read_sessions(sources, **options.reading(), known=self.known), None
        setup = Setup(
            ReadOptions(
                options.format, options.agent_model, options.benchmark, options.benchmark_from
            ),
            self.config.panel,
            self.config.request,
            self.rubrics,
            self.secrets,
            self._known_arrays,
        )
        reader = PreparedReader(
            sources,
            setup,
            workers=count,
            max_row_mb=options.max_row_mb,
            max_open_mb=options.max_open_mb,
            session_by=options.session_by,
        )
        return iter(reader), reader

    def _next_batch(
        self, items: Iterator[Prepared | Session | Rejection | Known]
    ) -> tuple[list[Job], int, bool]:
        """In the producer's thread: read sessions until a batch has work to do.

        Returns the jobs, how many rows were finished without work (rejected, or done
        in an earlier run) and whether more rows may follow.
        """
        cpu = time.thread_time()
        try:
            return self._read_batch(items)
        finally:
            self.cpu["read"] += time.thread_time() - cpu

    def _read_batch(
        self, items: Iterator[Prepared | Session | Rejection | Known]
    ) -> tuple[list[Job], int, bool]:
        jobs: list[Job] = []
        finished = 0
        limit = self.config.run.limit
        result = self.result
        while len(jobs) < _BATCH:
            if limit is not None and result.sessions >= limit:
                return jobs, finished, False
            read = next(items, None)
            if read is None:
                return jobs, finished, False
            result.rows_read += 1
            item: Session | Rejection | Known
            prepared: Prepared | None
            if isinstance(read, Prepared):  # read and rendered by a worker process
                prepared, item = read, read.session
            else:
                prepared, item = None, read
            self.reached.add(item.source if not isinstance(item, Session) else item.source.source)
            if isinstance(item, Rejection):
                self.rejects.add(item)
                result.rejected += 1
                continue  # a row, not a session: the bar counts sessions
            result.sessions += 1
            if isinstance(item, Known):  # graded before, byte for byte: nothing to plan
                self.per_source[item.source] += 1
                result.already_done += 1
                finished += 1
                continue
            self.per_source[item.source.source] += 1
            job = self.planner.plan(item)
            job.prepared = prepared
            result.changed += job.changed
            result.failed_before += job.failed_before
            if job.pending:
                jobs.append(job)
                self.open_jobs += 1
            else:
                if job.failed_before:
                    result.sessions_failed += 1
                else:
                    result.already_done += 1
                finished += 1
        return jobs, finished, True

    # --- the workers --------------------------------------------------------------

    async def _worker(
        self, jobs: MemoryObjectReceiveStream[Job], records: MemoryObjectSendStream[_Done]
    ) -> None:
        async with jobs, records:
            while not self.control.stopping():
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

    async def _grade(self, job: Job, records: MemoryObjectSendStream[_Done]) -> None:
        """Every pending request of one session. Each answer is made durable before the
        worker takes another session: a kill loses at most the requests in flight."""
        cpu = time.thread_time()
        rendered = self.planner.render(job)
        if rendered.asks:
            self._keep_text(job, rendered.asks[0])
        self.cpu["render"] += time.thread_time() - cpu
        for record in rendered.records:
            await self._record(records, job, record)
        if not rendered.asks:
            return

        async def ask(index: int) -> None:
            answered = await self.asker.ask(job, rendered.asks[index])
            if answered is not None:
                try:
                    # A fallback's answer follows a refusal it takes the slot from: one
                    # more record, and the refusal no failure of the session.
                    job.remaining += len(answered) - 1
                    for number, record in enumerate(answered):
                        await self._record(
                            records, job, record, superseded=number < len(answered) - 1
                        )
                finally:
                    self.asker.settled()

        if len(rendered.asks) == 1:  # one judge: no task group needed
            await ask(0)
        else:
            async with anyio.create_task_group() as group:
                for index in range(len(rendered.asks)):
                    group.start_soon(ask, index)
        if job.submitted and job.remaining == job.submitted:
            # What is left waits in batches at the server: submitted, not unreached.
            self.result.sessions_submitted += 1
            self.open_jobs -= 1

    async def _record(
        self,
        records: MemoryObjectSendStream[_Done],
        job: Job,
        record: Record,
        *,
        superseded: bool = False,
    ) -> None:
        """Hand a finished record to the writer and wait until it is durable."""
        done = _Done(job, self._scrubbed(record), job.transcript, superseded)
        job.transcript = None
        await _send(records, done)
        await done.durable.wait()

    def _keep_text(self, job: Job, ask: Ask) -> None:
        """What the judges read of this session (its credentials out), to keep with its
        first record, unless an earlier run kept the same text (a resume, a judge added:
        one transcript per session and text); the records carry its digest. A worker
        process made it with the request, when it rendered the request sent."""
        session_id = job.session.session_id
        prepared = job.prepared
        if (
            prepared is not None
            and ask.request is prepared.request
            and prepared.text is not None
            and prepared.transcript is not None
        ):
            job.text = prepared.text
            if not self.journal.has_text(session_id, job.text):
                job.transcript = prepared.transcript
            return
        # Here: compressed only when no earlier run kept the same text (a resume).
        text = transcripts.read_text(ask.request.body, self.secrets.scrub)
        job.text = transcripts.digest(text, ask.request.marker)
        if self.journal.has_text(session_id, job.text):
            return
        source = job.session.source
        job.transcript = transcripts.encode(
            session_id, self.secrets.scrub(source.source), source.row, source.format, text
        )

    def _scrubbed(self, record: Record) -> Record:
        """The record without the run's credentials, whatever a gateway echoed."""
        scrub = self.secrets.scrub_optional
        reasoning, note = scrub(record.reasoning), scrub(record.failure_note)
        thinking, raw, error = scrub(record.thinking), scrub(record.raw), scrub(record.error)
        # A text with nothing to scrub comes back as the same object: the common case
        # makes no new record (`replace` cost more than the scans).
        if (
            reasoning is record.reasoning
            and note is record.failure_note
            and thinking is record.thinking
            and raw is record.raw
            and error is record.error
        ):
            return record
        return replace(
            record, reasoning=reasoning, failure_note=note, thinking=thinking, raw=raw, error=error
        )

    # --- the writer -------------------------------------------------------------------

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
                kept = [done.transcript for done in batch if done.transcript is not None]
                # fsync off the event loop; only after it do the records count.
                await anyio.to_thread.run_sync(self._append, records, kept)
                cpu = time.thread_time()
                finished = 0
                for done in batch:
                    record = done.record
                    job = done.job
                    self.tally.count(
                        record.status,
                        record.judge or record.slot,
                        record.success,
                        record.error,
                        record.slot,
                    )
                    if record.status == FAILED and not done.superseded:
                        job.failed += 1
                        self.result.failed_transient += record.transient
                    elif record.status == SKIPPED:
                        job.skipped += 1
                        slots = self.result.skipped_slots
                        slots[record.slot] = slots.get(record.slot, 0) + 1
                        self.result.skip_reasons.setdefault(record.slot, record.error or "")
                    if record.sample == 0:
                        self.scores.write(score_row(record), flush=False)
                    job.remaining -= 1
                    if job.remaining == 0:
                        finished += 1
                        self.open_jobs -= 1
                        if job.failed or job.failed_before:
                            self.result.sessions_failed += 1
                        elif job.skipped == len(job.pending):
                            self.result.sessions_skipped += 1
                        else:
                            self.result.graded += 1
                self.scores.flush()  # streamed: a batch at a time
                for done in batch:
                    done.durable.set()
                self.cpu["journal"] += time.thread_time() - cpu
                self.progress.advance(finished, self._status())

    def _append(self, records: list[Record], kept: list[bytes]) -> None:
        """In a worker thread: make a batch durable (what the judges read first)."""
        cpu = time.thread_time()
        try:
            self.transcripts.append(kept)
            self.journal.append(records)
        finally:
            self.cpu["journal"] += time.thread_time() - cpu

    # --- what the run shows, and its end --------------------------------------------------

    def _status(self) -> dict[str, Any]:
        transport = getattr(self, "transport", None)
        status: dict[str, Any] = {
            "verdicts": self.tally.verdicts,
            "in_flight": transport.in_flight if transport else 0,
            "retries": self.tally.retries,
            "429s": transport.stats.throttled if transport else 0,
            "failed": self.tally.failed,
            "tokens": self.tally.tokens,
        }
        if self.budget.known:
            status["cost"] = f"${self.budget.spent:,.4f}"
        pause = transport.status() if transport else ""
        if pause:
            status["server"] = pause
        return status

    async def _tick(self) -> None:
        """Refresh the progress line every second, so a pause says so while it lasts."""
        shown = None
        while True:
            await anyio.sleep(1.0)
            if self.counted != shown:
                shown = self.counted
                self.progress.set_total(shown)
            self.progress.refresh(self._status())

    def _finish(self) -> None:
        result = self.result
        tally = self.tally
        result.judges = tally.judges
        result.verdicts, result.failed, result.skipped = tally.verdicts, tally.failed, tally.skipped
        result.retries, result.tokens = tally.retries, tally.tokens
        result.submitted = tally.submitted
        transport = getattr(self, "transport", None)
        if transport is not None:
            result.requests_sent = transport.stats.sent
            result.throttled = transport.stats.throttled
            result.conflicting = transport.stats.conflicts
        control = getattr(self, "control", None)
        result.stopped = control.reason if control is not None else None
        result.not_reached = self.open_jobs
        result.sources_left = not self.read_all
        result.cost_usd = round(self.budget.spent, 6) if self.budget.known else None
        if result.status != "error":
            try:
                result.score_rows = self._score_columns()
            except OSError as exc:
                result.status = "error"
                result.message = f"cannot write {self.out / SCORES}: {exc.strerror}"
        if result.status == "done":
            if result.stopped == "signal":
                result.status = "interrupted"
            elif result.stopped == "max_cost":
                result.status = "max_cost"
            elif result.sessions_submitted and not result.lacking:
                result.status = "submitted"
            elif result.lacking:
                result.status = "incomplete"
            elif result.sessions_skipped and not (result.graded or result.already_done):
                result.status = "incomplete"  # nothing was graded: the guard skipped it all
        if result.status != "error":
            self._snapshot()
        result.adjustments = {
            name: list(profile.adjustments)
            for name, profile in self.profiles.items()
            if profile.adjustments
        }
        with contextlib.suppress(JournalError):  # what the providers taught, for the next run
            if result.adjustments:
                self._write_json("run.json", self._run_json())
        with contextlib.suppress(JournalError):  # the summary is a convenience, not the record
            self._write_json("summary.json", result.summary_json())

    def _score_columns(self) -> int:
        """Make scores.jsonl exactly the journal's latest rows for the current panel:
        as streamed, when the journal was new; as it is, when nothing changed since
        the last run made it; else rewritten from the journal."""
        journal_bytes = self.journal.path.stat().st_size
        panel = list(self.config.panel.judge)
        if self.started_empty and self.scores_synced:
            rows = self.scores.count
        else:
            current = scores_current(self.out, journal_bytes, panel)
            rows = current if current is not None else rebuild_scores(self.out)
        mark_scores(self.out, journal_bytes, panel, rows)
        return rows

    def _write_json(self, name: str, data: Mapping[str, Any]) -> None:
        path = self.out / name
        try:
            write_atomic(path, orjson.dumps(data, option=orjson.OPT_INDENT_2, default=str))
        except UnsafePath as exc:
            raise JournalError(str(exc)) from None
        except OSError as exc:
            raise JournalError(f"cannot write {path}: {exc.strerror or exc}") from None

    def summary_text(self) -> str:
        r = self.result
        return format_summary(
            self.tally.judges,
            wall_s=r.wall_s,
            sent=r.requests_sent,
            retries=r.retries,
            throttled=r.throttled,
            tokens=r.tokens,
            cost_usd=r.cost_usd,
            order=[*self.config.panel.judge, *self.config.panel.fallback_judge],
            batch=self.config.batch.batch,
            slots=self.tally.slots,
            adjustments=self.tally.adjustments,
        )


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


async def grade(
    config: Config,
    api_key: str | None,
    *,
    transport: Transport | None = None,
    resume_command: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[RunResult, str]:
    """Run one grading run; return its result and the closing summary text. `api_key`
    is the gateway's (bare judge names); judges named with a provider take their key
    from `environ` (default the process's environment), by their provider's variable."""
    run = _Run(config, api_key, transport, resume_command, environ)
    result = await run.execute()
    text = run.summary_text()
    if config.run.canary and result.status != "error" and result.stopped is None:
        result.canary_lines = await _canaries(config, api_key, transport, environ)
        text += "\n\n" + "\n".join(result.canary_lines)
    return result, text


async def _canaries(
    config: Config,
    api_key: str | None,
    transport: Transport | None,
    environ: Mapping[str, str] | None,
) -> list[str]:
    """Grade the canaries into their own folder under OUT/canaries/ with the run's
    panel, append the history, and return the lines for the summary."""
    out = Path(config.run.out)
    folder = canary.next_run_folder(out)
    canary_config = replace(
        config,
        sources=replace(config.sources, sources=(str(config.run.canary),)),
        run=replace(
            config.run, out=str(folder), canary=None, limit=None, fresh=False, quiet=True,
            max_cost=None,
        ),
    )  # fmt: skip
    try:
        graded = await _Run(canary_config, api_key, transport, None, environ).execute()
    except (SourceError, JournalError, OSError) as exc:
        return [f"canaries: not graded this run ({exc})"]
    if graded.status == "error":
        return [f"canaries: not graded this run ({graded.message})"]
    line = canary.measure(folder)
    earlier = canary.history(out)
    canary.append(out, line)
    counted = sum(j["m1"] + j["m0"] for j in line["judges"].values())
    said = [
        f"canaries: {folder.name} graded {graded.graded:,} canary sessions "
        f"({counted:,} labelled verdicts; journaled in {folder}, not counted)"
    ]
    if line["unlabelled"]:
        said.append(
            f"canaries: {line['unlabelled']:,} canary sessions carry no 0/1 label "
            "(success, label, resolved or passed): left out of the comparison"
        )
    if not earlier:
        return [*said, "canaries: the first canary run; the next one is compared with it"]
    moved = canary.compare(earlier[-1], line)
    return [
        *said,
        *(moved or [f"canaries: no judge moved beyond chance since {earlier[-1]['run']}"]),
    ]


def resume_command(argv: list[str] | tuple[str, ...], secrets: Secrets | None = None) -> str:
    """The command line that resumes a run: the same one, without --fresh (options are
    never abbreviated, and a config file may not set it), and with any credential in it
    (say, in a --base-url) replaced: it is printed and stored."""
    kept = [a for a in argv if a != "--fresh"]
    line = "judge-engine " + shlex.join(kept)
    return secrets.scrub(line) if secrets is not None else redact_text(line)


__all__ = ["STATUSES", "FatalError", "RunResult", "grade", "resume_command"]
