"""Planning one session: its rubric, who judges each slot, the journal keys, the bodies.

In: a `Session`, the panel and request options, the rubrics, and (for a run) what the
journal already holds. Out: a `Job`: the requests still to make, each with its slot's
assignment (a judge, a fallback, or a skip and why) and its journal key; then, for the
requests to send, the exact bodies (`render`), or the records of those that cannot be
made (a session too large for the budget).

`grade` and `preview` both plan with this module: what `preview` writes is what
`grade` would send, guard and fallbacks included.
"""

from __future__ import annotations

import bisect
import hashlib
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from .config import PanelOptions, RequestOptions
from .guard import Assignment, assign, conflict
from .journal import (
    DONE,
    FAILED,
    FAILED_BEFORE,
    NEW,
    SKIPPED,
    Record,
    fingerprint_number,
    key_number,
    request_key,
)
from .prompt import PROMPT_VERSION, JudgeRequest, TooLarge, render_request, retarget
from .rubrics import Rubric, RubricSet
from .sessions import IdSet, KnownRows, Session

#: Distinct (benchmark, agent models) plans kept; beyond, plans are made each time
#: (field values from traces are unbounded in number).
_PLAN_CACHE = 4096
#: What the journal knows of a key: (NEW, DONE or FAILED_BEFORE, fingerprint of the
#: row it graded).
Lookup = Callable[[str], tuple[str, int]]


@dataclass(frozen=True, slots=True)
class Planned:
    """One request of a session: a judge slot's assignment, a sample, a journal key."""

    assignment: Assignment
    sample: int
    key: str


@dataclass
class Job:
    """One session with work left."""

    session: Session
    rubric: Rubric
    #: The requests not yet in the journal (or asked again).
    pending: list[Planned]
    #: Graded before from a row whose content has changed since.
    changed: bool = False
    #: Pending requests not yet made durable (the writer counts them down).
    remaining: int = 0
    #: Requests an earlier run failed for good, left for --retry-failed.
    failed_before: int = 0
    #: Requests of this run that ended failed, or in a guard skip (the writer counts
    #: them), or in a batch at the server (--no-wait).
    failed: int = 0
    skipped: int = 0
    submitted: int = 0
    #: The line keeping what the judges read (`transcripts`), until its first record.
    transcript: bytes | None = None
    #: The digest of that text (`transcripts.digest`), on every record of the session.
    text: str | None = None
    #: The session read and its first request rendered ahead, by a worker process.
    prepared: Prepared | None = None


@dataclass(frozen=True, slots=True)
class Prepared:
    """A session read and rendered ahead of planning (`workers`): the session without
    its messages, the request of the first judge its plan names (or why it cannot be
    made: `too_large: ...`, `render_error: ...`), and what the judges read of it, ready
    to keep (`transcripts.prepare`: digest and line)."""

    session: Session
    request: JudgeRequest | None = None
    error: str | None = None
    text: str | None = None
    transcript: bytes | None = None


@dataclass(frozen=True, slots=True)
class Ask:
    """A request ready to send: what it is for, and its body."""

    planned: Planned
    request: JudgeRequest


@dataclass
class Rendered:
    """A job's requests to send, and records of those that could not be made."""

    asks: list[Ask] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)


