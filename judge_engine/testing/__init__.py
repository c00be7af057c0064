"""Stand-ins for the world, for the demo, tests and benchmarks; no stage imports them.

`sim`: an OpenAI-compatible judge gateway on loopback that is not a model (verdicts by
fixed rules, its own rate limit, injected faults). `synth`: synthetic traces in every
input format, realistic in shape and size.
"""
