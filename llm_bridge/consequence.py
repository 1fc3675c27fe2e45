"""What a reply does in the simulator: the decoded action and judged quality, and the one
consequence of an unreadable reply.

**Unreadable replies** (``llm_bridge.unreadable``) are read by their recipient in the worst way:
the simulator plays the legible action with the lowest Q*(state, a) in that very state, with
message quality 0.  Communication quality enters the rubric (and seed_v1's step reward) with a
positive weight, so an unreadable reply is never worth more than the worst legible action:
vagueness cannot pay.  This needs Q* of the state, so the exact solver of the rule book is
built on the first unreadable reply of a process (about 20 s for week_v2) and kept.  A week
played with free-text replies is asked about in its grid twin (template qualities for the past
replies), so every question is a look-up and memory stays bounded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from wlf_jax.reference import Week


def get_solver(preset: str):
    """The process-wide exact solver of a rule book (``agents.exact.solver_for``; imported here
    lazily so that ``import llm_bridge`` stays light), solved: read from the on-disk cache when
    an earlier process solved the same rule book (0.2 s), solved otherwise (about 16 s for
    week_v2, 6 s for seed_v1)."""
    from agents.exact import solver_for

    return solver_for(preset).solve()


def worst_action(w: Week, preset: str) -> int:
    """The legible action with the lowest Q* in decision state ``w`` (lowest index on ties).

    Q* is read in the state's grid twin (``ExactSolver.on_grid``: the same week with template
    qualities for the past replies), a memo look-up; solving each free-text state anew would
    cost seconds and hundreds of MB per question."""
    solver = get_solver(preset)
    qs = solver.q(solver.on_grid(w))
    return min(range(len(qs)), key=lambda a: (qs[a], a))


class Reading(NamedTuple):
    """What a reply does: the action the simulator plays, the quality it records, and the
    decoder's verdict (``decoded.unreadable``, ``decoded.reason``)."""

    action: int
    quality: float
    decoded: Any


def read_reply(
    decoder,
    judge,
    event: int,
    text: str,
    week: Week | Callable[[], Week],
    preset: str,
    prompt: str | None = None,
) -> Reading:
    """Decode and judge ``text`` written to ``event`` in state ``week``; an unreadable reply
    becomes :func:`worst_action` with quality 0.  ``week`` may be a function that builds the
    state (called only for an unreadable reply)."""
    d = decoder.decode(event, text, prompt) if prompt is not None else decoder.decode(event, text)
    if getattr(d, "unreadable", False):
        action = worst_action(week() if callable(week) else week, preset)
        return Reading(action, 0.0, d)
    return Reading(d.action, float(judge(event, text)), d)
