"""How much slower than an idle developer machine the tests' waits allow for.

A wait is an upper bound: a passing test never sits it out, so doubling it costs
nothing until something is wrong, and lets CI share its machine with other work.
The shared helpers (wsutil, live, tabs, servers, the browser fixtures) apply it
to every bound they are given. Checks that nothing arrives within a moment are
not waits, and are not scaled.
"""

SLOWDOWN = 2.0


def patience(seconds: float) -> float:
    return seconds * SLOWDOWN
