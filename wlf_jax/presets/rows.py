"""Writing a rule book as rows: one :class:`Row` per (event, action), turned into the tables of
:class:`~wlf_jax.params.EnvParams` by :func:`build`; :func:`schedule` lays out the slots."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..events import (
    N_ACTIONS,
    N_EVENTS,
    N_STAKEHOLDERS,
    N_STATUS,
    STAKEHOLDERS,
    STATUS_NAMES,
    STATUS_VALUES,
    action_index,
    event_index,
)
from ..params import MAX_STEPS, N_DAYS, EnvParams, make_params


@dataclass(frozen=True)
class Outcome:
    """Effects of one outcome of a choice (hundredths); ``status`` maps name -> value name."""

    energy: int = 0
    sprint: int = 0
    trust: dict[str, int] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)
    spawn: str | None = None


@dataclass(frozen=True)
class Row:
    """One (event, action) of a rule book: main outcome, optional alternative outcome."""

    event: str
    action: str
    main: Outcome
    quality: float
    boundary: int = 0
    alt_prob: float = 0.0
    alt: Outcome = Outcome()  # added to the main outcome's deltas when it happens
    reason: str = ""


def build(name: str, rows: list[Row], **rest) -> EnvParams:
    """Turn rows + scalar settings into a validated :class:`EnvParams`.

    Events of the catalogue with no rows keep zero deltas and never occur unless scheduled.
    """
    E, A, S, K = N_EVENTS, N_ACTIONS, N_STAKEHOLDERS, N_STATUS
    t = {
        "energy_delta": np.zeros((E, A), np.int64),
        "sprint_delta": np.zeros((E, A), np.int64),
        "trust_delta": np.zeros((E, A, S), np.int64),
        "alt_prob": np.zeros((E, A), np.float64),
        "alt_energy_delta": np.zeros((E, A), np.int64),
        "alt_sprint_delta": np.zeros((E, A), np.int64),
        "alt_trust_delta": np.zeros((E, A, S), np.int64),
        "status_set": np.full((E, A, 2, K), -1, np.int64),
        "spawn": np.full((E, A, 2), -1, np.int64),
        "template_quality": np.zeros((E, A), np.float64),
        "boundary_credit": np.zeros((E, A), np.int64),
    }
    seen = set()
    for r in rows:
        e, a = event_index(r.event), action_index(r.event, r.action)
        if (e, a) in seen:
            raise ValueError(f"{name}: duplicate row {r.event}/{r.action}")
        seen.add((e, a))
        t["energy_delta"][e, a] = r.main.energy
        t["sprint_delta"][e, a] = r.main.sprint
        t["alt_prob"][e, a] = r.alt_prob
        t["alt_energy_delta"][e, a] = r.alt.energy
        t["alt_sprint_delta"][e, a] = r.alt.sprint
        t["template_quality"][e, a] = r.quality
        t["boundary_credit"][e, a] = r.boundary
        for who, d in r.main.trust.items():
            t["trust_delta"][e, a, STAKEHOLDERS.index(who)] = d
        for who, d in r.alt.trust.items():
            t["alt_trust_delta"][e, a, STAKEHOLDERS.index(who)] = d
        # The alternative outcome inherits the main outcome's status changes and spawn unless
        # it sets its own.
        for o, (status, spawn) in enumerate(
            (
                (r.main.status, r.main.spawn),
                (
                    {**r.main.status, **r.alt.status},
                    r.alt.spawn if r.alt.spawn is not None else r.main.spawn,
                ),
            )
        ):
            for var, value in status.items():
                k = STATUS_NAMES.index(var)
                t["status_set"][e, a, o, k] = (
                    -1 if value is None else STATUS_VALUES[var].index(value)
                )
            t["spawn"][e, a, o] = -1 if spawn in (None, "") else event_index(spawn)
    return make_params(name=name, **t, **rest)


def schedule(events: list[tuple[str, int]], shuffle: set[str] = frozenset()) -> dict:
    """Slot tables of a week: ``events`` is ``[(event id, day), ...]`` in slot order; events in
    ``shuffle`` are permuted among their slots at reset."""
    slot_event = np.full(MAX_STEPS, -1)
    slot_day = np.full(MAX_STEPS, N_DAYS - 1)
    slot_shuffle = np.zeros(MAX_STEPS, bool)
    for i, (ev, day) in enumerate(events):
        slot_event[i] = event_index(ev)
        slot_day[i] = day
        slot_shuffle[i] = ev in shuffle
    return {"slot_event": slot_event, "slot_day": slot_day, "slot_shuffle": slot_shuffle}