class Planner:
    """Plans sessions for one panel (see the module docstring)."""

    def __init__(
        self,
        panel: PanelOptions,
        request: RequestOptions,
        rubrics: RubricSet,
        *,
        lookup: Lookup | None = None,
        regrade_changed: bool = False,
        secrets: tuple[str, ...] = (),
    ) -> None:
        self.panel = panel
        self.request = request
        self.rubrics = rubrics
        self._lookup = lookup
        self._regrade_changed = regrade_changed
        self._secrets = secrets
        self._plans: dict[tuple[str | None, tuple[str, ...]], tuple[Rubric, list[Assignment]]] = {}

    def requests(
        self, session_id: str, benchmark: str | None, agent_models: tuple[str, ...]
    ) -> tuple[Rubric, list[Planned]]:
        """Every request the panel makes of a session: its rubric, and per judge slot
        and sample the assignment and journal key."""
        rubric, assignments = self._plan_of(benchmark, agent_models)
        planned = []
        for assignment in assignments:
            for sample in range(self.panel.repeats):
                key = request_key(
                    session_id,
                    assignment.slot,
                    assignment.judge or "",
                    rubric.version,
                    PROMPT_VERSION,
                    sample,
                )
                planned.append(Planned(assignment, sample, key))
        return rubric, planned

    def signature(self) -> str:
        """What every key and assignment of this plan depends on, as a digest: the
        panel, the guard, the repeats, the prompt version, every rubric's name,
        version and aliases. Two planners with one signature plan every session alike."""
        panel = self.panel
        parts = [
            panel.judge, panel.fallback_judge, panel.guard, panel.repeats, PROMPT_VERSION,
            [(r.name, r.version, r.aliases) for r in self.rubrics],
        ]  # fmt: skip
        return hashlib.blake2b(orjson.dumps(parts), digest_size=16).hexdigest()

    def _plan_of(
        self, benchmark: str | None, agent_models: tuple[str, ...]
    ) -> tuple[Rubric, list[Assignment]]:
        """The rubric and slot assignments of sessions with this benchmark and these
        agent models (the same for all of them: kept, so a resume computes each once)."""
        cache_key = (benchmark, agent_models)
        known = self._plans.get(cache_key)
        if known is None:
            panel = self.panel
            known = (
                self.rubrics.for_benchmark(benchmark),
                assign(panel.judge, panel.fallback_judge, agent_models, panel.guard),
            )
            if len(self._plans) < _PLAN_CACHE:
                self._plans[cache_key] = known
        return known

    def plan(self, session: Session) -> Job:
        """The session's requests still to make (all of them, with no journal)."""
        rubric, requests = self.requests(
            session.session_id, session.benchmark, session.agent_models
        )
        current = fingerprint_number(session.source.fingerprint)
        pending = []
        changed = False
        failed_before = 0
        for planned in requests:
            state, graded = self._lookup(planned.key) if self._lookup else (NEW, 0)
            if state == DONE and graded and graded != current:
                changed = True  # graded before, from a row that has changed since
                if self._regrade_changed:
                    state = NEW
            if state == FAILED_BEFORE:
                failed_before += 1
            elif state == NEW:
                pending.append(planned)
        return Job(session, rubric, pending, changed, len(pending), failed_before)

    def render(self, job: Job) -> Rendered:
        """The exact body of every pending request with a judge: the session rendered
        once (or ahead, by a worker process: `job.prepared`), retargeted to each judge.
        A skip (the guard) becomes its record; a session that cannot be rendered
        becomes a failed record per request, with the reason."""
        out = Rendered()
        base: JudgeRequest | str | None = None
        prepared = job.prepared
        for planned in job.pending:
            judge = planned.assignment.judge
            if judge is None:
                out.records.append(self.skip_record(job, planned))
                continue
            if base is None:
                ahead = prepared and (prepared.request or prepared.error)
                base = ahead or self.first_request(job.session, job.rubric, judge)
            if isinstance(base, str):
                out.records.append(self.failed_record(job, planned, base))
                continue
            request = base if base.judge_model == judge else retarget(base, judge)
            out.asks.append(Ask(planned, request))
        return out

    def first_request(self, session: Session, rubric: Rubric, judge: str) -> JudgeRequest | str:
        """A session's request to one judge, rendered (the others retarget it), or why
        it cannot be made (one session's failure, never the run's crash)."""
        try:
            return render_request(
                session,
                rubric,
                judge,
                max_prompt_tokens=self.request.max_prompt_tokens,
                redact=self.request.redact,
                temperature=self.panel.temperature,
                max_tokens=self.panel.max_output_tokens,
                secrets=self._secrets,
            )
        except TooLarge as exc:
            return f"too_large: {exc}"
        except Exception as exc:
            return f"render_error: {type(exc).__name__}: {exc}"[:500]

    def prepare(self, session: Session) -> tuple[JudgeRequest | str | None, Rubric]:
        """Ahead of planning (a worker process): the request of the first judge the
        session's plan names (None when the guard leaves it none), and its rubric."""
        rubric, assignments = self._plan_of(session.benchmark, session.agent_models)
        judge = next((a.judge for a in assignments if a.judge is not None), None)
        return (None if judge is None else self.first_request(session, rubric, judge)), rubric

    def fallback_for(self, job: Job, planned: Planned, why: str) -> Planned | None:
        """The slot of `planned` given to the first fallback judge that did not make the
        session and does not judge it already (--fallback-on), or None."""
        session = job.session
        taken = {p.assignment.judge for p in job.pending if p.assignment.judge}
        for fallback in self.panel.fallback_judge:
            if fallback in taken or conflict(fallback, session.agent_models, self.panel.guard):
                continue
            assignment = Assignment(planned.assignment.slot, fallback, f"fallback: {why}")
            key = request_key(
                session.session_id,
                assignment.slot,
                fallback,
                job.rubric.version,
                PROMPT_VERSION,
                planned.sample,
            )
            return Planned(assignment, planned.sample, key)
        return None

    def base_fields(self, job: Job, planned: Planned) -> dict[str, Any]:
        """What every record of this request holds, whatever its outcome."""
        session = job.session
        return {
            "key": planned.key,
            "session_id": session.session_id,
            "slot": planned.assignment.slot,
            "judge": planned.assignment.judge,
            "sample": planned.sample,
            "rubric": job.rubric.name,
            "rubric_version": job.rubric.version,
            "prompt_version": PROMPT_VERSION,
            "guard": planned.assignment.to_dict(),
            "benchmark": session.benchmark,
            "harness": session.harness,
            "agent_models": session.agent_models,
            "label": session.label,
            "agent_usage": dict(session.agent_usage),
            "agent_cost_usd": session.agent_cost_usd,
            "agent_cost_from": session.agent_cost_from,
            "agent_calls": session.llm_calls,
            "agent_model": session.agent_model,
            "fingerprint": session.source.fingerprint or None,
            "text": job.text,
        }

    def skip_record(self, job: Job, planned: Planned) -> Record:
        return Record(
            **self.base_fields(job, planned),
            status=SKIPPED,
            error=planned.assignment.reason,
            at=time.time(),
        )

    def failed_record(self, job: Job, planned: Planned, error: str) -> Record:
        """A request that could not be made at all."""
        return Record(**self.base_fields(job, planned), status=FAILED, error=error, at=time.time())


