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

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .config import PanelOptions, RequestOptions
from .guard import Assignment, assign
from .journal import (
    DONE,
    FAILED,
    FAILED_BEFORE,
    NEW,
    SKIPPED,
    Record,
    fingerprint_number,
    request_key,
)
from .prompt import PROMPT_VERSION, JudgeRequest, TooLarge, render_request, retarget
from .rubrics import Rubric, RubricSet
from .sessions import Session

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
    #: Requests of this run that ended failed (the writer counts them).
    failed: int = 0


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

    def plan(self, session: Session) -> Job:
        """The session's requests still to make (all of them, with no journal)."""
        rubric = self.rubrics.for_benchmark(session.benchmark)
        current = fingerprint_number(session.source.fingerprint)
        pending = []
        changed = False
        failed_before = 0
        panel = self.panel
        for assignment in assign(
            panel.judge, panel.fallback_judge, session.agent_models, panel.guard
        ):
            for sample in range(panel.repeats):
                key = request_key(
                    session.session_id,
                    assignment.slot,
                    assignment.judge or "",
                    rubric.version,
                    PROMPT_VERSION,
                    sample,
                )
                state, graded = self._lookup(key) if self._lookup else (NEW, 0)
                if state == DONE and graded and graded != current:
                    changed = True  # graded before, from a row that has changed since
                    if self._regrade_changed:
                        state = NEW
                if state == FAILED_BEFORE:
                    failed_before += 1
                elif state == NEW:
                    pending.append(Planned(assignment, sample, key))
        return Job(session, rubric, pending, changed, len(pending), failed_before)

    def render(self, job: Job) -> Rendered:
        """The exact body of every pending request with a judge: the session rendered
        once, retargeted to each judge. A skip (the guard) becomes its record; a session
        that cannot be rendered becomes a failed record per request, with the reason."""
        out = Rendered()
        base: JudgeRequest | None = None
        for planned in job.pending:
            judge = planned.assignment.judge
            if judge is None:
                out.records.append(self.skip_record(job, planned))
                continue
            try:
                if base is None:
                    base = render_request(
                        job.session,
                        job.rubric,
                        judge,
                        max_prompt_tokens=self.request.max_prompt_tokens,
                        redact=self.request.redact,
                        temperature=self.panel.temperature,
                        max_tokens=self.panel.max_output_tokens,
                        secrets=self._secrets,
                    )
                request = base if base.judge_model == judge else retarget(base, judge)
            except TooLarge as exc:
                out.records.append(self.failed_record(job, planned, f"too_large: {exc}"))
                continue
            except Exception as exc:  # one session's rendering, never the run's crash
                reason = f"render_error: {type(exc).__name__}: {exc}"[:500]
                out.records.append(self.failed_record(job, planned, reason))
                continue
            out.asks.append(Ask(planned, request))
        return out

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
            "fingerprint": session.source.fingerprint or None,
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
