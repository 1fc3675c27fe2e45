"""The five-part rubric, the seed formula reward and the potential-based shaped reward."""

from __future__ import annotations

import jax.numpy as jnp

from . import float64
from .events import ACCEPTED, APPRAISAL, APPROVED, DONE, FIXED, LEAVE, ONCALL, STAGING
from .params import EnvParams
from .state import EnvState

DAVID = 0


def _energy_at_least(state: EnvState, threshold, params: EnvParams) -> jnp.ndarray:
    return float64.at_least(state.energy, state.drift[0], threshold, params.float64_arithmetic)


def _sprint_at_least(state: EnvState, threshold, params: EnvParams) -> jnp.ndarray:
    return float64.at_least(state.sprint, state.drift[1], threshold, params.float64_arithmetic)


def energy_score(state: EnvState, params: EnvParams) -> jnp.ndarray:
    """energy_to_friday: the score of the highest threshold reached (thresholds descend)."""
    reached = _energy_at_least(state, params.energy_thresholds, params)  # (3,)
    first = jnp.argmax(jnp.concatenate([reached, jnp.ones((1,), bool)]))
    return params.energy_scores[first]


def components(state: EnvState, params: EnvParams) -> jnp.ndarray:
    """The five rubric components of "the week if it ended now", each in [0, 1]. Shape (5,)."""
    technical = params.tech_weights[0] * (state.status[STAGING] == FIXED) + params.tech_weights[
        1
    ] * _sprint_at_least(state, params.tech_sprint_threshold, params)
    communication = state.quality_sum / jnp.maximum(state.count, 1)
    boundary = jnp.clip(state.boundary / 100.0, 0.0, 1.0)
    energy = energy_score(state, params)
    relationship = jnp.clip(jnp.sum(params.relationship_weights * state.trust) / 100.0, 0.0, 1.0)
    return jnp.stack([technical, communication, boundary, energy, relationship]).astype(jnp.float32)


def rubric_total(state: EnvState, params: EnvParams) -> jnp.ndarray:
    """Weighted rubric in [0, 1]: the week's score when the week is over, Φ(state) before."""
    return jnp.sum(params.rubric_weights * components(state, params))


def terminal_bonus(state: EnvState, params: EnvParams) -> jnp.ndarray:
    """seed_v1's end-of-week bonus, from the state after the last step."""
    thr, val = params.bonus_thresholds, params.bonus_values
    terms = jnp.stack(
        [
            _sprint_at_least(state, thr[0], params),
            state.status[STAGING] == FIXED,
            state.status[LEAVE] == APPROVED,
            state.status[APPRAISAL] == DONE,
            _energy_at_least(state, thr[1], params),
            ~_energy_at_least(state, thr[2], params),
            float64.at_least(
                state.trust[DAVID], state.drift[2 + DAVID], thr[3], params.float64_arithmetic
            ),
            state.status[ONCALL] != ACCEPTED,
        ]
    )
    return jnp.sum(jnp.where(terms, val, 0.0))


def seed_step_reward(d_energy, d_sprint, d_trust, quality, bonus, params: EnvParams):
    """seed_v1's reward: coefficients times the *table* deltas (hundredths), rounded to 4 places."""
    c = params.reward_coef
    raw = (c[0] * d_energy + c[1] * d_sprint - c[2] * jnp.sum(jnp.abs(d_trust))) / 100.0
    raw = raw + c[3] * quality + bonus
    return jnp.round(raw * 1e4) / 1e4
