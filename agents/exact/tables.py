"""Exact answers on the compiled tables of a fixed-order rule book (:mod:`wlf_jax.compiled`).

The host solver (:mod:`.host`) walks the decision graph in Python dictionaries; the compiled
form already holds that graph as arrays (every reachable state an id, layered by decisions
made), so the same exact quantities are a few array passes on the device:

* :func:`optimal_policy` / :func:`myopic_policy` -- per-state action tables from Q* (value
  iteration, :func:`wlf_jax.compiled.optimal_values`) and from the expected immediate reward;
* :func:`evaluate` -- the exact :class:`~agents.exact.host.Evaluation` of any per-state policy
  table (probability mass pushed forward layer by layer): return, score, rubric components,
  energy by day, early-end probability, action frequencies; :func:`exact_scores` -- only the
  score, of many tables in one pass (learning curves);
* :func:`map_scores` -- the exact (score, return) of many state-independent maps at once, by
  walking every chance pattern through the tables (how the best fixed map is searched).

``tests/test_compiled.py`` checks each against the host solver.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from agents.exact.host import Evaluation
from agents.exact.patterns import chance_patterns, pattern_probability
from wlf_jax.compiled import CompiledRules, optimal_values, table_step
from wlf_jax.events import EVENT_IDS, N_ACTIONS, N_EVENTS
from wlf_jax.params import COMPONENT_NAMES, MAX_STEPS, N_DAYS, EnvParams

TIE_TOLERANCE = 1e-6
"""Actions whose Q is within this of the best count as optimal; the lowest index wins (as in
:mod:`.induction`: float32 values need a looser tolerance than the host's 12 decimals)."""


def _outcomes(rules: CompiledRules):
    """``(p (N, 3, 2), next (N, 3, 2), reward (N, 3, 2))``: each (action, outcome)'s
    probability, next id and reward."""
    n = rules.n_states
    p_alt = rules.alt_prob.reshape(n, N_ACTIONS)
    p = jnp.stack([1.0 - p_alt, p_alt], axis=-1)
    return p, rules.next_id.reshape(n, N_ACTIONS, 2), rules.reward.reshape(n, N_ACTIONS, 2)


def _first_within(q: jax.Array) -> jax.Array:
    """(N,) the lowest action whose value is within :data:`TIE_TOLERANCE` of the row's best."""
    near = q >= jnp.max(q, axis=1, keepdims=True) - TIE_TOLERANCE
    return jnp.argmax(near, axis=1).astype(jnp.int32)


@jax.jit
def optimal_policy(rules: CompiledRules) -> jax.Array:
    """(N,) int32: an optimal action of every state (lowest index among the optimal ones)."""
    q, _ = optimal_values(rules)
    return _first_within(q)


@jax.jit
def myopic_policy(rules: CompiledRules) -> jax.Array:
    """(N,) int32: the action with the best expected immediate reward in every state."""
    p, _, reward = _outcomes(rules)
    return _first_within(jnp.sum(p * reward, axis=-1))


def map_policy(rules: CompiledRules, action_map) -> jax.Array:
    """(N,) int32: a state-independent map (action per event) as a per-state table."""
    return jnp.asarray(action_map, jnp.int32)[jnp.maximum(rules.event, 0)]


def as_distribution(policy: jax.Array) -> jax.Array:
    """(N, 3) probabilities from an action table (N,) (or a distribution, returned as is)."""
    policy = jnp.asarray(policy)
    if policy.ndim == 1:
        return jax.nn.one_hot(policy, N_ACTIONS, dtype=jnp.float32)
    return policy.astype(jnp.float32)


@jax.jit
def _push(rules: CompiledRules, dist: jax.Array):
    """Probability mass pushed from Monday morning through every layer under ``dist`` (N, 3).

    Returns ``(mass (N,), expected return, energy by day (5,) in hundredths, visits (N, 3))``:
    ``mass`` the probability of ever being in each state, ``visits`` of taking each action."""
    p, nxt, reward = _outcomes(rules)
    days = rules.day_energy.reshape(rules.n_states, N_ACTIONS, 2, N_DAYS).astype(jnp.float32)
    live = ~rules.done
    mass = jnp.zeros((rules.n_states,), jnp.float32).at[rules.initial].set(1.0)
    ret = jnp.float32(0.0)
    energy = jnp.zeros((N_DAYS,), jnp.float32)
    for lo, hi in zip(rules.layers[:-1], rules.layers[1:]):
        m = jnp.where(live[lo:hi], mass[lo:hi], 0.0)[:, None, None] * dist[lo:hi, :, None]
        m = m * p[lo:hi]  # (n, 3, 2): probability of each (action, outcome) from this layer
        ret = ret + jnp.sum(m * reward[lo:hi])
        energy = energy + jnp.einsum("nao,naod->d", m, jnp.where(days[lo:hi] >= 0, days[lo:hi], 0))
        mass = mass.at[nxt[lo:hi].reshape(-1)].add(m.reshape(-1))
    visits = jnp.where(live, mass, 0.0)[:, None] * dist
    return mass, ret, energy, visits


def evaluate(rules: CompiledRules, policy) -> Evaluation:
    """The exact :class:`~agents.exact.host.Evaluation` of a per-state policy: an action table
    (N,) or action probabilities (N, 3) over the rule book's state ids."""
    dist = as_distribution(policy)
    mass, ret, energy, visits = jax.device_get(_push(rules, dist))
    mass, visits = np.asarray(mass, np.float64), np.asarray(visits, np.float64)
    done = np.asarray(rules.done)
    end = np.where(done, mass, 0.0)  # probability of ending the week in each final state
    comps = end @ np.asarray(rules.components, np.float64)
    event = np.asarray(rules.event)
    freq = np.zeros((N_EVENTS, N_ACTIONS))
    np.add.at(freq, event[~done], visits[~done])
    occurs = freq.sum(1)
    return Evaluation(
        exact_return=float(ret),
        exact_score=float(end @ np.asarray(rules.score, np.float64)),
        components={k: float(v) for k, v in zip(COMPONENT_NAMES, comps)},
        energy_by_day=[float(v) / 100.0 for v in energy],
        early_end_prob=float(end @ np.asarray(rules.early_end, np.float64)),
        action_freq={
            EVENT_IDS[e]: [float(x) for x in freq[e] / max(occurs[e], 1e-12)]
            for e in range(N_EVENTS)
            if occurs[e] > 0
        },
        event_prob={EVENT_IDS[e]: float(occurs[e]) for e in range(N_EVENTS) if occurs[e] > 0},
    )


@jax.jit
def _end_mass(rules: CompiledRules, policies: jax.Array) -> jax.Array:
    """(P, N): the probability of ever being in each state under each action table of
    ``policies`` (P, N), as :func:`evaluate` pushes it."""
    return jax.vmap(lambda a: _push(rules, as_distribution(a))[0])(policies)


def exact_scores(rules: CompiledRules, policies) -> list[float]:
    """The exact score of each per-state action table of ``policies`` (P, N) in one pass: what
    :func:`evaluate` gives as ``exact_score`` for each (the same push, the same float64 sum),
    without the other statistics."""
    mass = np.asarray(jax.device_get(_end_mass(rules, jnp.asarray(policies, jnp.int32))))
    end = np.where(np.asarray(rules.done), mass.astype(np.float64), 0.0)
    score = np.asarray(rules.score, np.float64)
    return [float(e @ score) for e in end]  # row by row: the same summation as evaluate's


@jax.jit
def _walk_maps(rules: CompiledRules, maps, alt_bits, chance):
    """(score, return) (M,) of each map, every chance pattern walked through the tables."""
    p_all = rules.alt_prob.reshape(rules.n_states, N_ACTIONS)

    def week(amap, alt_bit):  # one map, one pattern: a determined week
        def body(carry, _):
            sid, ret, acts, p_taken = carry
            e = rules.event[sid]
            live = ~rules.done[sid]
            ec = jnp.maximum(e, 0)
            a = amap[ec]
            nid, r, _, _ = table_step(rules, sid, a, jnp.where(alt_bit[ec], 0.0, 1.0))
            acts = jnp.where(live & (jnp.arange(N_EVENTS) == e), a, acts)
            p_taken = jnp.where(live & (jnp.arange(N_EVENTS) == e), p_all[sid, a], p_taken)
            return (jnp.where(live, nid, sid), ret + jnp.where(live, r, 0.0), acts, p_taken), None

        init = (rules.initial, jnp.float32(0.0), jnp.full((N_EVENTS,), -1), jnp.zeros((N_EVENTS,)))
        (sid, ret, acts, p_taken), _ = jax.lax.scan(body, init, None, length=MAX_STEPS)
        w = pattern_probability(jnp, alt_bit, acts, p_taken, chance)
        return w * rules.score[sid], w * ret

    per_map = jax.vmap(week, in_axes=(None, 0))
    scores, returns = jax.vmap(per_map, in_axes=(0, None))(maps, alt_bits)
    return jnp.sum(scores, axis=1), jnp.sum(returns, axis=1)


def map_scores(
    rules: CompiledRules,
    params: EnvParams,
    action_maps: np.ndarray,
    batch: int = 2048,
    progress=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact expected (score, return) of each state-independent map in ``action_maps`` (M, E):
    the 2**K outcome patterns of the K chance events, each a determined week, weighted by its
    probability under the map (as :func:`agents.exact.patterns.exact_scores`, on the tables)."""
    chance = np.asarray(params.alt_prob).max(axis=1) > 0
    alt, _ = chance_patterns(chance)
    alt_j, chance_j = jnp.asarray(alt), jnp.asarray(chance)
    maps = np.asarray(action_maps, np.int32)
    scores, returns = [], []
    for i in range(0, len(maps), batch):
        chunk = maps[i : i + batch]
        pad = batch - len(chunk)
        if pad:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, 0)])
        s, r = jax.device_get(_walk_maps(rules, jnp.asarray(chunk), alt_j, chance_j))
        scores.append(np.asarray(s, np.float64)[: batch - pad])
        returns.append(np.asarray(r, np.float64)[: batch - pad])
        if progress:
            progress(batch - pad)
    return np.concatenate(scores), np.concatenate(returns)
