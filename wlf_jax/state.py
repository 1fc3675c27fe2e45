"""`EnvState` (the week so far) and `Scenario` (all the chance of a week, drawn at reset)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from .events import N_EVENTS
from .params import MAX_STEPS, EnvParams


@struct.dataclass
class Scenario:
    """Everything random about a week, fixed up front so a week can be replayed exactly.

    ``slot_event[t]`` is the event scheduled in slot ``t`` (-1 = empty slot); ``uniforms[e]`` is
    the uniform draw in [0, 1) that decides the outcome of event ``e`` (alternative outcome when
    it is below the chosen action's ``alt_prob``).
    """

    slot_event: jax.Array  # (T,) int32
    uniforms: jax.Array  # (E,) float32


@struct.dataclass
class EnvState:
    """The week so far.  Energy, sprint health and trust are integer hundredths."""

    energy: jax.Array  # () int32
    sprint: jax.Array  # () int32
    trust: jax.Array  # (S,) int32
    drift: jax.Array  # (2 + S,) int32: float64 offsets of energy, sprint, trust (see float64.py)
    status: jax.Array  # (K,) int8, see events.STATUS_VALUES
    pending: jax.Array  # (E,) bool: spawned events waiting for their slot
    actions: jax.Array  # (E,) int8: action chosen for each event, -1 = not handled
    slot: jax.Array  # () int32: slot of the current event (MAX_STEPS once the week is over)
    count: jax.Array  # () int32: decisions made so far
    day: jax.Array  # () int32: 0 = Monday
    quality_sum: jax.Array  # () float32: sum of message qualities of handled steps
    boundary: jax.Array  # () int32: boundary credit earned so far, hundredths (unclipped)
    energy_by_day: jax.Array  # (N_DAYS,) int8: energy at the end of each day (-1 = not reached)
    done: jax.Array  # () bool
    early_end: jax.Array  # () bool: the week ended because energy ran out
    slot_event: jax.Array  # (T,) int8: the scenario's schedule
    uniforms: jax.Array  # (E,) float32: the scenario's draws


def sample_scenario(key: jax.Array, params: EnvParams) -> Scenario:
    """Draw a week's chance: shuffle the ``slot_shuffle`` slots and draw one uniform per event."""
    k_order, k_unif = jax.random.split(key)
    shuffle = params.slot_shuffle
    idx = jnp.arange(MAX_STEPS)
    # Shuffled slots sort first (in random order), fixed slots after them in their own order.
    sort_key = jnp.where(shuffle, jax.random.uniform(k_order, (MAX_STEPS,)), 2.0 + idx)
    permuted = params.slot_event[jnp.argsort(sort_key)]
    rank = jnp.cumsum(shuffle) - 1  # position of each shuffled slot among the shuffled ones
    slot_event = jnp.where(shuffle, permuted[jnp.clip(rank, 0, MAX_STEPS - 1)], params.slot_event)
    uniforms = jax.random.uniform(k_unif, (N_EVENTS,))
    return Scenario(slot_event=slot_event.astype(jnp.int32), uniforms=uniforms)
