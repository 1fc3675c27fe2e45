"""Observations of host-side decision states, so trained networks can be evaluated exactly."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np

from agents.exact.host import HostPolicy
from wlf_jax.events import N_ACTIONS
from wlf_jax.params import EnvParams
from wlf_jax.reference import Week


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
