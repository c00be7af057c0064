"""Reading, normalizing and rendering in worker processes (`grade --workers N`).

In: the sources' rows in order (JSON lines undecoded: `iter_rows(lazy=True)`), cut
into batches of a few rows; once per process, what reading and rendering need (the
reading options, the rows a resume knows, the panel, the rubrics, the run's
credentials). Out, in source order, what `read_sessions` gives and more: for each
session a `plan.Prepared` (the session without its messages, its first judge's
request rendered and scrubbed, what the judges read ready to keep), or a
`Rejection`, or a `Known`.

Only the work one row needs goes to the workers (`read_piece`, then `Planner.prepare`
and `transcripts.prepare`). What needs the rows in order stays in the process that
reads them (`SessionReader`: the duplicate-id check, OTLP spans grouped across rows
and files), as does everything after (planning against the journal, sending,
parsing verdicts, the journal): its order, exactly-once and every count are the
same as with one process.

A run starts reading in its own thread and starts the pool only once it has read
`POOL_AFTER_BYTES` or `POOL_AFTER_ROWS` (a small run never pays for starting
processes). At most `2 x N` batches are out at a time (bounded memory). A worker
that dies (killed, out of memory) fails the rows it held, never the run and never
a hang: its pool's batches are tried again one at a time in a new pool, and a batch
that breaks that one too has each of its rows rejected (`worker_crashed`). Workers
ignore Ctrl-C (the run decides what stops) and exit when the run's process is gone.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from array import array
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from . import transcripts
from .config import PanelOptions, RequestOptions
from .plan import Planner, Prepared, known_rows
from .prompt import JudgeRequest
from .redact import Secrets
from .rubrics import RubricSet
from .sessions import (
    Known,
    RawLine,
    RawRow,
    ReadOptions,
    Rejection,
    Session,
    SessionReader,
    expand,
    iter_rows,
    read_piece,
)

#: The pool starts once this much was read in the run's own thread.
POOL_AFTER_BYTES = 4 << 20
POOL_AFTER_ROWS = 256
#: A batch closes at this many rows or bytes (a decoded row counts as `_ROW_WEIGHT`).
BATCH_ROWS = 16
BATCH_BYTES = 2 << 20
_ROW_WEIGHT = 256 << 10
#: The default --workers: the usable cores, at most this many (one process sends at
#: about a thousand verdicts a second; more readers than that feeds are idle).
MAX_DEFAULT_WORKERS = 8

Piece = RawLine | RawRow | Rejection | Known
Result = Prepared | Rejection | Known | RawRow


def default_workers() -> int:
    """The usable cores (this process's CPU affinity), at most `MAX_DEFAULT_WORKERS`."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_DEFAULT_WORKERS))


@dataclass(frozen=True)
class Setup:
    """What every worker needs, sent once to each process."""

    read: ReadOptions
    panel: PanelOptions
    request: RequestOptions
    rubrics: RubricSet
    secrets: Secrets
    #: The rows a resume knows (`plan.known_rows`'s two arrays), or None.
    known: tuple[array[int], array[int]] | None = None


class Preparer:
    """One process's reading and rendering (the run's own thread, or a worker)."""

    def __init__(self, setup: Setup) -> None:
        self.read = setup.read
        self.secrets = setup.secrets
        self.known = known_rows(*setup.known) if setup.known else None
        self.planner = Planner(
            setup.panel, setup.request, setup.rubrics, secrets=setup.secrets.values
        )

    def batch(self, pieces: Sequence[Piece]) -> tuple[list[Result], float]:
        """Each piece's result, and the CPU seconds they took."""
        cpu = time.thread_time()
        results = [self.piece(piece) for piece in pieces]
        return results, time.thread_time() - cpu

    def piece(self, piece: Piece) -> Result:
        if isinstance(piece, (Rejection, Known)):
            return piece
        result = read_piece(piece, self.read, self.known)
        if not isinstance(result, Session):
            return result
        request, _ = self.planner.prepare(result)
        if not isinstance(request, JudgeRequest):  # none needed, or why none can be made
            return Prepared(result.without_messages(), None, request)
        source = result.source
        text, line = transcripts.prepare(
            request.body,
            request.marker,
            result.session_id,
            (source.source, source.row, source.format),
            self.secrets.scrub,
        )
        return Prepared(result.without_messages(), request, None, text, line)


#: The worker process's `Preparer` (set by `_start`).
_preparer: Preparer | None = None


def _start(setup: Setup, parent: int) -> None:
    """A worker process's start: its preparer; Ctrl-C is the run's to handle; and a
    watch that ends the process once the run's process is gone (a kill -9 of the run
    would otherwise leave it waiting for work forever)."""
    global _preparer
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _preparer = Preparer(setup)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def _work(pieces: list[Piece]) -> tuple[list[Result], float]:
    assert _preparer is not None, "worker started without its setup"
    return _preparer.batch(pieces)


def _crashed(pieces: Sequence[Piece], why: str) -> list[Result]:
    """A batch whose worker died twice: each of its rows rejected, with why."""
    return [
        piece
        if isinstance(piece, (Rejection, Known))
        else Rejection(
            piece.source,
            piece.row,
            "worker_crashed",
            f"the worker process reading this row died ({why}); run again to read it again",
        )
        for piece in pieces
    ]


class PreparedReader:
    """The sessions of a run's sources, read and rendered by `workers` processes, in
    source order (see the module docstring). Iterate once; `close` stops the pool."""

    def __init__(
        self,
        sources: Sequence[str],
        setup: Setup,
        *,
        workers: int,
        max_row_mb: int,
        max_open_mb: int,
        session_by: str,
    ) -> None:
        self._sources = sources
        self._setup = setup
        self._workers = workers
        self._max_row_bytes = max_row_mb << 20
        self._reader = SessionReader(
            setup.read,
            max_row_bytes=self._max_row_bytes,
            max_open_mb=max_open_mb,
            session_by=session_by,
        )
        self._local: Preparer | None = None
        self._pool: ProcessPoolExecutor | None = None
        #: CPU seconds the worker processes spent on the batches they returned.
        self.worker_cpu = 0.0
        #: Pools started (1 normally; more after a worker died).
        self.pools = 0

    def __iter__(self) -> Iterator[Prepared | Session | Rejection | Known]:
        # In order: a batch's future, or the end of a source (its OTLP sessions).
        pending: deque[tuple[Future[tuple[list[Result], float]], list[Piece]] | str] = deque()
        batch: list[Piece] = []
        size = read_bytes = read_rows = 0
        for spec in expand(self._sources):
            for piece in iter_rows(spec, self._max_row_bytes, lazy=True):
                weight = len(piece.line) if isinstance(piece, RawLine) else _ROW_WEIGHT
                batch.append(piece)
                size += weight
                read_bytes += weight
                read_rows += 1
                if len(batch) < BATCH_ROWS and size < BATCH_BYTES:
                    continue
                if self._pool is None and (
                    read_bytes < POOL_AFTER_BYTES and read_rows < POOL_AFTER_ROWS
                ):
                    yield from self._results(self._here(batch))
                else:
                    pending.append((self._submit(batch), batch))
                    while len(pending) > 2 * self._workers:
                        yield from self._next(pending)
                batch, size = [], 0
            if self._pool is None:
                yield from self._results(self._here(batch))
                yield from self._reader.end_source(spec)
            else:
                if batch:
                    pending.append((self._submit(batch), batch))
                pending.append(spec)
            batch, size = [], 0
        while pending:
            yield from self._next(pending)
        yield from self._reader.finish()

    def worker_pids(self) -> list[int]:
        """The current pool's worker processes (none before it starts)."""
        processes = getattr(self._pool, "_processes", None) or {}  # not public API
        return sorted(processes)

    def close(self) -> None:
        """Stop the pool: batches not begun are dropped, workers are joined."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _here(self, batch: list[Piece]) -> list[Result]:
        if self._local is None:
            self._local = Preparer(self._setup)
        return self._local.batch(batch)[0]

    def _submit(self, batch: list[Piece]) -> Future[tuple[list[Result], float]]:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self._workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start,
                initargs=(self._setup, os.getpid()),
            )
            self.pools += 1
        try:
            return self._pool.submit(_work, batch)
        except BrokenProcessPool as exc:  # a worker died since: this batch's turn says so
            future: Future[tuple[list[Result], float]] = Future()
            future.set_exception(exc)
            return future

    def _next(
        self,
        pending: deque[tuple[Future[tuple[list[Result], float]], list[Piece]] | str],
    ) -> Iterator[Prepared | Session | Rejection | Known]:
        head = pending.popleft()
        if isinstance(head, str):
            yield from self._reader.end_source(head)
            return
        future, batch = head
        try:
            results, cpu = future.result()
        except BrokenProcessPool:
            # Every batch still out went down with that pool: each is tried again
            # alone, in a new one, this batch first.
            self.close()
            results, cpu = self._again(batch)
            for index, item in enumerate(pending):
                if not isinstance(item, str):
                    pending[index] = (_done(self._again(item[1])), item[1])
        self.worker_cpu += cpu
        yield from self._results(results)

    def _again(self, batch: list[Piece]) -> tuple[list[Result], float]:
        """A batch whose pool broke, alone in a new pool; rejected if that breaks too."""
        try:
            return self._submit(batch).result()
        except BrokenProcessPool as exc:
            self.close()
            return _crashed(batch, str(exc) or "killed"), 0.0

    def _results(self, results: list[Result]) -> Iterator[Prepared | Session | Rejection | Known]:
        for result in results:
            if isinstance(result, Prepared):
                duplicate = self._reader.admit(result.session)
                yield duplicate if duplicate is not None else result
            else:
                yield from self._reader.accept(result)


def _done(value: tuple[list[Result], float]) -> Future[tuple[list[Result], float]]:
    future: Future[tuple[list[Result], float]] = Future()
    future.set_result(value)
    return future
