"""Batched-environment plumbing shared by the learners (tabular Q, Q-network, PPO).

Every learner follows the same chunked shape so that training can be checkpointed and resumed
bit for bit:

    trainer = module.make_trainer(config, env_params)
    carry = trainer.init(key)                      # one seed
    carry, metrics = trainer.chunk(carry)          # ``updates_per_chunk`` updates
    actions = trainer.greedy(trainer.policy_params(carry), obs)   # obs (n, OBS_SIZE)

``init`` and ``chunk`` are pure, so ``jax.jit(jax.vmap(trainer.chunk))`` trains many seeds at
once, and :func:`scan_chunks` turns a trainer into one pure ``train(key)`` (a ``lax.scan`` over
the chunks) in the PureJaxRL style.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from wlf_jax.env import WorkWeek, observe
from wlf_jax.params import EnvParams
from wlf_jax.rollout import rollout

ENV = WorkWeek()


class Trainer(NamedTuple):
    """A learner as pure functions of one seed (see the module docstring).

    ``chunk`` returns ``(carry, metrics)`` where ``metrics`` is a dict of scalars, at least
    ``train_score`` (mean week score of the training weeks finished in the chunk) and
    ``greedy_score`` (sampled week score of the greedy policy at the end of the chunk).
    ``steps_per_chunk`` counts environment steps (decisions) of one seed per chunk.
    """

    init: Callable[[jax.Array], Any]
    chunk: Callable[[Any], tuple[Any, dict[str, jnp.ndarray]]]
    greedy: Callable[[Any, jnp.ndarray], jnp.ndarray]
    policy_params: Callable[[Any], Any]
    n_chunks: int
    steps_per_chunk: int


def scan_chunks(trainer: Trainer) -> Callable[[jax.Array], tuple[Any, dict[str, jnp.ndarray]]]:
    """A pure ``train(key) -> (final carry, metrics per chunk)``: jit it, vmap it over seeds."""

    def train(key):
        carry = trainer.init(key)
        return jax.lax.scan(lambda c, _: trainer.chunk(c), carry, None, length=trainer.n_chunks)

    return train


def reset_batch(key: jax.Array, n: int, params: EnvParams):
    """``n`` fresh weeks: ``(obs (n, OBS_SIZE), states)``."""
    return jax.vmap(ENV.reset, in_axes=(0, None))(jax.random.split(key, n), params)


def step_batch(key: jax.Array, states, actions: jnp.ndarray, params: EnvParams):
    """One decision in each of the ``n`` weeks, finished weeks replaced by fresh ones.

    Returns ``(obs, states, reward, done, score)``, each with a leading ``n`` axis; ``score`` is
    the finished week's score where ``done`` (0 elsewhere).
    """
    n = actions.shape[0]
    obs, states, reward, terminated, truncated, info = jax.vmap(ENV.step, in_axes=(0, 0, 0, None))(
        jax.random.split(key, n), states, actions, params
    )
    done = terminated | truncated
    return obs, states, reward, done, jnp.where(done, info["score"], 0.0)


def finished_mean(score: jnp.ndarray, done: jnp.ndarray) -> jnp.ndarray:
    """Mean week score over the finished weeks (``score``/``done`` of any shape); 0 if none."""
    return jnp.sum(jnp.where(done, score, 0.0)) / jnp.maximum(jnp.sum(done), 1)


def greedy_week_score(
    greedy: Callable, policy_params, params: EnvParams, key: jax.Array, n_weeks: int
) -> jnp.ndarray:
    """Mean score of ``n_weeks`` weeks played with the greedy policy (common random numbers
    when ``key`` is fixed).  Pure; used for learning curves inside the jitted chunk."""
    policy = lambda pp, obs, k: greedy(pp, obs[None])[0]  # noqa: E731
    return jnp.mean(rollout(policy, params, key, n_weeks, policy_params)["score"])


def greedy_policy(greedy: Callable) -> Callable:
    """``greedy(policy_params, obs batch)`` as a rollout policy ``(pp, obs, key) -> action``."""
    return lambda pp, obs, key: greedy(pp, obs[None])[0]


def linear_schedule(start: float, end: float, fraction: float, total: int) -> Callable:
    """``t -> value``: linear from ``start`` to ``end`` over ``fraction * total`` steps, then flat."""
    horizon = max(1.0, fraction * total)

    def value(t):
        return start + (end - start) * jnp.clip(t / horizon, 0.0, 1.0)

    return value


__all__ = [
    "ENV",
    "Trainer",
    "finished_mean",
    "greedy_policy",
    "greedy_week_score",
    "linear_schedule",
    "scan_chunks",
    "observe",
    "reset_batch",
    "step_batch",
]
