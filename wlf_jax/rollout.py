"""Rollout helpers: the one scenario-replay loop (``lax.scan`` over a week), ``vmap`` over weeks.

:func:`replay_scenario` is the loop every week-level caller uses (rollouts, the exact map and
policy scorers, golden replays, the benchmark). A policy is a pure function
``policy(policy_params, obs, key) -> action`` (int32 scalar).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from .env import WorkWeek, observe
from .events import N_ACTIONS
from .params import COMPONENT_NAMES, MAX_STEPS, EnvParams
from .reward import components, rubric_total
from .state import EnvState, Scenario, sample_scenario

Policy = Callable[[Any, jnp.ndarray, jax.Array], jnp.ndarray]

_env = WorkWeek()


def random_policy(policy_params, obs, key) -> jnp.ndarray:
    """Uniform over the three actions."""
    del policy_params, obs
    return jax.random.randint(key, (), 0, N_ACTIONS)


def replay_scenario(
    scenario: Scenario,
    params: EnvParams,
    choose: Callable,
    xs: Any = None,
    record: Callable | None = None,
    length: int = MAX_STEPS,
):
    """Start the week of ``scenario`` and make ``length`` decisions with ``lax.scan``.

    ``choose(state, x) -> action`` or ``(action, quality)`` picks each decision from the state
    and the step's slice ``x`` of ``xs`` (keys, scripted actions, or ``None``). A finished week
    absorbs the remaining steps (reward 0, state unchanged). ``record(state, next_state,
    reward, info)``, when given, returns what to keep of each step.

    Returns ``(final_state, records)``: ``records`` stacks ``record``'s outputs over the steps
    (``None`` without ``record``).
    """
    _, state = _env.reset_to_scenario(scenario, params)

    def body(s: EnvState, x):
        choice = choose(s, x)
        action, quality = choice if isinstance(choice, tuple) else (choice, -1.0)
        _, nxt, reward, _, info = _env.step_env(None, s, action, params, quality)
        return nxt, (None if record is None else record(s, nxt, reward, info))

    return jax.lax.scan(body, state, xs, length=None if xs is not None else length)


def play_week(
    policy: Policy,
    policy_params,
    params: EnvParams,
    key: jax.Array,
    scenario: Scenario | None = None,
) -> dict[str, jnp.ndarray]:
    """Play one week to the end (``MAX_STEPS`` scan steps; finished weeks absorb).

    Returns a dict: ``return`` (sum of rewards), ``score`` (final rubric), ``components`` (5,),
    ``actions`` (E,) action per event (-1 = not presented), ``energy_by_day`` (5,) in [0, 1],
    ``early_end``, ``decisions``, ``rewards`` (T,), ``events`` (T,) (-1 after the end),
    ``final_state``.
    """
    k_reset, k_steps = jax.random.split(key)
    if scenario is None:
        scenario = sample_scenario(k_reset, params)
    final, (rewards, events) = replay_scenario(
        scenario,
        params,
        choose=lambda s, k: policy(policy_params, observe(s, params), k),
        xs=jax.random.split(k_steps, MAX_STEPS),
        record=lambda s, nxt, reward, info: (reward, jnp.where(s.done, -1, info["event"])),
    )
    return {
        **week_summary(final, jnp.sum(rewards), params),
        "rewards": rewards,
        "events": events,
        "final_state": final,
    }


def week_summary(final: EnvState, week_return, params: EnvParams) -> dict[str, jnp.ndarray]:
    """What a played week is summarised by (:func:`summarize` averages these over weeks):
    ``return``, ``score``, ``components`` (5,), ``actions`` (E,), ``energy_by_day`` (5,) in
    [0, 1], ``early_end``, ``decisions``."""
    return {
        "return": week_return,
        "score": rubric_total(final, params),
        "components": components(final, params),
        "actions": final.actions.astype(jnp.int32),
        "energy_by_day": final.energy_by_day.astype(jnp.float32) / 100.0,
        "early_end": final.early_end,
        "decisions": final.count,
    }


def rollout(
    policy: Policy, params: EnvParams, key: jax.Array, n_weeks: int, policy_params: Any = None
) -> dict[str, jnp.ndarray]:
    """Play ``n_weeks`` independent weeks (``vmap`` over weeks); every output gains a leading
    ``n_weeks`` axis.  Jit the caller (or use :func:`make_rollout`) for speed."""
    keys = jax.random.split(key, n_weeks)
    return jax.vmap(lambda k: play_week(policy, policy_params, params, k))(keys)


def make_rollout(policy: Policy, n_weeks: int):
    """A jitted ``f(policy_params, params, key) -> summary`` playing ``n_weeks`` weeks."""

    @jax.jit
    def run(policy_params, params, key):
        return rollout(policy, params, key, n_weeks, policy_params)

    return run


def summarize(out: dict[str, jnp.ndarray]) -> dict[str, Any]:
    """Means and 95% confidence half-widths of a batched rollout, as plain Python numbers."""
    import numpy as np

    n = out["score"].shape[0]
    score = np.asarray(out["score"], np.float64)
    ret = np.asarray(out["return"], np.float64)
    ci = lambda x: float(1.96 * x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else 0.0  # noqa: E731
    comps = np.asarray(out["components"], np.float64).mean(0)
    return {
        "weeks": int(n),
        "mean_score": float(score.mean()),
        "ci95_score": ci(score),
        "mean_return": float(ret.mean()),
        "ci95_return": ci(ret),
        "components": {k: float(v) for k, v in zip(COMPONENT_NAMES, comps)},
        "energy_by_day": [float(v) for v in np.asarray(out["energy_by_day"], np.float64).mean(0)],
        "early_end_rate": float(np.asarray(out["early_end"]).mean()),
        "mean_decisions": float(np.asarray(out["decisions"]).mean()),
    }
