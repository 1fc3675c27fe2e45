"""Tabular Q-learning over many parallel weeks, the whole training loop under ``jit``.

Discretisation — one row of the table per observation (:func:`discretise`), built from five
parts of the observation:

* ``event`` — the current event (13 catalogue events);
* ``stage`` — decisions made so far, 0 .. ``count_levels - 1`` (the last level also holds every
  later count; default 7).  Without it, rows of ``seed_v1``'s shuffled week would mix early and
  late situations, and one-step targets through such rows are biased (measured: 0.92 of the
  optimum instead of 0.99);
* ``energy bucket`` — energy in hundredths // ``energy_bin`` (default 5: 21 buckets, fine
  enough to see the rubric's 30 / 50 / 70 thresholds and the early-end line coming);
* ``sprint bucket`` — sprint health in hundredths // ``sprint_bin`` (default 10: 11 buckets;
  the technical component's threshold is 70);
* ``status`` — the joint value of the five status flags (staging 2 x leave 3 x appraisal 3 x
  on-call 2 x sleep debt 2 = 72 combinations), read from their one-hot blocks.

Trust, the day, which events were handled, pending spawns and the running message quality are
left out.  Default table: 13 x 7 x 21 x 11 x 72 = 1,513,512 rows of 3 action values; only a few
percent of them are ever visited (checkpoints store the table sparsely).

Learning: every update steps ``num_envs`` weeks with an epsilon-greedy policy and applies the
one-step undiscounted (weeks are at most 14 decisions) Q-learning target
``r + (1 - done) max_a Q(s', a)``.  Duplicated (row, action) pairs inside one batch are averaged,
and the step size of a table entry is ``max(c / n, alpha_floor)`` for ``c`` samples this update
and ``n`` samples so far: the running sample mean while an entry is new, then a floor that
decays linearly from ``alpha_start`` to ``alpha_end`` (bootstrapped targets keep moving early,
and late averaging removes the noise of the week's chance).  Ties between action values
(unvisited rows above all) are broken by a fixed pseudo-random order (:func:`tie_break`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from wlf_jax.env import OBS_LAYOUT
from wlf_jax.events import N_ACTIONS, N_EVENTS, STATUS_NAMES, STATUS_SIZES
from wlf_jax.params import MAX_STEPS, EnvParams

from .vec_env import Trainer, linear_schedule, reset_batch, step_batch

NAME = "tabular_q"


def _offsets() -> dict[str, int]:
    out, pos = {}, 0
    for name, size in OBS_LAYOUT:
        out[name] = pos
        pos += size
    return out


_OFF = _offsets()
_STATUS_START = _OFF[f"{STATUS_NAMES[0]}_onehot"]
N_STATUS_COMBOS = math.prod(STATUS_SIZES)


@dataclasses.dataclass(frozen=True)
class Config:
    """Hyper-parameters of tabular Q-learning (``budget_steps`` counts decisions per seed)."""

    budget_steps: int = 2_000_000
    num_envs: int = 1024
    n_chunks: int = 10
    energy_bin: int = 5
    sprint_bin: int = 10
    count_levels: int = 7
    alpha_start: float = 0.3
    alpha_end: float = 0.02
    eps_start: float = 1.0
    eps_end: float = 0.02
    eps_fraction: float = 0.6

    @property
    def updates_per_chunk(self) -> int:
        return max(1, math.ceil(self.budget_steps / (self.num_envs * self.n_chunks)))

    @property
    def updates(self) -> int:
        return self.n_chunks * self.updates_per_chunk

    @property
    def discretisation(self) -> Discretisation:
        return Discretisation(self.energy_bin, self.sprint_bin, self.count_levels)


class Discretisation(NamedTuple):
    """Bucket sizes of :func:`discretise` (hundredths; ``count_levels`` stages)."""

    energy_bin: int = 5
    sprint_bin: int = 10
    count_levels: int = 7

    @property
    def sizes(self) -> tuple[int, int, int, int, int]:
        """Levels of (event, stage, energy, sprint, status)."""
        return (
            N_EVENTS,
            self.count_levels,
            100 // self.energy_bin + 1,
            100 // self.sprint_bin + 1,
            N_STATUS_COMBOS,
        )

    @property
    def rows(self) -> int:
        return math.prod(self.sizes)


def table_shape(config: Config) -> tuple[int, int]:
    """(rows, actions) of the Q-table for this configuration."""
    return (config.discretisation.rows, N_ACTIONS)


def discretise(obs: jnp.ndarray, disc: Discretisation = Discretisation()) -> jnp.ndarray:
    """Row of the Q-table for each observation: obs (..., OBS_SIZE) -> int32 (...).

    Mixed radix over (event, stage, energy bucket, sprint bucket, status combination), in that
    order of significance (see the module docstring).
    """
    _, n_stage, n_energy, n_sprint, _ = disc.sizes
    event = jnp.argmax(obs[..., _OFF["event_onehot"] : _OFF["event_onehot"] + N_EVENTS], axis=-1)
    stage = jnp.round(obs[..., _OFF["progress"]] * MAX_STEPS).astype(jnp.int32)
    energy = jnp.round(obs[..., _OFF["energy"]] * 100).astype(jnp.int32) // disc.energy_bin
    sprint = jnp.round(obs[..., _OFF["sprint_health"]] * 100).astype(jnp.int32) // disc.sprint_bin
    combo = jnp.zeros(obs.shape[:-1], jnp.int32)
    pos = _STATUS_START
    for size in STATUS_SIZES:
        combo = combo * size + jnp.argmax(obs[..., pos : pos + size], axis=-1).astype(jnp.int32)
        pos += size
    row = event * n_stage + jnp.clip(stage, 0, n_stage - 1)
    row = row * n_energy + jnp.clip(energy, 0, n_energy - 1)
    row = row * n_sprint + jnp.clip(sprint, 0, n_sprint - 1)
    return (row * N_STATUS_COMBOS + combo).astype(jnp.int32)


@struct.dataclass
class Carry:
    """Training state of one seed."""

    q: jnp.ndarray  # (rows, 3) float32 action values
    visits: jnp.ndarray  # (rows * 3,) float32 samples per (row, action)
    env_state: object
    obs: jnp.ndarray  # (num_envs, OBS_SIZE)
    key: jnp.ndarray
    update: jnp.ndarray  # () int32 updates done


def tie_break(rows: jnp.ndarray) -> jnp.ndarray:
    """A fixed pseudo-random offset in [0, 1e-6) per (row, action): (...,) -> (..., 3).

    Added to the action values before every argmax so that ties (above all the rows never
    visited, still at 0) pick a pseudo-random action instead of always action 0 — which would
    otherwise hand an untrained table the "obvious" map for free."""
    idx = (rows[..., None] * N_ACTIONS + jnp.arange(N_ACTIONS)).astype(jnp.uint32)
    h = idx * jnp.uint32(2654435761)
    h = (h ^ (h >> 15)) * jnp.uint32(2246822519)
    h = h ^ (h >> 13)
    return (h >> 8).astype(jnp.float32) * (1e-6 / (1 << 24))


def best_action(q: jnp.ndarray, rows: jnp.ndarray) -> jnp.ndarray:
    """argmax_a Q(row, a) with :func:`tie_break`: rows (...,) -> (...,) int32."""
    return jnp.argmax(q[rows] + tie_break(rows), axis=-1).astype(jnp.int32)


def greedy(
    q: jnp.ndarray, obs: jnp.ndarray, disc: Discretisation = Discretisation()
) -> jnp.ndarray:
    """Greedy actions of a Q-table: obs (n, OBS_SIZE) -> (n,) int32."""
    return best_action(q, discretise(obs, disc))


def batch_multiplicity(idx: jnp.ndarray) -> jnp.ndarray:
    """How many times each element of the 1-d int array ``idx`` occurs in it (same shape)."""
    s = jnp.sort(idx)
    return (jnp.searchsorted(s, idx, side="right") - jnp.searchsorted(s, idx, side="left")).astype(
        jnp.float32
    )


def q_update(q: jnp.ndarray, visits: jnp.ndarray, rows, actions, target, alpha_floor):
    """One batched Q-learning step towards ``target`` for the (row, action) pairs given.

    Returns ``(q, visits)``.  Duplicates within the batch are averaged; the step size of an
    entry is ``max(c / n, alpha_floor)`` (``c`` samples now, ``n`` samples in total).
    """
    flat = q.reshape(-1)
    idx = rows * N_ACTIONS + actions
    c = batch_multiplicity(idx)
    visits = visits.at[idx].add(1.0)
    n = visits[idx]  # read after the update only, so the table is updated in place
    step = jnp.maximum(c / n, alpha_floor) / c
    flat = flat.at[idx].add(step * (target - flat[idx]))
    return flat.reshape(q.shape), visits


def make_trainer(config: Config, params: EnvParams) -> Trainer:
    """Pure per-seed ``init``/``chunk`` functions of tabular Q-learning (see ``vec_env``)."""
    rows_total, _ = table_shape(config)
    n = config.num_envs
    disc = config.discretisation
    epsilon = linear_schedule(config.eps_start, config.eps_end, config.eps_fraction, config.updates)
    alpha_floor = linear_schedule(config.alpha_start, config.alpha_end, 1.0, config.updates)

    def init(key):
        k_env, k_run = jax.random.split(key)
        obs, states = reset_batch(k_env, n, params)
        return Carry(
            q=jnp.zeros((rows_total, N_ACTIONS), jnp.float32),
            visits=jnp.zeros((rows_total * N_ACTIONS,), jnp.float32),
            env_state=states,
            obs=obs,
            key=k_run,
            update=jnp.int32(0),
        )

    def one_update(carry: Carry, _):
        key, k_explore, k_rand, k_step = jax.random.split(carry.key, 4)
        rows = discretise(carry.obs, disc)
        greedy_a = best_action(carry.q, rows)
        explore = jax.random.uniform(k_explore, (n,)) < epsilon(carry.update)
        action = jnp.where(explore, jax.random.randint(k_rand, (n,), 0, N_ACTIONS), greedy_a)
        obs, states, reward, done, score = step_batch(k_step, carry.env_state, action, params)
        bootstrap = jnp.max(carry.q[discretise(obs, disc)], axis=-1)
        target = reward + jnp.where(done, 0.0, bootstrap)
        q, visits = q_update(carry.q, carry.visits, rows, action, target, alpha_floor(carry.update))
        nxt = Carry(q=q, visits=visits, env_state=states, obs=obs, key=key, update=carry.update + 1)
        return nxt, (jnp.sum(score), jnp.sum(done))

    def chunk(carry: Carry):
        carry, (score_sum, finished) = jax.lax.scan(
            one_update, carry, None, length=config.updates_per_chunk
        )
        metrics = {
            "train_score": jnp.sum(score_sum) / jnp.maximum(jnp.sum(finished), 1),
            "epsilon": epsilon(carry.update),
        }
        return carry, metrics

    return Trainer(
        init=init,
        chunk=chunk,
        greedy=lambda q, o: greedy(q, o, disc),
        policy_params=lambda c: c.q,
        n_chunks=config.n_chunks,
        steps_per_chunk=config.updates_per_chunk * n,
    )


__all__ = [
    "Carry",
    "Config",
    "Discretisation",
    "NAME",
    "best_action",
    "discretise",
    "greedy",
    "make_trainer",
    "q_update",
    "table_shape",
    "tie_break",
]
