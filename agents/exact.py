"""Exact solutions: expectimax over every chance outcome (no sampling) and exact policy values.

Chance in a week is (a) the order of shuffled events, revealed one event at a time, and (b) the
binary outcome of each (event, action) with ``alt_prob``.  The solver walks the decision graph
built from the plain-Python dynamics (:mod:`wlf_jax.reference`), merging states that agree on
everything the future depends on, and memoises Q*(state, action).

* :class:`ExactSolver` — ``solve()`` gives V*, the optimal expected return and week score,
  ``q(week)`` gives Q* for any reachable state, ``evaluate(policy)`` the exact expected return,
  score, rubric components, energy by day, action frequencies and early-end probability of any
  (stochastic) policy.
* :func:`pattern_scenarios` + :func:`exact_scores` (JAX) — the exact expected score of many
  deterministic policies at once, by enumerating every order and outcome pattern with its
  probability; used to search all state-independent maps exhaustively.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from wlf_jax.events import EVENT_IDS, N_ACTIONS, N_EVENTS
from wlf_jax.params import COMPONENT_NAMES, MAX_STEPS, EnvParams, to_python
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

    def solve(self) -> ExactSolver:
        """Compute Q* for every reachable state; records ``solve_seconds`` (the first time; a
        solved solver returns at once)."""
        if self.solve_seconds is not None:
            return self
        t0 = time.perf_counter()
        self.value()
        self.solve_seconds = time.perf_counter() - t0
        return self

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
    """A host policy from a one-state action function; ``.act`` keeps the function."""
    eye = np.eye(N_ACTIONS)

    def policy(weeks):
        return eye[[act(w) for w in weeks]]

    policy.act = act  # type: ignore[attr-defined]
    return policy


def fixed_map_policy(action_map: Sequence[int]) -> HostPolicy:
    """A state-independent policy: ``action_map[event]`` whatever the state."""
    table = [int(a) for a in action_map]
    return deterministic(lambda w: table[w.slot_event[w.slot]])


def uniform_policy() -> HostPolicy:
    return lambda weeks: np.full((len(weeks), N_ACTIONS), 1.0 / N_ACTIONS)


# ---------------------------------------------------------------------------------------------
# Exact values of many deterministic policies at once (JAX): enumerate every chance pattern.
# ---------------------------------------------------------------------------------------------


@dataclass
class PatternSet:
    """Every equally-structured chance pattern of a week: orders of the shuffled slots times
    main/alternative outcomes of every event that has a chance outcome."""

    slot_event: np.ndarray  # (N, T) int32
    uniforms: np.ndarray  # (N, E) float32: 0.0 forces the alternative outcome, 1.0 the main one
    order_weight: np.ndarray  # (N,) float64: probability of the order
    alt_bit: np.ndarray  # (N, E) bool
    chance_events: np.ndarray  # (E,) bool


def chance_patterns(chance_events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(alt (P, E) bool, uniforms (P, E) float32)`` for every main/alternative outcome pattern
    of the events marked in ``chance_events`` (E,), P = 2**K.  A uniform of 0 forces the
    alternative outcome wherever the chosen action has one, 1 forces the main outcome."""
    ids = np.flatnonzero(np.asarray(chance_events, bool))
    bits = np.array(list(itertools.product([False, True], repeat=len(ids))), bool).reshape(
        -1, len(ids)
    )
    alt = np.zeros((len(bits), N_EVENTS), bool)
    alt[:, ids] = bits
    return alt, np.where(alt, 0.0, 1.0).astype(np.float32)


def pattern_scenarios(params: EnvParams) -> PatternSet:
    """Enumerate orders x outcome patterns (seed_v1: 720 x 2; week_v2: 1 x 2**7)."""
    r = to_python(params)
    slot_event = np.asarray(r["slot_event"], np.int32)
    shuffle = np.asarray(r["slot_shuffle"], bool) & (slot_event >= 0)
    slots = np.flatnonzero(shuffle)
    events = slot_event[slots]
    orders = []
    for perm in itertools.permutations(events):
        se = slot_event.copy()
        se[slots] = perm
        orders.append(se)
    chance = np.asarray(r["alt_prob"]).max(axis=1) > 0
    alt_one, uniforms_one = chance_patterns(chance)
    n = len(orders) * len(alt_one)
    se_all = np.repeat(np.asarray(orders, np.int32), len(alt_one), axis=0)
    alt = np.tile(alt_one, (len(orders), 1))
    uniforms = np.tile(uniforms_one, (len(orders), 1))
    return PatternSet(se_all, uniforms, np.full(n, 1.0 / len(orders)), alt, chance)


def pattern_probability(xp, alt_bit, actions, p_taken, chance_events):
    """Probability of each outcome pattern under the actions taken in it, with array module
    ``xp`` (numpy on the host, ``jax.numpy`` in jitted code).  ``actions`` (..., E), -1 = event
    not reached; ``p_taken`` (..., E) the alternative's probability for the action taken.
    Unreached chance events count both outcomes, so their factor is 1/2; events without
    chance contribute 1."""
    factor = xp.where(alt_bit, p_taken, 1.0 - p_taken)
    factor = xp.where(actions >= 0, factor, 0.5)
    factor = xp.where(chance_events, factor, 1.0)
    return xp.prod(factor, axis=-1)


