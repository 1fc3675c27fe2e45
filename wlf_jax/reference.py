"""The plain-Python implementation of the week: no JAX, no numpy.

Written separately from the JAX code path from the same rule book (``params.to_python``), it
is the oracle of the differential tests, the speed baseline of ``wlf bench`` and the transition
model of the exact solver.  Quantities are integer hundredths, except in rule books with
``float64_arithmetic`` (seed_v1), where they are Python floats exactly as the original kept
them (``max(0.0, min(1.0, x + delta))``) and are reported as floats.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any, NamedTuple

# The catalogue is plain Python (no JAX): the indices of the status variables come from there.
from .events import APPRAISAL, LEAVE, ONCALL, SLEEP_DEBT, STAGING

N_DAYS = 5
UNREVEALED = -2
"""``slot_event`` marker of a shuffled slot whose event is not yet known (used by the exact
solver, which reveals a shuffled schedule one event at a time)."""


class Week(NamedTuple):
    """The state of a week (immutable, hashable).  ``values`` = (energy, sprint, *trust)."""

    values: tuple  # ints (hundredths) or floats (float64 rule books)
    status: tuple[int, ...]
    pending: frozenset  # spawned events waiting for their slot
    actions: tuple[int, ...]  # per event, -1 = not handled
    slot: int
    count: int
    day: int
    quality_sum: float
    boundary: int
    energy_by_day: tuple
    done: bool
    early_end: bool
    slot_event: tuple[int, ...]
    uniforms: tuple[float, ...]


class ReferenceWeek:
    """One rule book's dynamics in plain Python.

    >>> ref = ReferenceWeek(to_python(presets.seed_v1()))
    >>> w = ref.reset(slot_event, uniforms)
    >>> w, reward = ref.step(w, action)
    """

    def __init__(self, rules: dict[str, Any]):
        self.r = rules
        self.floats = bool(rules["float64_arithmetic"])
        self.n_events = len(rules["energy_delta"])
        self.n_slots = len(rules["slot_event"])
        self.spawnable = {e for row in rules["spawn"] for pair in row for e in pair if e >= 0}

    # -- numbers ------------------------------------------------------------------------------
    def _num(self, hundredths: int):
        return hundredths / 100 if self.floats else hundredths

    def _clamp_add(self, x, hundredths: int):
        if self.floats:
            return max(0.0, min(1.0, x + hundredths / 100))
        return max(0, min(100, x + hundredths))

    def at_least(self, x, threshold_hundredths: int) -> bool:
        return x >= self._num(threshold_hundredths)

    # -- schedule ---------------------------------------------------------------------------
    def is_active(self, event: int, pending) -> bool:
        """Whether a scheduled event will be presented (always, unless it must be spawned)."""
        if event == UNREVEALED:
            return True  # shuffled slots only ever hold base events
        return event >= 0 and (event not in self.spawnable or event in pending)

    def next_slot(self, slot_event, after: int, pending) -> int | None:
        for t in range(after + 1, self.n_slots):
            if self.is_active(slot_event[t], pending):
                return t
        return None

    def reset(self, slot_event, uniforms) -> Week:
        """Monday morning of the week with this schedule and these uniform draws."""
        r = self.r
        values = tuple(
            self._num(h) for h in [r["start_energy"], r["start_sprint"], *r["start_trust"]]
        )
        first = self.next_slot(slot_event, -1, frozenset())
        return Week(
            values=values,
            status=tuple(r["start_status"]),
            pending=frozenset(),
            actions=(-1,) * self.n_events,
            slot=self.n_slots if first is None else first,
            count=0,
            day=0,
            quality_sum=0.0,
            boundary=0,
            energy_by_day=(None,) * N_DAYS,
            done=first is None,
            early_end=False,
            slot_event=tuple(slot_event),
            uniforms=tuple(uniforms),
        )

    def current_event(self, w: Week) -> int:
        return w.slot_event[w.slot] if not w.done else -1

    # -- rubric -------------------------------------------------------------------------------
    def components(self, w: Week) -> list[float]:
        r = self.r
        energy, sprint, trust = w.values[0], w.values[1], w.values[2:]
        technical = r["tech_weights"][0] * (w.status[STAGING] == 1) + r["tech_weights"][
            1
        ] * self.at_least(sprint, r["tech_sprint_threshold"])
        communication = w.quality_sum / max(w.count, 1)
        boundary = min(1.0, max(0.0, w.boundary / 100))
        energy_score = r["energy_scores"][-1]
        for thr, score in zip(r["energy_thresholds"], r["energy_scores"]):
            if self.at_least(energy, thr):
                energy_score = score
                break
        scale = 1.0 if self.floats else 100.0
        rel = sum(wt * t / scale for wt, t in zip(r["relationship_weights"], trust))
        return [technical, communication, boundary, energy_score, min(1.0, max(0.0, rel))]

    def score(self, w: Week) -> float:
        return sum(wt * c for wt, c in zip(self.r["rubric_weights"], self.components(w)))

    def _bonus(self, w: Week) -> float:
        thr, val = self.r["bonus_thresholds"], self.r["bonus_values"]
        energy, sprint, david = w.values[0], w.values[1], w.values[2]
        hits = [
            self.at_least(sprint, thr[0]),
            w.status[STAGING] == 1,
            w.status[LEAVE] == 1,
            w.status[APPRAISAL] == 1,
            self.at_least(energy, thr[1]),
            not self.at_least(energy, thr[2]),
            self.at_least(david, thr[3]),
            w.status[ONCALL] != 1,
        ]
        return sum(v for v, hit in zip(val, hits) if hit)

    # -- transition ---------------------------------------------------------------------------
    def alt_probability(self, w: Week, action: int) -> float:
        return self.r["alt_prob"][self.current_event(w)][action]

    def step(self, w: Week, action: int, quality: float | None = None) -> tuple[Week, float]:
        """Apply ``action`` (0..2) to the current event; the outcome comes from the uniforms."""
        if w.done:
            return w, 0.0
        e = self.current_event(w)
        alt = w.uniforms[e] < self.r["alt_prob"][e][action]
        return self.apply(w, action, alt, quality)

    def apply(
        self,
        w: Week,
        action: int,
        alt: bool,
        quality: float | None = None,
        next_event: int | None = None,
    ) -> tuple[Week, float]:
        """Apply ``action`` with an explicit outcome (``alt``).  ``next_event``, when given,
        fills the next slot (the exact solver reveals a shuffled schedule one event at a time)."""
        r = self.r
        if not 0 <= action <= 2:
            raise ValueError(f"action must be 0, 1 or 2, got {action}")
        e = self.current_event(w)
        o = 1 if alt else 0
        d_energy = r["energy_delta"][e][action] + (r["alt_energy_delta"][e][action] if alt else 0)
        d_sprint = r["sprint_delta"][e][action] + (r["alt_sprint_delta"][e][action] if alt else 0)
        d_trust = [
            m + (a if alt else 0)
            for m, a in zip(r["trust_delta"][e][action], r["alt_trust_delta"][e][action])
        ]
        q = (
            r["template_quality"][e][action]
            if quality is None or quality < 0
            else min(1.0, quality)
        )
        deltas = [d_energy, d_sprint, *d_trust]
        values = [self._clamp_add(x, d) for x, d in zip(w.values, deltas)]
        status = list(w.status)
        for k, v in enumerate(r["status_set"][e][action][o]):
            if v >= 0:
                status[k] = v
        pending = set(w.pending)
        pending.discard(e)
        if r["spawn"][e][action][o] >= 0:
            pending.add(r["spawn"][e][action][o])
        actions = list(w.actions)
        actions[e] = action
        count = w.count + 1

        energy = values[0]
        early_end = energy <= self._num(r["early_end_energy"])
        slot_event = list(w.slot_event)
        nxt = self.next_slot(slot_event, w.slot, pending)
        finished = nxt is None
        done = early_end or finished
        if next_event is not None and not done:
            slot_event[nxt] = next_event
        if r["day_by_count"]:
            day = r["count_day"][min(count, self.n_slots)]
        elif early_end:
            day = w.day
        elif finished:
            day = N_DAYS - 1
        else:
            day = r["slot_day"][nxt]
        day = max(day, w.day)
        # night by night: each day ends with the energy before its night's recovery
        energy_by_day = list(w.energy_by_day)
        for d in range(w.day, N_DAYS):
            if d < day or done:
                energy_by_day[d] = values[0]
            if d < N_DAYS - 1 and d < day and not early_end:
                gain = r["recovery"][d]
                if d == w.day and status[SLEEP_DEBT] == 1:
                    gain -= r["sleep_debt_penalty"]
                values[0] = self._clamp_add(values[0], gain)
        if day > w.day and not early_end:
            status[SLEEP_DEBT] = 0

        nw = Week(
            values=tuple(values),
            status=tuple(status),
            pending=frozenset(pending),
            actions=tuple(actions),
            slot=self.n_slots if done else nxt,
            count=count,
            day=day,
            quality_sum=w.quality_sum + q,
            boundary=w.boundary + r["boundary_credit"][e][action],
            energy_by_day=tuple(energy_by_day),
            done=done,
            early_end=early_end,
            slot_event=tuple(slot_event),
            uniforms=w.uniforms,
        )
        if r["shaped_reward"]:
            reward = self.score(nw) - self.score(w)
        else:
            c = r["reward_coef"]
            raw = (
                c[0] * d_energy / 100
                + c[1] * d_sprint / 100
                - c[2] * sum(abs(t) for t in d_trust) / 100
                + c[3] * q
            )
            if done:
                raw += self._bonus(nw)
            reward = round(raw, 4)
        return nw, reward

    def play(self, slot_event, uniforms, actions, qualities=None) -> tuple[Week, list[float]]:
        """Play a week with a list of actions (one per decision); returns (final week, rewards)."""
        w = self.reset(slot_event, uniforms)
        rewards = []
        for i, a in enumerate(actions):
            if w.done:
                break
            q = None if qualities is None else qualities[i]
            w, rew = self.step(w, a, q)
            rewards.append(rew)
        return w, rewards


def week_to_json(w: Week) -> dict:
    """A JSON-ready dict of a week (floats of float64 rule books round-trip exactly)."""
    d = w._asdict()
    d["pending"] = sorted(w.pending)
    return d


def week_from_json(d: dict) -> Week:
    """Inverse of :func:`week_to_json`."""
    fields = dict(d)
    for k in ("values", "status", "actions", "energy_by_day", "slot_event", "uniforms"):
        fields[k] = tuple(fields[k])
    fields["pending"] = frozenset(fields["pending"])
    return Week(**fields)


def sample_scenario_py(
    rules: Mapping[str, Any], rng: random.Random
) -> tuple[list[int], list[float]]:
    """A week's chance in plain Python: ``(slot_event, uniforms)`` for :meth:`ReferenceWeek.reset`.

    The plain-Python twin of :func:`wlf_jax.state.sample_scenario`: the same distribution (the
    ``slot_shuffle`` slots permuted among themselves, one uniform draw in [0, 1) per event) from
    a ``random.Random`` instead of a JAX key, so the same seed gives other weeks than the JAX
    draw.  ``rules`` is ``params.to_python()``'s dict; the uniforms are Python floats.
    """
    slot_event = list(rules["slot_event"])
    shuffled = [t for t, s in enumerate(rules["slot_shuffle"]) if s]
    events = [slot_event[t] for t in shuffled]
    rng.shuffle(events)
    for t, e in zip(shuffled, events):
        slot_event[t] = e
    uniforms = [rng.random() for _ in range(len(rules["energy_delta"]))]
    return slot_event, uniforms
