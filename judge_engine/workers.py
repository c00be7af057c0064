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
processes). At most `2 x N` batches are out at a time (bounded memory). Plain JSON-lines
files are handed over as spans (where each line is): the reading process never copies
a row. Each worker holds its own batches: one that dies (killed, out of memory) fails
exactly the rows it held (`worker_crashed` rejections), never the run and never a hang,
and a new worker takes its place. Workers are forked from a fork server that imported
this module once, never import the main module, ignore Ctrl-C (the run decides what
stops) and exit when their connection ends (the run closed it, or is gone).
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import stat
import sys
import threading
import time
import traceback
import types
from array import array
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing import forkserver
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext, SpawnContext
from multiprocessing.process import BaseProcess

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
    RawSpan,
    ReadOptions,
    Rejection,
    Session,
    SessionReader,
    SpanFiles,
    expand,
    iter_rows,
    line_print,
    read_piece,
)

#: The pool starts once this much was read in the run's own thread: below, starting
#: processes costs more than they save (a 1,000-session run of 8 KB rows took 3.0 s
#: with a pool from 4 MB on, 1.3 s without, on 2 cores).
POOL_AFTER_BYTES = 16 << 20
POOL_AFTER_ROWS = 1024
#: Seconds a fork server started early takes to import this module (0.27 s measured on
#: 2 cores): sources this large start the pool once it had them, whatever was read.
WARM_S = 0.3
#: A batch closes at this many rows or bytes (a decoded row counts as `_ROW_WEIGHT`):
#: many small rows a batch keep the hand-over per row small (a resume sends every row).
BATCH_ROWS = 64
BATCH_BYTES = 2 << 20
_ROW_WEIGHT = 256 << 10
#: The default --workers: the usable cores, at most this many (one process sends at
#: about a thousand verdicts a second; more readers than that feeds are idle).
MAX_DEFAULT_WORKERS = 8

Piece = RawSpan | RawLine | RawRow | Rejection | Known
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
        self.files = SpanFiles()

    def batch(self, pieces: Sequence[Piece]) -> tuple[list[Result], float]:
        """Each piece's result, and the CPU seconds they took."""
        cpu = time.thread_time()
        results = [self.piece(piece) for piece in pieces]
        return results, time.thread_time() - cpu

    def piece(self, piece: Piece) -> Result:
        if isinstance(piece, (Rejection, Known)):
            return piece
        if isinstance(piece, RawSpan):
            piece = self.files.read(piece)
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


