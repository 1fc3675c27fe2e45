"""Exact solutions: expectimax over every chance outcome (no sampling) and exact policy values.

Chance in a week is (a) the order of shuffled events, revealed one event at a time, and (b) the
binary outcome of each (event, action) with ``alt_prob``.  The solver walks the decision graph
built from the plain-Python dynamics (:mod:`wlf_jax.reference`), merging states that agree on
everything the future depends on, and memoises Q*(state, action).

* :class:`ExactSolver` — ``solve()`` gives V*, the optimal expected return and week score,
  ``q(week)`` gives Q* for any reachable state, ``evaluate(policy)`` the exact expected return,
  score, rubric components, energy by day, action frequencies and early-end probability of any
  (stochastic) policy.
* :func:`deterministic`, :func:`fixed_map_policy`, :func:`uniform_policy` — host policies for
  ``evaluate``.
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wlf_jax.events import EVENT_IDS, N_ACTIONS, N_EVENTS
from wlf_jax.params import COMPONENT_NAMES, EnvParams, to_python
from wlf_jax.reference import N_DAYS, UNREVEALED, ReferenceWeek, Week

# A host policy maps a list of decision states to one probability vector over the 3 actions each.
HostPolicy = Callable[[Sequence[Week]], np.ndarray]


def state_key(w: Week) -> tuple:
    """What the future of a week depends on (and what an observation shows): states with equal
    keys have equal values, whatever order or path led to them."""
    handled = sum(1 << e for e, a in enumerate(w.actions) if a >= 0)
    current = w.slot_event[w.slot] if not w.done else -1
    # qualities are rounded to 1e-5 so a float32 sum (JAX) and a float64 sum (plain Python) of
    # the same template qualities give the same key
    return (
        w.values,
        w.status,
        w.pending,
        handled,
        w.count,
        w.day,
        round(w.quality_sum, 5),
        w.boundary,
        w.slot,
        current,
        w.done,
    )


@dataclass
class Evaluation:
    """Exact expectations of one policy."""

    exact_return: float
    exact_score: float
    components: dict[str, float]
    energy_by_day: list[float]
    early_end_prob: float
    action_freq: dict[str, list[float]]  # per event: probability of each action (given it occurs)
    event_prob: dict[str, float] = field(default_factory=dict)  # probability the event occurs

    def as_dict(self) -> dict:
        return {
            "exact_return": self.exact_return,
            "exact_score": self.exact_score,
            "components": self.components,
            "energy_by_day": self.energy_by_day,
            "early_end_prob": self.early_end_prob,
            "action_freq": self.action_freq,
            "event_prob": self.event_prob,
        }


class ExactSolver:
    """Expectimax over the week's decision graph for one rule book (either preset)."""

    def __init__(self, params: EnvParams):
        self.params = params
        self.rules = to_python(params)
        self.ref = ReferenceWeek(self.rules)
        r = self.rules
        self.shuffled_slots = [
            t for t, s in enumerate(r["slot_shuffle"]) if s and r["slot_event"][t] >= 0
        ]
        self.shuffled_events = frozenset(r["slot_event"][t] for t in self.shuffled_slots)
        if self.shuffled_events & self.ref.spawnable:
            raise ValueError("exact solver: spawned events cannot sit in shuffled slots")
        self._qmemo: dict[tuple, tuple[float, float, float]] = {}
        self._trans: dict[tuple, list] = {}
        self._myopic: dict[tuple, int] = {}
        self.solve_seconds: float | None = None
        self.solved_from: str | None = None
        """``"solve"`` or ``"cache"`` once :meth:`solve` ran."""

    # -- the decision graph -----------------------------------------------------------------
    def initial(self) -> list[tuple[float, Week]]:
        """Distribution over Monday-morning decision states."""
        r = self.rules
        slot_event = [
            UNREVEALED if t in self.shuffled_slots else e for t, e in enumerate(r["slot_event"])
        ]
        w = self.ref.reset(slot_event, [1.0] * N_EVENTS)
        return self._reveal(w)

    def _reveal(self, w: Week) -> list[tuple[float, Week]]:
        if w.done or w.slot_event[w.slot] != UNREVEALED:
            return [(1.0, w)]
        seen = {e for e in w.slot_event if e >= 0}
        left = sorted(self.shuffled_events - seen)
        out = []
        for e in left:
            se = list(w.slot_event)
            se[w.slot] = e
            out.append((1.0 / len(left), w._replace(slot_event=tuple(se))))
        return out

    def transitions(self, w: Week, action: int) -> list[tuple[float, float, Week]]:
        """``[(probability, reward, next_week)]`` for ``action`` in decision state ``w``."""
        key = (state_key(w), action)
        hit = self._trans.get(key)
        if hit is not None:
            return hit
        p_alt = self.ref.alt_probability(w, action)
        out = []
        for p, alt in ((1.0 - p_alt, False), (p_alt, True)):
            if p <= 0.0:
                continue
            nw, reward = self.ref.apply(w, action, alt)
            for p2, w2 in self._reveal(nw):
                out.append((p * p2, reward, w2))
        self._trans[key] = out
        return out

    def canonical(self, w: Week) -> Week:
        """The decision state as the solver sees it: shuffled slots after the current one are
        unrevealed (a week played from a scenario knows its future order; a policy must not)."""
        if not self.shuffled_slots or w.done:
            return w
        se = list(w.slot_event)
        for t in self.shuffled_slots:
            if t > w.slot:
                se[t] = UNREVEALED
        return w._replace(slot_event=tuple(se))

    # -- optimal values ---------------------------------------------------------------------
    def q(self, w: Week) -> tuple[float, float, float]:
        """Q*(w, a) for the three actions: expected return from decision state ``w`` (exact).

        ``w`` may come from a played week (reference dynamics, or converted from JAX); its
        future event order is hidden before solving."""
        return self._q(self.canonical(w))

    def on_grid(self, w: Week) -> Week:
        """``w`` with the rule book's template quality in place of each past reply's quality.

        A week played with free-text replies has a continuous ``quality_sum``, so each of its
        states is new to the memo and asking Q* of it solves its whole future again (seconds,
        and hundreds of MB kept).  Its grid twin differs only in that sum, which moves the
        communication component, not the dynamics: Q* of the twin is a memo look-up."""
        tq = self.rules["template_quality"]
        return w._replace(
            quality_sum=float(sum(tq[e][a] for e, a in enumerate(w.actions) if a >= 0))
        )

    def _q(self, w: Week) -> tuple[float, float, float]:
        key = state_key(w)
        hit = self._qmemo.get(key)
        if hit is not None:
            return hit
        values = []
        for a in range(N_ACTIONS):
            total = 0.0
            for p, reward, w2 in self.transitions(w, a):
                total += p * (reward + (0.0 if w2.done else max(self._q(w2))))
            values.append(total)
        out = tuple(values)
        self._qmemo[key] = out
        return out

    def value(self) -> float:
        """V* of the week: the optimal expected return from Monday morning."""
        return sum(p * max(self._q(w)) for p, w in self.initial())

    def solve(self, cache: bool = True) -> ExactSolver:
        """Compute Q* for every reachable state; records ``solve_seconds`` (the first time; a
        solved solver returns at once).

        With ``cache`` the solved values are kept on disk (:func:`memo_path`) and read back by
        the next process that solves the same rule book with the same dynamics code: 0.2 s
        instead of about 16 s for week_v2.  ``solved_from`` says which happened."""
        if self.solve_seconds is not None:
            return self
        t0 = time.perf_counter()
        path = memo_path(self.params) if cache else None
        if path is not None and self._read_memo(path):
            self.solved_from = "cache"
        else:
            self.value()
            self.solved_from = "solve"
            if path is not None:
                self._write_memo(path)
        self.solve_seconds = time.perf_counter() - t0
        return self

    def _read_memo(self, path: Path) -> bool:
        try:
            with open(path, "rb") as f:
                memo = pickle.load(f)
        except Exception:  # missing, truncated or foreign (any unpickling error): solve again
            return False
        if not isinstance(memo, dict) or not memo:
            return False
        self._qmemo.update(memo)
        return True

    def _write_memo(self, path: Path) -> None:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                pickle.dump(self._qmemo, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
        except Exception:  # a read-only or full disk only costs the next process a solve
            tmp.unlink(missing_ok=True)

    @property
    def n_states(self) -> int:
        return len(self._qmemo)

    def optimal_action(self, w: Week) -> int:
        """argmax_a Q*(w, a), lowest index on ties (values rounded to 1e-12)."""
        return _argmax(self._q(self.canonical(w)))

    def myopic_action(self, w: Week) -> int:
        """argmax_a of the expected immediate reward (exact over the step's chance)."""
        w = self.canonical(w)
        key = state_key(w)
        hit = self._myopic.get(key)
        if hit is None:
            hit = _argmax(
                [sum(p * r for p, r, _ in self.transitions(w, a)) for a in range(N_ACTIONS)]
            )
            self._myopic[key] = hit
        return hit

    def optimal_policy(self) -> HostPolicy:
        return deterministic(self.optimal_action)

    def myopic_policy(self) -> HostPolicy:
        """Best expected immediate reward at each step."""
        return deterministic(self.myopic_action)

    # -- exact policy evaluation ------------------------------------------------------------
    def evaluate(self, policy: HostPolicy) -> Evaluation:
        """Exact expectations of ``policy`` by pushing probability mass through the graph."""
        layer: dict[tuple, list] = {}
        for p, w in self.initial():
            layer.setdefault(state_key(w), [0.0, w])[0] += p
        ret = 0.0
        score = 0.0
        comps = np.zeros(len(COMPONENT_NAMES))
        energy_by_day = np.zeros(N_DAYS)
        early = 0.0
        freq = np.zeros((N_EVENTS, N_ACTIONS))
        scale = 1.0 if self.ref.floats else 100.0
        while layer:
            items = list(layer.values())
            dists = np.asarray(policy([w for _, w in items]), dtype=np.float64)
            nxt: dict[tuple, list] = {}
            for (p, w), dist in zip(items, dists):
                e = w.slot_event[w.slot]
                for a in range(N_ACTIONS):
                    pa = p * dist[a]
                    if pa <= 0.0:
                        continue
                    freq[e, a] += pa
                    for pt, reward, w2 in self.transitions(w, a):
                        m = pa * pt
                        ret += m * reward
                        for d in range(w.day, N_DAYS):
                            if w2.energy_by_day[d] is not None and (d < w2.day or w2.done):
                                energy_by_day[d] += m * w2.energy_by_day[d] / scale
                        if w2.done:
                            c = self.ref.components(w2)
                            comps += m * np.asarray(c)
                            score += m * self.ref.score(w2)
                            early += m * w2.early_end
                        else:
                            nxt.setdefault(state_key(w2), [0.0, w2])[0] += m
            layer = nxt
        occurs = freq.sum(1)
        return Evaluation(
            exact_return=ret,
            exact_score=score,
            components={k: float(v) for k, v in zip(COMPONENT_NAMES, comps)},
            energy_by_day=[float(v) for v in energy_by_day],
            early_end_prob=float(early),
            action_freq={
                EVENT_IDS[e]: [float(x) for x in freq[e] / max(occurs[e], 1e-12)]
                for e in range(N_EVENTS)
                if occurs[e] > 0
            },
            event_prob={EVENT_IDS[e]: float(occurs[e]) for e in range(N_EVENTS) if occurs[e] > 0},
        )


_SOLVERS: dict[str, ExactSolver] = {}


def memo_path(params: EnvParams) -> Path | None:
    """Where the solved Q* of a rule book is kept between processes: beside the compiled
    tables (``$WLF_CACHE/compiled``; ``WLF_CACHE=`` keeps nothing), named by the rule book and
    a hash of it and of the code that defines the values (this module, the reference dynamics,
    the events and the rule book's conversion), so an edit to any of them never reads stale
    values."""
    from wlf_jax import events, reference
    from wlf_jax import params as params_module
    from wlf_jax.compiled import keyed_path

    code = (reference.__file__, events.__file__, params_module.__file__, __file__)
    return keyed_path(params, "qmemo.pkl", code)


def solver_for(preset: str) -> ExactSolver:
    """The exact solver of the preset called ``preset``, one per process (the only solver
    cache: the LLM reward, the learners' exact evaluation, the baselines and the tests share
    it). Q* is computed lazily and memoised; call ``.solve()`` to solve the whole week at once
    (about 20 s for week_v2, 6 s for seed_v1, then instant)."""
    solver = _SOLVERS.get(preset)
    if solver is None:
        from wlf_jax import presets

        solver = _SOLVERS[preset] = ExactSolver(presets.get(preset))
    return solver


def _argmax(values) -> int:
    best, arg = None, 0
    for a, v in enumerate(values):
        v = round(v, 12)
        if best is None or v > best:
            best, arg = v, a
    return arg


def deterministic(act: Callable[[Week], int]) -> HostPolicy:
    """A host policy from a one-state action function."""
    eye = np.eye(N_ACTIONS)

    def policy(weeks):
        return eye[[act(w) for w in weeks]]

    return policy


def fixed_map_policy(action_map: Sequence[int]) -> HostPolicy:
    """A state-independent policy: ``action_map[event]`` whatever the state."""
    table = [int(a) for a in action_map]
    return deterministic(lambda w: table[w.slot_event[w.slot]])


def uniform_policy() -> HostPolicy:
    return lambda weeks: np.full((len(weeks), N_ACTIONS), 1.0 / N_ACTIONS)
