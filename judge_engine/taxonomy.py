"""The failure modes a judge names, and the extra criteria a rubric may ask for.

In: nothing (the default taxonomy below), or a rubric's own `[failure_modes]` table
(codes added or redefined) and `[[criteria]]` (more than `task_success`). Out: the
`Form` of one rubric's reply: its failure-mode codes with their one-line definitions
(what the judge reads and the verdict's schema lists as an enum), and its criteria.

The default taxonomy keeps the modes that the published taxonomies of agent failures
agree on and that fit a single agent:

- MAST (Cemri et al. 2025, "Why Do Multi-Agent LLM Systems Fail?", arXiv
  2503.13657): disobeyed the task specification (FM-1.1), step repetition (FM-1.3),
  loss of conversation history (FM-1.4), unaware of the termination conditions
  (FM-1.5), premature termination (FM-3.1), no or incomplete verification (FM-3.2),
  incorrect verification (FM-3.3: here, a false claim of success);
- TRAIL (Deshpande et al. 2025, "TRAIL: Trace Reasoning and Agentic Issue
  Localization", arXiv 2505.08638), which keeps the environment's errors apart from
  the agent's: tool or API errors, resource exhaustion and timeouts, misread tool
  output, hallucinated facts or tool results, wrong tool choice;

and `other` for what none of them fits. `none` is the mode of a session that
succeeded. A rubric may add codes (a τ²-bench rubric adds `policy_violation`) or
redefine one; it may not remove `none` or `other`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

NONE = "none"
OTHER = "other"

#: code -> (definition the judge reads, source)
DEFAULT_MODES: dict[str, tuple[str, str]] = {
    "disobeyed_task": (
        "did something other than the task asked: wrong target, a constraint or required "
        "format ignored", "MAST FM-1.1",
    ),
    "step_repetition": (
        "repeated the same step or looped without progress", "MAST FM-1.3",
    ),
    "lost_history": (
        "lost track of what was said or done earlier in the session", "MAST FM-1.4",
    ),
    "unaware_of_termination": (
        "did not recognise when the task was done or could not be done, and went on or "
        "stopped at the wrong point", "MAST FM-1.5",
    ),
    "premature_termination": (
        "stopped before the task was complete (a step or a part of the task left undone)",
        "MAST FM-3.1",
    ),
    "no_verification": (
        "did not check its result, or checked it only partly, and the result is wrong",
        "MAST FM-3.2",
    ),
    "false_success_claim": (
        "claimed success that the transcript does not show", "MAST FM-3.3",
    ),
    "tool_error": (
        "a tool or API failed (an error, a refusal, a permission) and the agent could not "
        "work around it", "TRAIL: API and tool errors",
    ),
    "resource_exhaustion": (
        "ran out of time, steps, tokens or rate limit", "TRAIL: resource exhaustion, timeout",
    ),
    "misread_tool_output": (
        "misinterpreted what a tool returned", "TRAIL: tool output misinterpretation",
    ),
    "hallucination": (
        "invented a fact, a file, a result or a tool's output", "TRAIL: hallucination",
    ),
    "wrong_tool": (
        "chose the wrong tool, or the right tool with wrong arguments", "TRAIL: tool selection",
    ),
    OTHER: ("a failure none of the other codes describes", "judge-engine"),
}  # fmt: skip

#: The kinds of criterion a rubric may declare, and the values each takes.
CRITERION_KINDS: dict[str, tuple[int, ...]] = {"pass_fail": (0, 1), "scale_1_5": (1, 2, 3, 4, 5)}


@dataclass(frozen=True, slots=True)
class Criterion:
    """A criterion answered beside `task_success` in the same reply."""

    name: str
    kind: str
    definition: str

    @property
    def values(self) -> tuple[int, ...]:
        return CRITERION_KINDS[self.kind]


@dataclass(frozen=True, slots=True)
class Form:
    """What a rubric's reply holds beyond success: the failure-mode codes (`none`
    first) with their definitions, and the criteria."""

    modes: tuple[tuple[str, str], ...]
    criteria: tuple[Criterion, ...] = ()

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(code for code, _ in self.modes)

    def text(self) -> str:
        """The form as the judge reads it, and as the rubric's version hashes it."""
        lines = [f"- {code}: {definition}" for code, definition in self.modes]
        lines += [
            f"- criterion {c.name} ({'0 or 1' if c.kind == 'pass_fail' else '1 to 5'}): "
            f"{c.definition}"
            for c in self.criteria
        ]
        return "\n".join(lines)


def form_of(added: Mapping[str, str] | None = None, criteria: Sequence[Criterion] = ()) -> Form:
    """The default taxonomy with a rubric's codes added or redefined (`other` last)."""
    modes = {code: definition for code, (definition, _) in DEFAULT_MODES.items()}
    for code, definition in (added or {}).items():
        modes[code] = definition
    other = modes.pop(OTHER)
    ordered = [(NONE, "the session succeeded"), *modes.items(), (OTHER, other)]
    return Form(tuple(ordered), tuple(criteria))


__all__ = [
    "CRITERION_KINDS",
    "DEFAULT_MODES",
    "NONE",
    "OTHER",
    "Criterion",
    "Form",
    "form_of",
]
