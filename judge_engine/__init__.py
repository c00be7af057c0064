"""judge-engine: grade AI-agent traces with LLM judges at the provider's rate limit.

The data flows one way, one module (or package) per stage:
sources -> `sessions` -> `plan` (`rubrics`, `guard`, keys) -> `prompt` -> `asking`
-> `gateway` (a `Transport`: limits, client) -> `verdict` -> `journal` -> `results`
-> `sinks` (score columns), `agreement` and `report`. `config` holds every option,
`engine` wires the stages together, `cli` parses arguments and prints.

The library's surface, imported on first use so `import judge_engine` stays cheap:

    from judge_engine import Config, grade
    result, summary = await grade(Config.of(sources=("traces/",), judge=("gpt-4.1",)), key)
    result.status  # "done", "incomplete", "max_cost", "interrupted" or "error"
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS = {
    "Config": "config",
    "ConfigError": "config",
    "grade": "engine",
    "RunResult": "engine",
    "STATUSES": "engine",
    "Transport": "gateway",
    "Gateway": "gateway",
    "Session": "sessions",
    "read_sessions": "sessions",
    "Results": "results",
    "open_results": "results",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'judge_engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [*_EXPORTS, "__version__"]