def pattern_weights(patterns: PatternSet, actions: np.ndarray, params: EnvParams) -> np.ndarray:
    """Probability of each pattern given the actions taken in it (``actions``: (..., N, E), -1 =
    event not reached); see :func:`pattern_probability`."""
    p_alt = np.asarray(params.alt_prob, np.float64)  # (E, A)
    a = np.clip(actions, 0, N_ACTIONS - 1)
    p = np.take_along_axis(np.broadcast_to(p_alt, a.shape[:-1] + p_alt.shape), a[..., None], -1)[
        ..., 0
    ]
    return (
        pattern_probability(np, patterns.alt_bit, actions, p, patterns.chance_events)
        * patterns.order_weight
    )


def exact_scores(
    params: EnvParams,
    action_maps: np.ndarray,
    batch: int = 4096,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact expected (score, return) of each state-independent map in ``action_maps`` (M, E)."""
    import jax
    import jax.numpy as jnp

    from wlf_jax.reward import rubric_total
    from wlf_jax.rollout import replay_scenario
    from wlf_jax.state import Scenario

    pats = pattern_scenarios(params)
    se, un = jnp.asarray(pats.slot_event), jnp.asarray(pats.uniforms)

    def one_week(amap, slot_event, uniforms):
        s, rewards = replay_scenario(
            Scenario(slot_event, uniforms),
            params,
            choose=lambda s, _: amap[s.slot_event[jnp.clip(s.slot, 0, MAX_STEPS - 1)]],
            record=lambda s, nxt, reward, info: reward,
        )
        return rubric_total(s, params), jnp.sum(rewards), s.actions

    run = jax.jit(jax.vmap(lambda m: jax.vmap(lambda a, b: one_week(m, a, b))(se, un)))
    scores, returns = [], []
    per = max(1, batch // len(pats.slot_event)) if len(pats.slot_event) < batch else 1
    for i in range(0, len(action_maps), per):
        chunk = np.asarray(action_maps[i : i + per], np.int32)
        pad = per - len(chunk)
        if pad:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, 0)])
        sc, rt, acts = jax.device_get(run(jnp.asarray(chunk)))
        w = pattern_weights(pats, np.asarray(acts, np.int64), params)
        scores.append((w * sc).sum(-1)[: per - pad])
        returns.append((w * rt).sum(-1)[: per - pad])
        if progress:
            progress(len(chunk) - pad)
    return np.concatenate(scores), np.concatenate(returns)


def relevant_maps(params: EnvParams) -> np.ndarray:
    """All state-independent maps, pruned to one representative where an event's action cannot
    matter (a spawned event that no reachable choice spawns).  (M, E) int32."""
    r = to_python(params)
    spawn = np.asarray(r["spawn"])
    scheduled = [e for e in r["slot_event"] if e >= 0]
    base = [e for e in scheduled if not (spawn == e).any()]
    spawned = [e for e in scheduled if (spawn == e).any()]
    maps = []
    for choice in itertools.product(range(N_ACTIONS), repeat=len(base)):
        # (map, events that can occur under it); spawned events expanded in schedule order
        frontier = [(dict(zip(base, choice)), set(base))]
        for e in spawned:
            new = []
            for m, live in frontier:
                if any((spawn[src, m[src]] == e).any() for src in live):
                    new.extend(({**m, e: a}, live | {e}) for a in range(N_ACTIONS))
                else:
                    new.append(({**m, e: 0}, live))
            frontier = new
        for m, _ in frontier:
            row = np.zeros(N_EVENTS, np.int32)
            for e, a in m.items():
                row[e] = a
            maps.append(row)
    return np.asarray(maps, np.int32)


# ---------------------------------------------------------------------------------------------
# Observations of host-side decision states, so trained networks can be evaluated exactly.
# ---------------------------------------------------------------------------------------------


def weeks_to_obs(weeks: Sequence[Week], params: EnvParams) -> np.ndarray:
    """The observation of each host-side decision state: shape (n, OBS_SIZE) float32.

    Each :class:`Week` becomes an ``EnvState`` (``wlf_jax.convert.week_to_state``) and the one
    ``wlf_jax.observe`` computes the batch (jitted; batches are padded to a power of two so a
    solver's layers of every size share a few compilations).
    """
    import jax

    from wlf_jax.convert import week_to_state
    from wlf_jax.env import OBS_SIZE

    n = len(weeks)
    if n == 0:
        return np.zeros((0, OBS_SIZE), np.float32)
    states = [week_to_state(w, params) for w in weeks]
    padded = max(512, 1 << max(0, (n - 1).bit_length()))
    states += states[-1:] * (padded - n)
    batch = jax.tree_util.tree_map(lambda *xs: np.stack(xs), *states)
    return np.asarray(_observe_batch()(batch, params))[:n]


@functools.lru_cache(maxsize=1)
def _observe_batch():
    """``observe`` vmapped over states and jitted, built once (JAX imported on first use)."""
    import jax

    from wlf_jax.env import observe

    return jax.jit(jax.vmap(observe, in_axes=(0, None)))


def obs_policy(act_batch: Callable[[np.ndarray], np.ndarray], params: EnvParams) -> HostPolicy:
    """Wrap ``act_batch(obs (n, OBS_SIZE)) -> actions (n,)`` (e.g. a network's greedy action) as
    a host policy for :meth:`ExactSolver.evaluate`."""
    eye = np.eye(N_ACTIONS)
    return lambda weeks: eye[np.asarray(act_batch(weeks_to_obs(weeks, params)), np.int64)]
