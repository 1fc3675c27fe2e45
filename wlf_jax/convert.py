"""Conversions between the plain-Python :class:`~wlf_jax.reference.Week` and a JAX ``EnvState``.

:func:`week_from_state` lets the exact solver answer for a state reached in the JAX simulator;
:func:`week_to_state` is its reverse.  With it a week
played by the plain-Python simulator (the exact solver, the GRPO prompt states) is shown
through the one ``WorkWeek.describe``, so every prompt is rendered from the same view.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from .float64 import _SCALE
from .params import EnvParams
from .reference import Week
from .state import EnvState


def _hundredths_and_drift(value, floats: bool) -> tuple[int, int]:
    """``(h, off)`` of a quantity: integer hundredths and, in float64 rule books, the exact
    distance ``value - h/100`` in units of ``2**-60 / 25`` (see ``wlf_jax.float64``)."""
    if not floats:
        return int(value), 0
    exact = Fraction(value)
    h = round(exact * 100)
    off = (exact - Fraction(h, 100)) * _SCALE
    if off.denominator != 1:
        raise ValueError(f"{value!r} is not a float64 value the simulator can reach")
    return int(h), int(off)


def week_to_state(w: Week, params: EnvParams) -> EnvState:
    """The ``EnvState`` of a plain-Python week, as host (numpy) arrays of ``EnvState``'s dtypes.

    Exact for every field the simulator reads; ``quality_sum`` and ``uniforms`` become float32
    (as in the JAX simulator), and in float64 rule books ``energy_by_day`` keeps hundredths only
    (as the JAX state stores it).  So ``week_from_state(week_to_state(w))`` is ``w`` for a week
    that came from a JAX state, and for every week of an integer rule book whose qualities and
    uniforms are float32 numbers.
    """
    floats = bool(np.asarray(params.float64_arithmetic))
    pairs = [_hundredths_and_drift(v, floats) for v in w.values]
    hundredths = [h for h, _ in pairs]
    pending = np.zeros(len(w.actions), bool)
    pending[sorted(w.pending)] = True
    by_day = [-1 if v is None else (round(v * 100) if floats else int(v)) for v in w.energy_by_day]
    return EnvState(
        energy=np.asarray(hundredths[0], np.int32),
        sprint=np.asarray(hundredths[1], np.int32),
        trust=np.asarray(hundredths[2:], np.int32),
        drift=np.asarray([off for _, off in pairs], np.int32),
        status=np.asarray(w.status, np.int8),
        pending=pending,
        actions=np.asarray(w.actions, np.int8),
        slot=np.asarray(w.slot, np.int32),
        count=np.asarray(w.count, np.int32),
        day=np.asarray(w.day, np.int32),
        quality_sum=np.asarray(w.quality_sum, np.float32),
        boundary=np.asarray(w.boundary, np.int32),
        energy_by_day=np.asarray(by_day, np.int8),
        done=np.asarray(w.done, bool),
        early_end=np.asarray(w.early_end, bool),
        slot_event=np.asarray(w.slot_event, np.int8),
        uniforms=np.asarray(w.uniforms, np.float32),
    )


def week_from_state(state, params: EnvParams) -> Week:
    """The plain-Python :class:`Week` of a (single, unbatched) JAX ``EnvState`` — e.g. to ask the
    solver for Q* of a state reached in the JAX simulator."""
    s = {k: np.asarray(v) for k, v in vars(state).items()}
    floats = bool(np.asarray(params.float64_arithmetic))
    hundredths = [int(s["energy"]), int(s["sprint"]), *[int(t) for t in s["trust"]]]
    if floats:
        values = tuple(
            float(Fraction(h, 100) + Fraction(int(o), _SCALE))
            for h, o in zip(hundredths, s["drift"])
        )
    else:
        values = tuple(hundredths)
    scale = 100.0 if floats else 1.0
    return Week(
        values=values,
        status=tuple(int(x) for x in s["status"]),
        pending=frozenset(int(i) for i in np.flatnonzero(s["pending"])),
        actions=tuple(int(a) for a in s["actions"]),
        slot=int(s["slot"]),
        count=int(s["count"]),
        day=int(s["day"]),
        quality_sum=float(s["quality_sum"]),
        boundary=int(s["boundary"]),
        energy_by_day=tuple(
            None if v < 0 else (v / scale if floats else int(v)) for v in s["energy_by_day"]
        ),
        done=bool(s["done"]),
        early_end=bool(s["early_end"]),
        slot_event=tuple(int(e) for e in s["slot_event"]),
        uniforms=tuple(float(u) for u in s["uniforms"]),
    )