class GradedRows:
    """The rows earlier runs graded in full for a plan, byte for byte, so that a resume
    skips them without parsing (a finished run of 100,000 sessions resumes in seconds).

    Fed every journal record as the journal loads (`visit`, one pass), it notes for
    each row fingerprint the keys the current plan needs of its session (its rubric,
    slots, fallbacks and samples, from the metadata the records keep). `known()` then
    keeps the rows whose every needed request is done in the journal from a row with
    that very fingerprint; anything else (a changed row, a new judge, a new rubric
    version, a failure) is read and planned again. About 24 bytes a session."""

    def __init__(self, planner: Planner) -> None:
        self._planner = planner
        self._seen: set[int] = set()
        self._prints = array("Q")
        self._ids = array("Q")
        #: The needed keys of every row, one after the other; `_ends[i]` is where the
        #: keys of row i end.
        self._keys = array("Q")
        self._ends = array("Q")

    def visit(self, data: dict[str, Any]) -> None:
        """One journal record's fields (`journal.read_fields`)."""
        number = fingerprint_number(data.get("fingerprint"))
        if not number or number in self._seen:
            return
        self._seen.add(number)
        models, benchmark = data.get("agent_models"), data.get("benchmark")
        if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
            return
        if benchmark is not None and not isinstance(benchmark, str):
            return
        session_id = data["session_id"]
        _, requests = self._planner.requests(session_id, benchmark, tuple(models))
        self._prints.append(number)
        self._ids.append(IdSet.number(session_id))
        self._keys.extend(key_number(p.key) for p in requests)
        self._ends.append(len(self._keys))

    def rows(self, lookup: Callable[[int], tuple[str, int]]) -> tuple[array[int], array[int]]:
        """The rows done in full, as two arrays sorted by fingerprint number: the
        fingerprints and their session ids' numbers (`known_rows` makes the predicate).
        `lookup` gives a key number's state and graded fingerprint
        (`Journal.lookup_number`)."""
        found: list[tuple[int, int]] = []
        start = 0
        for index, end in enumerate(self._ends):
            number = self._prints[index]
            if all(lookup(k) == (DONE, number) for k in self._keys[start:end]):
                found.append((number, self._ids[index]))
            start = end
        self._seen.clear()
        del self._keys[:], self._prints[:], self._ids[:], self._ends[:]
        found.sort()
        return array("Q", (p for p, _ in found)), array("Q", (i for _, i in found))


def known_rows(prints: array[int], ids: array[int]) -> KnownRows | None:
    """The predicate `read_sessions` takes, from `GradedRows.rows`: a fingerprint -> its
    session id's number, for the rows done in full; None when there is none."""
    if not prints:
        return None

    def known(fingerprint: str) -> int | None:
        number = fingerprint_number(fingerprint)
        at = bisect.bisect_left(prints, number)
        return ids[at] if at < len(prints) and prints[at] == number else None

    return known
