"""The self-grading guard: no model grades a session that it (or a deployment of it) produced.

In: the judge slots asked for, the fallback judges, a session's agent models and the
mode (`model`, `vendor` or `off`). Out: one `Assignment` per slot: the model that
actually judges (or none) and why.

Names are compared after normalization: provider and deployment prefixes (`Az/`, `o/`,
`azure/`, `openai/`, `together/meta-llama/`, `models/`), vendor dots (`anthropic.`),
fine-tune wrappers (`ft:gpt-4o:org::id`), case, version tags (`:latest`, `@20240620`,
`-v1:0`) and date suffixes (`-2025-04-14`, `-20250219`, `-0613`, `-latest`) all go.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

MODES = ("model", "vendor", "off")

_DATE_SUFFIXES = re.compile(
    r"(?:[-_@](?:\d{4}-\d{2}-\d{2}|\d{8}|\d{4}|\d{3}|\d{2}-\d{2})|-latest|-preview|-exp)+$"
)
#: Version tags only: an Ollama size tag such as `:30b` names a different model.
_VERSION_TAG = re.compile(
    r"(?:-v\d+(?::\d+)?|:(?:latest|free|beta|extended|nitro|floor|online|thinking|\d+))$"
)
_VENDOR_DOT = re.compile(r"^(?:anthropic|meta|mistral|amazon|cohere|ai21|google|deepseek|qwen)\.")

#: Model-name prefixes (after normalization) and the vendor that makes them.
_VENDORS: tuple[tuple[str, str], ...] = (
    ("gpt-", "openai"),
    ("chatgpt", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("text-davinci", "openai"),
    ("davinci", "openai"),
    ("codex", "openai"),
    ("claude", "anthropic"),
    ("gemini", "google"),
    ("gemma", "google"),
    ("palm", "google"),
    ("llama", "meta"),
    ("meta-llama", "meta"),
    ("mistral", "mistral"),
    ("mixtral", "mistral"),
    ("codestral", "mistral"),
    ("devstral", "mistral"),
    ("magistral", "mistral"),
    ("ministral", "mistral"),
    ("pixtral", "mistral"),
    ("qwen", "alibaba"),
    ("qwq", "alibaba"),
    ("deepseek", "deepseek"),
    ("kimi", "moonshot"),
    ("moonshot", "moonshot"),
    ("glm", "zhipu"),
    ("chatglm", "zhipu"),
    ("grok", "xai"),
    ("command", "cohere"),
    ("phi-", "microsoft"),
    ("nova", "amazon"),
    ("titan", "amazon"),
    ("minimax", "minimax"),
    ("abab", "minimax"),
    ("yi-", "01ai"),
    ("hermes", "nous"),
)


@functools.lru_cache(maxsize=4096)
def normalize_model(name: str) -> str:
    """The model behind a deployment name, for comparison: `Az/gpt-4.1` -> `gpt-4.1`.

    Cached: a run names the same few models on every session."""
    text = name.strip().lower()
    if text.startswith("ft:"):  # ft:gpt-4o-2024-08-06:org::id -> the base model
        text = text[3:].split(":", 1)[0]
    text = text.rsplit("/", 1)[-1]  # provider, deployment and org prefixes
    text = _VENDOR_DOT.sub("", text)
    text = text.replace("_", "-").replace(" ", "-")
    previous = None
    while previous != text:
        previous = text
        text = _VERSION_TAG.sub("", text)
        text = _DATE_SUFFIXES.sub("", text)
    # claude-opus-4.5 and claude-opus-4-5 name the same model.
    return text.replace(".", "-") or name.strip().lower()


def vendor_of(name: str) -> str:
    """The vendor that makes a model, or the normalized name itself when unknown."""
    model = normalize_model(name)
    for prefix, vendor in _VENDORS:
        if model.startswith(prefix):
            return vendor
    return model


def same_model(a: str, b: str) -> bool:
    """Whether two names denote the same model.

    A bare family name with no version (`kimi`, the Hermes hub config) could be any
    model of the family, so it matches them all: `kimi` matches `Kimi-K2.5`.
    """
    x, y = normalize_model(a), normalize_model(b)
    if x == y:
        return True
    for family, other in ((x, y), (y, x)):
        if not any(c.isdigit() for c in family) and other.startswith(family + "-"):
            return True
    return False


def _conflict(judge: str, agents: Sequence[str], mode: str) -> str | None:
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
    panel = {normalize_model(s) for s in slots if _conflict(s, agent_models, mode) is None}
    for slot in slots:
        culprit = _conflict(slot, agent_models, mode)
        if culprit is None:
            chosen.append(Assignment(slot, slot, "ok"))
            continue
        rule = "its vendor" if mode == "vendor" and not same_model(slot, culprit) else "it"
        for fallback in fallbacks:
            key = normalize_model(fallback)
            if key in panel or _conflict(fallback, agent_models, mode) is not None:
                continue
            panel.add(key)
            chosen.append(
                Assignment(slot, fallback, f"fallback: {rule} produced this session ({culprit})")
            )
            break
        else:
            chosen.append(
                Assignment(
                    slot,
                    None,
                    f"self-grading: {rule} produced this session ({culprit}) "
                    "and no fallback judge is left",
                )
            )
    return chosen
