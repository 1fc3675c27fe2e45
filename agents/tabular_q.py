"""Tabular Q-learning over many parallel weeks, the whole training loop under ``jit``.

Discretisation (a row of the table per observation; see :func:`discretise`):

* ``event`` — the current event (13 catalogue events),
* ``energy bucket`` — energy in hundredths // ``energy_bin`` (default 5: 21 buckets, fine
  enough to see the rubric's 30 / 50 / 70 thresholds and the early-end line coming),
* ``sprint bucket`` — sprint health in hundredths // ``sprint_bin`` (default 10: 11 buckets;
  the technical component's threshold is 70),
* ``status`` — the joint value of the five status flags (staging 2 x leave 3 x appraisal 3 x
  on-call 2 x sleep debt 2 = 72 combinations), read from their one-hot blocks.

Trust, the day, the events already handled and the running message quality are left out: the
schedule and the status flags carry most of what matters for the decision, and a smaller table
is learnt faster.  13 x 21 x 11 x 72 = 216,216 rows of 3 action values (2.6 MB).

Learning: every update steps ``num_envs`` weeks with an epsilon-greedy policy and applies the
one-step undiscounted (weeks are at most 14 decisions) Q-learning target
``r + (1 - done) max_a Q(s', a)``.  Duplicated (row, action) pairs inside one batch are averaged,
and the step size of a table entry is ``max(c / n, alpha_min)`` for ``c`` samples this update
and ``n`` samples so far (the sample mean early on, a constant step later, because bootstrapped
targets keep moving).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import struct

from wlf_jax.env import OBS_LAYOUT, _STATUS_SIZES
from wlf_jax.events import N_ACTIONS, N_EVENTS, STATUS_NAMES
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
_STATUS_TOTAL = sum(_STATUS_SIZES)
N_STATUS_COMBOS = math.prod(_STATUS_SIZES)


@dataclasses.dataclass(frozen=True)
class Config:
    """Hyper-parameters of tabular Q-learning (``budget_steps`` counts decisions per seed)."""

    budget_steps: int = 40_000_000
    num_envs: int = 4096
    n_chunks: int = 10
    energy_bin: int = 5
    count_levels: int = 1
    sprint_bin: int = 10
    alpha_start: float = 0.3
    alpha_end: float = 0.02
    eps_start: float = 1.0
    eps_end: float = 0.02
    eps_fraction: float = 0.6

    @property
    def updates(self) -> int:
        return self.n_chunks * self.updates_per_chunk

    @property
    def updates_per_chunk(self) -> int:
        return max(1, math.ceil(self.budget_steps / (self.num_envs * self.n_chunks)))


def table_shape(config: Config) -> tuple[int, int]:
    """(rows, actions) of the Q-table for this discretisation."""
    return (N_EVENTS * config.count_levels * (100 // config.energy_bin + 1) * (100 // config.sprint_bin + 1)
            * N_STATUS_COMBOS, N_ACTIONS)


def discretise(obs: jnp.ndarray, energy_bin: int = 5, sprint_bin: int = 10, count_levels: int = 1) -> jnp.ndarray:
    """Row of the Q-table for each observation: obs (..., OBS_SIZE) -> int32 (...).

    Row = ((event * n_energy + energy bucket) * n_sprint + sprint bucket) * 72 + status combo.
    """
    n_energy, n_sprint = 100 // energy_bin + 1, 100 // sprint_bin + 1
    event = jnp.argmax(obs[..., _OFF["event_onehot"]:_OFF["event_onehot"] + N_EVENTS], axis=-1)
    energy = jnp.round(obs[..., _OFF["energy"]] * 100).astype(jnp.int32) // energy_bin
    sprint = jnp.round(obs[..., _OFF["sprint_health"]] * 100).astype(jnp.int32) // sprint_bin
    combo = jnp.zeros(obs.shape[:-1], jnp.int32)
    pos = _STATUS_START
    for size in _STATUS_SIZES:
        value = jnp.argmax(obs[..., pos:pos + size], axis=-1).astype(jnp.int32)
        combo = combo * size + value
        pos += size
    count = jnp.round(obs[..., _OFF["progress"]] * MAX_STEPS).astype(jnp.int32)
    event = event * count_levels + jnp.clip(count, 0, count_levels - 1)
    row = (event * n_energy + jnp.clip(energy, 0, n_energy - 1)) * n_sprint
    row = (row + jnp.clip(sprint, 0, n_sprint - 1)) * N_STATUS_COMBOS + combo
    return row.astype(jnp.int32)


@struct.dataclass
class Carry:
    """Training state of one seed."""

    q: jnp.ndarray  # (rows, 3) float32 action values
    visits: jnp.ndarray  # (rows * 3,) float32 samples per (row, action)
    env_state: object
    obs: jnp.ndarray  # (num_envs, OBS_SIZE)
    key: jnp.ndarray
    update: jnp.ndarray  # () int32 updates done


def greedy(q: jnp.ndarray, obs: jnp.ndarray, energy_bin: int = 5, sprint_bin: int = 10, count_levels: int = 1) -> jnp.ndarray:
    """Greedy actions of a Q-table: obs (n, OBS_SIZE) -> (n,) int32 (lowest index on ties)."""
    return jnp.argmax(q[discretise(obs, energy_bin, sprint_bin, count_levels)], axis=-1).astype(jnp.int32)


def batch_multiplicity(idx: jnp.ndarray) -> jnp.ndarray:
    """How many times each element of the 1-d int array ``idx`` occurs in it (same shape)."""
    s = jnp.sort(idx)
    return (jnp.searchsorted(s, idx, side="right") - jnp.searchsorted(s, idx, side="left")).astype(jnp.float32)


def q_update(q: jnp.ndarray, visits: jnp.ndarray, rows, actions, target, alpha_min: float):
    """One batched Q-learning step towards ``target`` for the (row, action) pairs given.

    Returns ``(q, visits)``.  Duplicates within the batch are averaged; the step size of an
    entry is ``max(c / n, alpha_min)`` (``c`` samples now, ``n`` samples in total).
    """
    flat = q.reshape(-1)
    idx = rows * N_ACTIONS + actions
    c = batch_multiplicity(idx)
    visits = visits.at[idx].add(1.0)
    n = visits[idx]  # read after the update only, so the table is updated in place
    step = jnp.maximum(c / n, alpha_min) / c
    flat = flat.at[idx].add(step * (target - flat[idx]))
    return flat.reshape(q.shape), visits


def make_trainer(config: Config, params: EnvParams) -> Trainer:
    """Pure per-seed ``init``/``chunk`` functions of tabular Q-learning (see ``vec_env``)."""
    rows_total, _ = table_shape(config)
    n = config.num_envs
    eb, sb, cl = config.energy_bin, config.sprint_bin, config.count_levels
    epsilon = linear_schedule(config.eps_start, config.eps_end, config.eps_fraction, config.updates)
    alpha_floor = linear_schedule(config.alpha_start, config.alpha_end, 1.0, config.updates)

    def init(key):
        k_env, k_run = jax.random.split(key)
        obs, states = reset_batch(k_env, n, params)
        return Carry(q=jnp.zeros((rows_total, N_ACTIONS), jnp.float32),
                     visits=jnp.zeros((rows_total * N_ACTIONS,), jnp.float32),
                     env_state=states, obs=obs, key=k_run, update=jnp.int32(0))

    def one_update(carry: Carry, _):
        key, k_explore, k_rand, k_step = jax.random.split(carry.key, 4)
        rows = discretise(carry.obs, eb, sb, cl)
        greedy_a = jnp.argmax(carry.q[rows], axis=-1)
        explore = jax.random.uniform(k_explore, (n,)) < epsilon(carry.update)
        action = jnp.where(explore, jax.random.randint(k_rand, (n,), 0, N_ACTIONS), greedy_a)
        obs, states, reward, done, score = step_batch(k_step, carry.env_state, action, params)
        bootstrap = jnp.max(carry.q[discretise(obs, eb, sb, cl)], axis=-1)
        target = reward + jnp.where(done, 0.0, bootstrap)
        q, visits = q_update(carry.q, carry.visits, rows, action, target, alpha_floor(carry.update))
        nxt = Carry(q=q, visits=visits, env_state=states, obs=obs, key=key, update=carry.update + 1)
        return nxt, (jnp.sum(score), jnp.sum(done))

    def chunk(carry: Carry):
        carry, (score_sum, finished) = jax.lax.scan(one_update, carry, None, length=config.updates_per_chunk)
        metrics = {
            "train_score": jnp.sum(score_sum) / jnp.maximum(jnp.sum(finished), 1),
            "epsilon": epsilon(carry.update),
        }
        return carry, metrics

    return Trainer(init=init, chunk=chunk, greedy=lambda q, o: greedy(q, o, eb, sb, cl),
                   policy_params=lambda c: c.q, n_chunks=config.n_chunks,
                   steps_per_chunk=config.updates_per_chunk * n)


__all__ = ["Carry", "Config", "NAME", "discretise", "greedy", "make_trainer", "q_update", "table_shape"]
