"""Rule books as data: ``seed_v1`` (the original, exactly) and ``week_v2`` (the default).

Each preset is written as one row per (event, action) and turned into the tables of
:class:`~wlf_jax.params.EnvParams` by :func:`build`.  Every number of ``week_v2`` is explained
in ``docs/rulebook.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .events import (
    EVENTS, N_ACTIONS, N_EVENTS, N_STAKEHOLDERS, N_STATUS, STAKEHOLDERS, STATUS_NAMES,
    STATUS_VALUES, action_index, event_index,
)
from .params import MAX_STEPS, N_DAYS, EnvParams, make_params


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
        for o, (status, spawn) in enumerate(((r.main.status, r.main.spawn),
                                             ({**r.main.status, **r.alt.status},
                                              r.alt.spawn if r.alt.spawn is not None else r.main.spawn))):
            for var, value in status.items():
                k = STATUS_NAMES.index(var)
                t["status_set"][e, a, o, k] = -1 if value is None else STATUS_VALUES[var].index(value)
            t["spawn"][e, a, o] = -1 if spawn in (None, "") else event_index(spawn)
    return make_params(name=name, **t, **rest)


def _schedule(events: list[tuple[str, int]], shuffle: set[str] = frozenset()):
    slot_event = np.full(MAX_STEPS, -1)
    slot_day = np.full(MAX_STEPS, N_DAYS - 1)
    slot_shuffle = np.zeros(MAX_STEPS, bool)
    for i, (ev, day) in enumerate(events):
        slot_event[i] = event_index(ev)
        slot_day[i] = day
        slot_shuffle[i] = ev in shuffle
    return {"slot_event": slot_event, "slot_day": slot_day, "slot_shuffle": slot_shuffle}


_SEED_RUBRIC = {
    "rubric_weights": [0.25, 0.25, 0.20, 0.20, 0.10],
    "tech_weights": [0.5, 0.5],
    "tech_sprint_threshold": 70,
    "energy_thresholds": [70, 50, 30],
    "energy_scores": [1.0, 0.65, 0.30, 0.0],
    # (mean of the five trusts + 1.5 * david_chen) / 2.5
    "relationship_weights": [0.2 / 2.5 + 1.5 / 2.5, 0.08, 0.08, 0.08, 0.08],
}


def _seed_rows() -> list[Row]:
    O, R = Outcome, Row
    held, leaked = 25, -15  # boundary_setting = held/4 - 0.15 * leaked
    q = 0.35
    return [
        R("E1_staging", "fix_directly", O(-8, 20, status={"staging": "fixed"}), q),
        R("E1_staging", "delegate_oncall", O(-2, 10, {"rahul": -1}), q),
        R("E1_staging", "escalate_infra", O(-6, 5, {"rahul": -2}), q),
        R("E2_slack", "async_boundary", O(4, 0, {"priya": 1, "rahul": 1}), q, held),
        R("E2_slack", "both_calls_now", O(-20, -3, {"priya": 3, "rahul": 3}), q, leaked),
        R("E2_slack", "ignore_slack", O(-3, -2, {"priya": -4, "rahul": -4}), q),
        R("E3_client_email", "acknowledge_timeline", O(3, 0, {"david_chen": 8}), q, held),
        R("E3_client_email", "full_apology", O(-9, -5, {"david_chen": -4}), q),
        R("E3_client_email", "cc_manager", O(-2, 0, {"david_chen": 2, "sundar": -2}), q),
        # Approved when the uniform draw is > 0.20; the alternative (draw below 0.20) leaves
        # the leave pending.
        R("E4_leave", "ping_sundar", O(10, 0, status={"leave": "approved"}), q,
          alt_prob=0.20, alt=O(status={"leave": "pending"})),
        R("E4_leave", "wait_hope", O(-12, 0), q),
        R("E4_leave", "cancel_leave", O(-25, 5, {"sundar": 1}, {"leave": "cancelled"}), q),
        R("E5_appraisal", "block_wednesday", O(3, 0, status={"appraisal": "done"}), q),
        R("E5_appraisal", "rush_tonight", O(-14, 0), q),
        R("E5_appraisal", "ask_extension", O(-3, 0), q),
        R("E6_oncall", "no_clearly_kindly", O(12, 0, {"arjun": -2}), q, held),
        R("E6_oncall", "yes_people_pleaser", O(-28, -15, {"arjun": 5}, {"oncall": "accepted"}), q, leaked),
        R("E6_oncall", "counter_offer", O(2, 0), q, held),
        R("E7_standup", "decline_async", O(14, 0, {"david_chen": 2}), q, held),
        R("E7_standup", "attend_sacrifice", O(-30, -10, {"david_chen": 3}), q, leaked),
        R("E7_standup", "delegate_teammate", O(5, 0, {"priya": -2}), q),
    ]


def seed_v1() -> EnvParams:
    """The original hackathon rule book, reproduced exactly (SPEC §3.2)."""
    base = [e.id for e in EVENTS if not e.spawned]
    return build(
        "seed_v1",
        _seed_rows(),
        start_energy=87,
        start_sprint=80,
        start_trust=[75, 80, 90, 88, 82],
        start_status=[0, 0, 0, 0, 0],
        **_schedule([(ev, 0) for ev in base], shuffle=set(base[1:])),
        day_by_count=True,
        count_day=[min(4, k // 2) for k in range(MAX_STEPS + 1)],
        recovery=[0, 0, 0, 0],
        sleep_debt_penalty=0,
        early_end_energy=5,
        float64_arithmetic=True,
        shaped_reward=False,
        reward_coef=[0.5, 0.3, 0.1, 0.12],
        bonus_thresholds=[70, 60, 30, 70],
        bonus_values=[1.0, 0.3, 0.3, 0.2, 0.3, -0.5, 0.2, 0.15],
        **_SEED_RUBRIC,
    )


def week_v2() -> EnvParams:
    """The default rule book: spawned consequences, days with recovery, chance, shaped rubric."""
    from .week_v2 import week_v2_params

    return week_v2_params()


PRESETS: dict[str, Callable[[], EnvParams]] = {"week_v2": week_v2, "seed_v1": seed_v1}


def get(name: str) -> EnvParams:
    """The preset called ``name``; raises ``KeyError`` listing the known presets."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name]()