def _serve(connection: Connection, setup: Setup) -> None:
    """A worker process: batches in, results out, on one connection, until the run
    closes it or is gone (its end closes: the process exits, never waits forever).
    Ctrl-C is the run's to handle. A thread takes batches off the connection as they
    come, so the run's sends never wait on this process's replies."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # already, when forked (`_forkserver`)
    preparer = Preparer(setup)
    batches: queue.SimpleQueue[list[Piece]] = queue.SimpleQueue()

    def take() -> None:
        while True:
            try:
                batches.put(connection.recv())
            except (EOFError, OSError):
                os._exit(0)

    threading.Thread(target=take, name="take-batches", daemon=True).start()
    while True:
        batch = batches.get()
        try:
            reply: tuple[list[Result], float] | str = preparer.batch(batch)
        except Exception:  # a bug: the run stops and says what it was
            reply = traceback.format_exc()
        try:
            connection.send(reply)
        except (OSError, ValueError):
            os._exit(0)


class PoolError(Exception):
    """Worker processes that keep dying (out of memory, killed): the run stops."""


class WorkerError(RuntimeError):
    """A worker process raised: a bug in reading or rendering, with its traceback."""


@dataclass
class _Worker:
    process: BaseProcess
    connection: Connection
    #: The batches sent to it and not answered yet, oldest first.
    held: deque[list[Piece]] = field(default_factory=deque)
    dead: bool = False


class _Pool:
    """Worker processes, each with its own connection and the batches it holds: a
    death fails exactly the rows that worker held (a shared queue, as in
    `concurrent.futures.ProcessPoolExecutor`, fails every batch of the pool, and on
    Python 3.11 its clean-up can hang when a worker dies while another starts)."""

    def __init__(self, count: int, setup: Setup) -> None:
        self._setup = setup
        self._context = _context()
        self.workers = [self._start() for _ in range(count)]
        self.started = count
        self._turn = 0

    def _start(self) -> _Worker:
        ours, theirs = self._context.Pipe()
        process = self._context.Process(
            target=_serve, args=(theirs, self._setup), name="judge-engine-reader", daemon=True
        )
        # A worker needs nothing from the main module, and multiprocessing would import
        # it in each worker (running a script's unguarded code there, a run in every
        # worker): while it starts one, the main module is an empty one.
        main = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            process.start()
        finally:
            sys.modules["__main__"] = main
        theirs.close()  # its end lives in the worker alone: its death is our EOF
        return _Worker(process, ours)

    def send(self, batch: list[Piece]) -> _Worker:
        """Hand a batch to the live worker holding the fewest; a dead worker that holds
        nothing more is replaced first."""
        while True:
            for index, worker in enumerate(self.workers):
                if worker.dead and not worker.held:
                    self.workers[index] = self._start()
                    self.started += 1
            self._turn += 1
            order = self.workers[self._turn % len(self.workers) :] + self.workers
            alive = [w for w in order if not w.dead]
            if self.started > 4 * len(self.workers) + 16:
                raise PoolError(
                    f"{self.started - len(self.workers)} worker processes died reading "
                    "(is the machine out of memory?); --workers 1 reads in this process"
                )
            if not alive:  # every worker died holding batches: one more, for this one
                self.workers.append(self._start())
                self.started += 1
                continue
            worker = min(alive, key=lambda w: len(w.held))
            try:
                worker.connection.send(batch)
            except (OSError, ValueError):
                worker.dead = True  # died since its last answer: another takes the batch
                continue
            worker.held.append(batch)
            return worker

    def receive(self, worker: _Worker) -> tuple[list[Result], float]:
        """The answer to the oldest batch `worker` holds, or, if it died, that batch's
        rows rejected (`worker_crashed`)."""
        batch = worker.held.popleft()
        if not worker.dead:
            try:
                reply: tuple[list[Result], float] | str = worker.connection.recv()
            except (EOFError, OSError):
                worker.dead = True
            else:
                if isinstance(reply, str):
                    raise WorkerError(f"a worker process failed:\n{reply}")
                return reply
        worker.process.join(timeout=5)
        return _crashed(batch, _how(worker.process.exitcode)), 0.0

    def pids(self) -> list[int]:
        return sorted(w.process.pid for w in self.workers if w.process.pid and not w.dead)

    def close(self) -> None:
        """Close every connection (a worker exits at its end), then join the workers;
        one still running after 5 s is killed."""
        for worker in self.workers:
            worker.connection.close()
        deadline = time.monotonic() + 5
        for worker in self.workers:
            worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()


def _context() -> SpawnContext | ForkServerContext:
    """How workers start: forked from a server process that imported this module once
    (a worker then starts in milliseconds, not the half second of a fresh interpreter's
    imports), or spawned where there is no fork server."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # `_forkserver` first: the server, and every worker it forks, ignore Ctrl-C.
    context.set_forkserver_preload([f"{__package__}._forkserver", __name__])
    return context


def _warm() -> float:
    """Start the fork server now, when the sources are large enough that the pool will
    start: it imports this module on another core while this process reads the first
    rows itself. The time from which the pool is worth starting: once the server has
    had `WARM_S` for its imports (then it forks workers at once; before, this process
    read up to 1,024 rows alone while the server waited, a third of a small-row run)."""
    if isinstance(_context(), ForkServerContext):
        forkserver.ensure_running()
    return time.monotonic() + WARM_S


def _local_bytes(specs: Sequence[str]) -> int:
    """The size of the sources that are local files (stdin and the hub count 0)."""
    total = 0
    for spec in specs:
        try:
            found = os.stat(spec)
        except OSError:
            continue
        total += found.st_size if stat.S_ISREG(found.st_mode) else 0
    return total


