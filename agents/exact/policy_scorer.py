"""Exact expected week score of any deterministic observation policy, vmappable over rule books.

In a fixed-schedule week (``week_v2``) the only randomness is the outcome of each chance event,
drawn once per event.  Fix every chance event's outcome up front (a *pattern*: main or
alternative for each of the K chance events; ``week_v2``: 2**7 = 128) and a deterministic policy
plays one determined week per pattern.  The probability of a pattern under that policy is the
product, over the chance events, of ``p`` (alternative) or ``1 - p`` (main) for the action the
policy took there; events the week never reached count both outcomes, so they contribute 1/2 to
each of the two otherwise identical patterns.  The exact expected score is the weighted sum over
patterns (:func:`agents.exact.patterns.chance_patterns` and
:func:`agents.exact.patterns.pattern_probability`, shared with the host-side
:func:`agents.exact.patterns.exact_scores`).

Everything is JAX: ``make_policy_scorer`` returns one jitted function that scores a stack of
rule books (``vmap``) for a policy given as ``policy(policy_params, obs) -> action`` -- e.g. a
trained PPO network's greedy action -- which is what ``wlf sensitivity --trained DIR`` uses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from agents.exact.patterns import chance_patterns, pattern_probability
from wlf_jax.compiled import fixed_order
from wlf_jax.env import observe
from wlf_jax.events import N_ACTIONS, N_EVENTS
from wlf_jax.params import EnvParams
from wlf_jax.reward import rubric_total
from wlf_jax.rollout import replay_scenario
from wlf_jax.state import Scenario

ObsPolicy = Callable[[Any, jnp.ndarray], jnp.ndarray]  # (policy_params, obs (OBS,)) -> action ()


def fixed_schedule(params: EnvParams) -> np.ndarray:
    """The slot schedule of a rule book whose event order is fixed; raises for shuffled ones."""
    slot_event = np.asarray(params.slot_event)
    if slot_event.ndim != 1:
        raise ValueError("pass one rule book (or take row 0 of a stack) to read its schedule")
    if not fixed_order(params):
        raise ValueError(
            f"rule book {params.name!r} shuffles its events; the exact policy "
            "scorer needs a fixed schedule (e.g. week_v2)"
        )
    return slot_event.astype(np.int32)


def make_policy_scorer(policy: ObsPolicy, slot_event: np.ndarray, chance_events: np.ndarray):
    """A jitted ``score(policy_params, params) -> (B,)``: the exact expected week score of the
    deterministic ``policy`` in each rule book of the stack ``params`` (leading batch axis).

    ``slot_event`` (T,): the common fixed schedule; ``chance_events`` (E,): every event that has
    an alternative outcome for some action in some rule book of the stack (extra events are
    harmless: their patterns get weight 0 or split evenly).
    """
    alt, uniforms = chance_patterns(chance_events)
    alt_j, uniforms_j = jnp.asarray(alt), jnp.asarray(uniforms)
    chance_j = jnp.asarray(np.asarray(chance_events, bool))
    schedule = jnp.asarray(slot_event, jnp.int32)
    events = jnp.arange(N_EVENTS)

    def one_week(policy_params, params: EnvParams, u):
        final, _ = replay_scenario(
            Scenario(schedule, u),
            params,
            choose=lambda s, _: jnp.asarray(policy(policy_params, observe(s, params)), jnp.int32),
        )
        return rubric_total(final, params), final.actions.astype(jnp.int32)

    def one_book(policy_params, params: EnvParams):
        score, actions = jax.vmap(one_week, (None, None, 0))(policy_params, params, uniforms_j)
        p = params.alt_prob[events, jnp.clip(actions, 0, N_ACTIONS - 1)]  # (P, E)
        return jnp.sum(pattern_probability(jnp, alt_j, actions, p, chance_j) * score)

    return jax.jit(jax.vmap(one_book, (None, 0)))


def greedy_obs_policy(greedy: Callable) -> ObsPolicy:
    """Adapt a learner's batched ``greedy(params, obs (n, OBS)) -> (n,)`` to one observation."""
    return lambda policy_params, obs: greedy(policy_params, obs[None])[0]


__all__ = ["fixed_schedule", "greedy_obs_policy", "make_policy_scorer"]
