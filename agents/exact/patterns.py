"""Exact values of many deterministic policies at once (JAX): enumerate every chance pattern.

:func:`pattern_scenarios` + :func:`exact_scores` give the exact expected score of many
deterministic policies at once, by enumerating every order and outcome pattern with its
probability; used to search all state-independent maps exhaustively.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from wlf_jax.events import N_ACTIONS, N_EVENTS
from wlf_jax.params import MAX_STEPS, EnvParams, to_python


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