def _how(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


def _crashed(pieces: Sequence[Piece], why: str) -> list[Result]:
    """A batch whose worker died: each of its rows rejected, with why."""
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


#: What waits in order for its turn: a batch and the worker holding it, the end of a
#: source (its OTLP sessions), or results ready without a worker.
_Pending = tuple[_Worker, list[Piece]] | str | list[Result]


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
        self._pool: _Pool | None = None
        #: What a resume knows, checked here (`_known_here`), and the files it reads.
        self._known = known_rows(*setup.known) if setup.known else None
        self._files = SpanFiles()
        #: CPU seconds the worker processes spent on the batches they returned.
        self.worker_cpu = 0.0
        #: Worker processes started (`workers`, and one more for each that died).
        self.started = 0

    def __iter__(self) -> Iterator[Prepared | Session | Rejection | Known]:
        pending: deque[_Pending] = deque()
        batch: list[Piece] = []
        size = work = read_bytes = read_rows = 0
        specs = expand(self._sources)
        warmed: float | None = None
        # Not on a resume: the rows it knows are found here, and a finished run starts
        # no pool at all (a server started early would be a process for nothing).
        if self._workers > 1 and self._known is None and _local_bytes(specs) >= POOL_AFTER_BYTES:
            warmed = _warm()
        for spec in specs:
            for piece in iter_rows(spec, self._max_row_bytes, lazy=True):
                piece = self._known_here(piece)
                batch.append(piece)
                if not isinstance(piece, (Known, Rejection)):  # work for a worker
                    weight = (
                        piece.length
                        if isinstance(piece, RawSpan)
                        else len(piece.line)
                        if isinstance(piece, RawLine)
                        else _ROW_WEIGHT
                    )
                    size += weight
                    work += 1
                    read_bytes += weight
                    read_rows += 1
                if len(batch) < BATCH_ROWS and size < BATCH_BYTES:
                    continue
                start = (
                    read_bytes >= POOL_AFTER_BYTES
                    or read_rows >= POOL_AFTER_ROWS
                    or (warmed is not None and time.monotonic() >= warmed)
                )
                yield from self._dispatch(batch, bool(work), start, pending)
                batch, size, work = [], 0, 0
            yield from self._dispatch(batch, bool(work), False, pending)
            batch, size, work = [], 0, 0
            if pending:
                pending.append(spec)
            else:
                yield from self._reader.end_source(spec)
        while pending:
            yield from self._next(pending)
        yield from self._reader.finish()

    def _known_here(self, piece: Piece) -> Piece:
        """A resume's row known by its fingerprint, found here (a read and a digest,
        as with one process): a finished run hands no row to a worker."""
        if self._known is None or not isinstance(piece, RawSpan):
            return piece
        print_ = line_print(self._files.read(piece).line)
        number = self._known(print_)
        return piece if number is None else Known(piece.source, piece.row, print_, number)

    def _dispatch(
        self, batch: list[Piece], work: bool, start: bool, pending: deque[_Pending]
    ) -> Iterator[Prepared | Session | Rejection | Known]:
        """A closed batch: to a worker once the pool runs (or may start), else read
        here; a batch with nothing to read (known rows, rejections) needs no worker."""
        if not batch:
            return
        if not work:
            done: list[Result] = [p for p in batch if isinstance(p, (Known, Rejection))]
            if pending:
                pending.append(done)  # in its turn, after the batches out before it
            else:
                yield from self._results(done)
        elif self._pool is None and not start:
            yield from self._results(self._here(batch))
        else:
            pending.append((self._send(batch), batch))
            while len(pending) > 2 * self._workers:
                yield from self._next(pending)

    def worker_pids(self) -> list[int]:
        """The live worker processes (none before the pool starts)."""
        return self._pool.pids() if self._pool is not None else []

    def close(self) -> None:
        """Stop the pool (its workers are joined) and close the files read here."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
        if self._local is not None:
            self._local.files.close()
        self._files.close()

    def _here(self, batch: list[Piece]) -> list[Result]:
        if self._local is None:
            self._local = Preparer(self._setup)
        return self._local.batch(batch)[0]

    def _send(self, batch: list[Piece]) -> _Worker:
        if self._pool is None:
            self._pool = _Pool(self._workers, self._setup)
        worker = self._pool.send(batch)
        self.started = self._pool.started
        return worker

    def _next(self, pending: deque[_Pending]) -> Iterator[Prepared | Session | Rejection | Known]:
        head = pending.popleft()
        if isinstance(head, str):
            yield from self._reader.end_source(head)
            return
        if isinstance(head, list):
            yield from self._results(head)
            return
        assert self._pool is not None
        results, cpu = self._pool.receive(head[0])
        self.worker_cpu += cpu
        yield from self._results(results)

    def _results(self, results: list[Result]) -> Iterator[Prepared | Session | Rejection | Known]:
        for result in results:
            if isinstance(result, Prepared):
                duplicate = self._reader.admit(result.session)
                yield duplicate if duplicate is not None else result
            else:
                yield from self._reader.accept(result)
