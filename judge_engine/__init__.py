"""judge-engine: grade AI-agent traces with LLM judges at the provider's rate limit.

The data flows one way, one module (or package) per stage:
sources -> `sessions` -> `rubrics` and `prompt` -> `guard` -> `gateway` (limits, client)
-> `verdict` -> `journal` -> `sinks` (score columns) -> `agreement` and `report`.
`engine` wires the stages together; `cli` parses arguments and calls in.
"""

__version__ = "0.1.0"
