"""Model names: one canonical name per model for grouping, one normalized name for
comparison, and the vendor that makes it.

In: model names as traces, gateways and users spell them (`openai/azure/gpt-5.4`,
`Az/gpt-4.1`, `anthropic.claude-3-5-sonnet-20240620-v1:0`, `default`). Out:

- `canonical_model`: the name sessions are grouped by in `sessions`, `report`, the HTML
  report and exports: the part after the last `/` (provider, deployment and
  organisation prefixes go: `openai/azure/gpt-5.4` and `azure/gpt-5.4` are `gpt-5.4`),
  without a vendor's dot prefix (`anthropic.`) or a fine-tune wrapper (`ft:`), in lower
  case; a version or date stays (`gpt-4.1-2025-04-14` is its own snapshot). Names that
  name no model (`default`, `unknown`, `none`, empty) are None;
- `main_model`: a session's model for grouping: the canonical name that made the most
  of its calls (ties: the first named), with the others listed;
- `normalize_model`: the model behind a deployment name, for comparison (the guard,
  prices, the served model): also without case, version tags (`:latest`,
  `@20240620`, `-v1:0`) and date suffixes (`-2025-04-14`, `-20250219`, `-0613`,
  `-latest`), dots as dashes (`claude-opus-4.5` is `claude-opus-4-5`);
- `vendor_of`: who makes a model, by its normalized name.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable, Mapping

#: Names that name no model: a harness's placeholder, an empty field.
NO_MODEL = frozenset({"", "default", "unknown", "none", "null", "n/a"})

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


@functools.lru_cache(maxsize=4096)
def canonical_model(name: str) -> str | None:
    """The name a model is grouped by (the module docstring); None for no model."""
    text = name.strip().lower()
    if text.startswith("ft:"):
        text = text[3:].split(":", 1)[0]
    text = text.rsplit("/", 1)[-1].strip()
    text = _VENDOR_DOT.sub("", text)
    return None if text in NO_MODEL else text


def main_model(calls: Mapping[str, int] | Iterable[str]) -> tuple[str | None, tuple[str, ...]]:
    """A session's model for grouping, and its other models: from the number of calls
    each raw name made (the canonical name with most calls wins; ties go to the first
    named), or from names alone (the first). Both canonical."""
    counts: Counter[str] = Counter()
    order: dict[str, None] = {}
    items = calls.items() if isinstance(calls, Mapping) else ((name, 1) for name in calls)
    for raw, number in items:
        name = canonical_model(raw)
        if name is None:
            continue
        order.setdefault(name, None)
        counts[name] += number
    if not order:
        return None, ()
    best = max(order, key=lambda n: (counts[n], -list(order).index(n)))
    return best, tuple(n for n in order if n != best)


__all__ = [
    "NO_MODEL",
    "canonical_model",
    "main_model",
    "normalize_model",
    "same_model",
    "vendor_of",
]
