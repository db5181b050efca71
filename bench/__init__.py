"""Load benchmark: streamed replies fanned out to many tabs, ours against the naive design.

Run it with `uv run python -m bench`; docs/benchmark.md explains the scenarios.
"""
