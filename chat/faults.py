"""Fault points: a step of a turn that fails on purpose, for the tests of its supervisor.

CHAT_FAULT_POINT names one step (claim, history, rag, model, save, finish,
advance); the first time this process reaches it, it raises. Unset (the
default), every point is a no-op.
"""

from django.conf import settings

STEPS = ("claim", "history", "rag", "model", "save", "finish", "advance")

_fired: set[str] = set()


class InjectedFault(Exception):
    """Raised at the step CHAT_FAULT_POINT names."""


def fault_point(step: str) -> None:
    if step == settings.CHAT_FAULT_POINT and step not in _fired:
        _fired.add(step)
        raise InjectedFault(f"fault injected at {step}")
