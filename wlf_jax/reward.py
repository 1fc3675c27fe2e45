"""The five-part rubric, the seed formula reward and the potential-based shaped reward."""

from __future__ import annotations

import jax.numpy as jnp

from .params import EnvParams
from .state import EnvState

# status variable indices and values (see events.STATUS_VALUES)
STAGING, LEAVE, APPRAISAL, ONCALL, SLEEP_DEBT = range(5)
FIXED, APPROVED, DONE, ACCEPTED = 1, 1, 1, 1
DAVID = 0


def energy_score(energy: jnp.ndarray, params: EnvParams) -> jnp.ndarray:
    """energy_to_friday: the score of the highest threshold reached (thresholds descend)."""
    reached = energy >= params.energy_thresholds  # (3,)
    first = jnp.argmax(jnp.concatenate([reached, jnp.ones((1,), bool)]))
    return params.energy_scores[first]


def components(state: EnvState, params: EnvParams) -> jnp.ndarray:
    """The five rubric components of "the week if it ended now", each in [0, 1]. Shape (5,)."""
    technical = (
        params.tech_weights[0] * (state.status[STAGING] == FIXED)
        + params.tech_weights[1] * (state.sprint >= params.tech_sprint_threshold)
    )
    communication = state.quality_sum / jnp.maximum(state.count, 1)
    boundary = jnp.clip(state.boundary / 100.0, 0.0, 1.0)
    energy = energy_score(state.energy, params)
    relationship = jnp.clip(jnp.sum(params.relationship_weights * state.trust) / 100.0, 0.0, 1.0)
    return jnp.stack([technical, communication, boundary, energy, relationship]).astype(jnp.float32)


def rubric_total(state: EnvState, params: EnvParams) -> jnp.ndarray:
    """Weighted rubric in [0, 1]: the week's score when the week is over, Φ(state) before."""
    return jnp.sum(params.rubric_weights * components(state, params))


def terminal_bonus(state: EnvState, params: EnvParams) -> jnp.ndarray:
    """seed_v1's end-of-week bonus, from the state after the last step."""
    thr, val = params.bonus_thresholds, params.bonus_values
    terms = jnp.stack([
        state.sprint >= thr[0],
        state.status[STAGING] == FIXED,
        state.status[LEAVE] == APPROVED,
        state.status[APPRAISAL] == DONE,
        state.energy >= thr[1],
        state.energy < thr[2],
        state.trust[DAVID] >= thr[3],
        state.status[ONCALL] != ACCEPTED,
    ])
    return jnp.sum(jnp.where(terms, val, 0.0))


def seed_step_reward(d_energy, d_sprint, d_trust, quality, bonus, params: EnvParams):
    """seed_v1's reward: coefficients times the *table* deltas (hundredths), rounded to 4 places."""
    c = params.reward_coef
    raw = (c[0] * d_energy + c[1] * d_sprint - c[2] * jnp.sum(jnp.abs(d_trust))) / 100.0
    raw = raw + c[3] * quality + bonus
    return jnp.round(raw * 1e4) / 1e4
