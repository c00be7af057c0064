"""The self-grading guard: no model grades a session that it (or a deployment of it) produced.

In: the judge slots asked for, the fallback judges, a session's agent models and the
mode (`model`, `vendor` or `off`). Out: one `Assignment` per slot: the model that
actually judges (or none) and why.

Names are compared after normalization (`models.normalize_model`): provider and
deployment prefixes, vendor dots, fine-tune wrappers, case, version tags and date
suffixes all go.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .models import normalize_model, same_model, vendor_of

MODES = ("model", "vendor", "off")

__all__ = [
    "MODES",
    "Assignment",
    "assign",
    "conflict",
    "normalize_model",
    "same_model",
    "vendor_of",
]


def conflict(judge: str, agents: Sequence[str], mode: str) -> str | None:
    """The agent model that forbids `judge`, if any."""
    if mode == "off":
        return None
    for agent in agents:
        if same_model(judge, agent):
            return agent
        if mode == "vendor" and vendor_of(judge) == vendor_of(agent):
            return agent
    return None


@dataclass(frozen=True, slots=True)
class Assignment:
    #: The judge asked for with --judge: the column its verdicts fill.
    slot: str
    #: The model that judges this session for the slot; None when it must skip.
    judge: str | None
    #: "ok", "fallback: ..." or "self-grading: ...".
    reason: str

    def to_dict(self) -> dict[str, str | None]:
        return {"slot": self.slot, "judge": self.judge, "reason": self.reason}


def _rule(judge: str, culprit: str, mode: str) -> str:
    """Which rule of the guard matched, in words (the names compared after
    normalization, provider and deployment prefixes aside: `vllm/...` and
    `openrouter/...` models have a vendor by their names)."""
    if mode == "vendor" and not same_model(judge, culprit):
        return (
            f"its vendor produced this session ({culprit}; both {vendor_of(judge)} by the "
            "models' names)"
        )
    return f"it produced this session ({culprit}; the same model by name)"


def assign(
    slots: Sequence[str],
    fallbacks: Sequence[str],
    agent_models: Sequence[str],
    mode: str = "model",
) -> list[Assignment]:
    """Which model judges each slot for a session made by `agent_models`.

    A slot whose judge made the session takes the first fallback that did not make
    it and does not already sit on this session's panel; with none left it skips.
    """
    if mode not in MODES:
        raise ValueError(f"guard mode must be one of {', '.join(MODES)}")
    chosen: list[Assignment] = []
    panel = {normalize_model(s) for s in slots if conflict(s, agent_models, mode) is None}
    for slot in slots:
        culprit = conflict(slot, agent_models, mode)
        if culprit is None:
            chosen.append(Assignment(slot, slot, "ok"))
            continue
        rule = _rule(slot, culprit, mode)
        excluded: list[str] = []
        for fallback in fallbacks:
            key = normalize_model(fallback)
            if key in panel:
                excluded.append(f"the fallback {fallback} judges this session already")
                continue
            made = conflict(fallback, agent_models, mode)
            if made is not None:
                excluded.append(f"the fallback {fallback} produced it too ({made})")
                continue
            panel.add(key)
            chosen.append(Assignment(slot, fallback, f"fallback: {rule}"))
            break
        else:
            why = "; ".join(excluded) if excluded else "no --fallback-judge given"
            chosen.append(
                Assignment(
                    slot,
                    None,
                    f"self-grading: {rule} and no fallback judge is left ({why})",
                )
            )
    return chosen
