"""The transition of a week: table look-ups, spawns, days, overnight recovery, reward.

Pure functions of (state, action, quality, params); no Python control flow on traced values.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import float64
from .events import N_ACTIONS, N_EVENTS, SLEEP_DEBT
from .params import MAX_STEPS, N_DAYS, EnvParams
from .reward import rubric_total, seed_step_reward, terminal_bonus
from .state import EnvState, Scenario


def spawnable(params: EnvParams) -> jnp.ndarray:
    """(E,) bool: events that only happen when spawned (the others are always scheduled)."""
    return jnp.any(params.spawn[..., None] == jnp.arange(N_EVENTS), axis=(0, 1, 2))


def active_slots(slot_event: jnp.ndarray, pending: jnp.ndarray, params: EnvParams) -> jnp.ndarray:
    """(T,) bool: slots whose event will be presented (scheduled and not waiting for a spawn)."""
    ev = jnp.clip(slot_event, 0, N_EVENTS - 1)
    return (slot_event >= 0) & (~spawnable(params)[ev] | pending[ev])


def initial_state(scenario: Scenario, params: EnvParams) -> EnvState:
    """The Monday-morning state of the week described by ``scenario``."""
    pending = jnp.zeros((N_EVENTS,), bool)
    active = active_slots(scenario.slot_event, pending, params)
    return EnvState(
        energy=params.start_energy.astype(jnp.int32),
        sprint=params.start_sprint.astype(jnp.int32),
        trust=params.start_trust.astype(jnp.int32),
        drift=jnp.where(
            params.float64_arithmetic,
            float64.literal_offset(
                jnp.concatenate(
                    [params.start_energy[None], params.start_sprint[None], params.start_trust]
                ).astype(jnp.int32)
            ),
            0,
        ).astype(jnp.int32),
        status=params.start_status.astype(jnp.int8),
        pending=pending,
        actions=jnp.full((N_EVENTS,), -1, jnp.int8),
        slot=jnp.where(jnp.any(active), jnp.argmax(active), MAX_STEPS).astype(jnp.int32),
        count=jnp.int32(0),
        day=jnp.int32(0),
        quality_sum=jnp.float32(0.0),
        boundary=jnp.int32(0),
        energy_by_day=jnp.full((N_DAYS,), -1, jnp.int8),
        done=~jnp.any(active),
        early_end=jnp.bool_(False),
        slot_event=scenario.slot_event.astype(jnp.int8),
        uniforms=scenario.uniforms.astype(jnp.float32),
    )


_INT_FIELDS = (
    "energy_delta",
    "sprint_delta",
    "trust_delta",
    "alt_energy_delta",
    "alt_sprint_delta",
    "alt_trust_delta",
    "status_set",
    "spawn",
    "boundary_credit",
)


def choice_row(params: EnvParams, e, a) -> dict[str, jnp.ndarray]:
    """Every table entry of (event ``e``, action ``a``), read with one gather.

    The integer tables are packed side by side into one (E * A, columns) array, so a batched
    step does a single gather instead of one per table (the packing is constant-folded under
    ``jit`` when ``params`` are constants, and cheap otherwise).
    """
    flat = [
        jnp.reshape(getattr(params, f), (N_EVENTS * N_ACTIONS, -1)).astype(jnp.int32)
        for f in _INT_FIELDS
    ]
    packed = jnp.concatenate(flat, axis=1)
    floats = jnp.stack([params.alt_prob.reshape(-1), params.template_quality.reshape(-1)], axis=1)
    idx = e * N_ACTIONS + a
    row, frow = packed[idx], floats[idx]
    out, start = {}, 0
    for f, block in zip(_INT_FIELDS, flat):
        out[f] = row[start : start + block.shape[1]]
        start += block.shape[1]
    out["alt_prob"], out["template_quality"] = frow[0], frow[1]
    return out


def current_event(state: EnvState) -> jnp.ndarray:
    """Index of the event waiting for a decision (meaningless once ``done``)."""
    return state.slot_event[jnp.clip(state.slot, 0, MAX_STEPS - 1)].astype(jnp.int32)


def transition(state: EnvState, action, quality, params: EnvParams):
    """Apply one decision.

    Args:
      state: the week so far.
      action: int, index of the current event's action.  Out-of-range indices are clipped to
        0..2 and reported as ``info["invalid_action"]``.
      quality: message quality in [0, 1]; a negative value means "use the preset's template
        quality for this action".  Values above 1 are clipped.
      params: the rule book.

    Returns ``(next_state, reward, info)``.  Once the week is over the transition is a no-op
    with zero reward.
    """
    action = jnp.asarray(action, jnp.int32)
    invalid = (action < 0) | (action >= N_ACTIONS)
    a = jnp.clip(action, 0, N_ACTIONS - 1)
    e = current_event(state)
    quality = jnp.asarray(quality, jnp.float32)
    row = choice_row(params, e, a)
    q = jnp.where(quality < 0, row["template_quality"], jnp.clip(quality, 0.0, 1.0))

    events = jnp.arange(N_EVENTS)
    alt = jnp.sum(jnp.where(events == e, state.uniforms, 0.0)) < row["alt_prob"]
    d_energy = row["energy_delta"][0] + jnp.where(alt, row["alt_energy_delta"][0], 0)
    d_sprint = row["sprint_delta"][0] + jnp.where(alt, row["alt_sprint_delta"][0], 0)
    d_trust = row["trust_delta"] + jnp.where(alt, row["alt_trust_delta"], 0)

    # energy, sprint and the five trusts move together: integer hundredths, or the original's
    # float64 values when the rule book asks for them (see float64.py)
    old = jnp.concatenate([state.energy[None], state.sprint[None], state.trust])
    delta = jnp.concatenate([d_energy[None], d_sprint[None], d_trust]).astype(jnp.int32)
    f_values, f_drift = float64.add(old, state.drift, delta)
    exact = params.float64_arithmetic
    values = jnp.where(exact, f_values, jnp.clip(old + delta, 0, 100))
    drift = jnp.where(exact, f_drift, 0)
    energy, sprint, trust = values[0], values[1], values[2:]
    n_status = state.status.shape[0]
    new_status = jnp.where(alt, row["status_set"][n_status:], row["status_set"][:n_status])
    status = jnp.where(new_status >= 0, new_status, state.status).astype(jnp.int8)
    spawned = jnp.where(alt, row["spawn"][1], row["spawn"][0])
    pending = (state.pending | (events == spawned)) & (events != e)
    actions = jnp.where(events == e, a, state.actions).astype(jnp.int8)
    count = state.count + 1

    early_end = float64.at_most(energy, drift[0], params.early_end_energy, exact)
    later = (jnp.arange(MAX_STEPS) > state.slot) & active_slots(state.slot_event, pending, params)
    finished = ~jnp.any(later)
    done = early_end | finished
    next_slot = jnp.where(done, MAX_STEPS, jnp.argmax(later)).astype(jnp.int32)

    # Days: count-based (seed_v1) or from the next slot's day; a finished week reaches Friday.
    slot_day = jnp.where(
        finished, N_DAYS - 1, params.slot_day[jnp.clip(next_slot, 0, MAX_STEPS - 1)]
    )
    slot_day = jnp.where(early_end, state.day, slot_day)
    day = jnp.where(params.day_by_count, params.count_day[jnp.clip(count, 0, MAX_STEPS)], slot_day)
    day = jnp.maximum(day, state.day).astype(jnp.int32)
    # Night by night from today to the new day: the end of each day records the energy before
    # that night's recovery; sleep debt eats into the first night; an early end has no nights
    # and leaves the rest of the week at the final energy; a finished week reaches Friday.
    # (Recovery is a week_v2 mechanic in integer hundredths; seed_v1 has none.)
    energy_by_day = state.energy_by_day
    sleep_debt = status[SLEEP_DEBT] == 1
    for d in range(N_DAYS):
        closes = (d >= state.day) & ((d < day) | done)
        energy_by_day = energy_by_day.at[d].set(
            jnp.where(closes, energy, energy_by_day[d]).astype(jnp.int8)
        )
        if d < N_DAYS - 1:
            night = (d >= state.day) & (d < day) & ~early_end
            gain = params.recovery[d] - jnp.where(
                sleep_debt & (d == state.day), params.sleep_debt_penalty, 0
            )
            energy = jnp.where(night, jnp.clip(energy + gain, 0, 100), energy)
    slept = (day > state.day) & ~early_end
    status = status.at[SLEEP_DEBT].set(jnp.where(slept, 0, status[SLEEP_DEBT]).astype(jnp.int8))

    nxt = state.replace(
        energy=energy.astype(jnp.int32),
        sprint=sprint.astype(jnp.int32),
        trust=trust.astype(jnp.int32),
        drift=drift.astype(jnp.int32),
        status=status,
        pending=pending,
        actions=actions,
        slot=next_slot,
        count=count.astype(jnp.int32),
        day=day,
        quality_sum=state.quality_sum + q,
        boundary=(state.boundary + row["boundary_credit"][0]).astype(jnp.int32),
        energy_by_day=energy_by_day,
        done=done,
        early_end=early_end,
    )
    bonus = jnp.where(done, terminal_bonus(nxt, params), 0.0)
    seed_reward = seed_step_reward(d_energy, d_sprint, d_trust, q, bonus, params)
    shaped = rubric_total(nxt, params) - rubric_total(state, params)
    reward = jnp.where(params.shaped_reward, shaped, seed_reward).astype(jnp.float32)

    # A finished week absorbs: the state stays, the reward is zero.
    nxt = jax.tree_util.tree_map(lambda old, new: jnp.where(state.done, old, new), state, nxt)
    reward = jnp.where(state.done, 0.0, reward)
    info = {
        "event": e,
        "action": a,
        "invalid_action": invalid & ~state.done,
        "alt_outcome": alt & ~state.done,
        "spawned": jnp.where(state.done, -1, spawned),  # event this step spawned, -1 = none
        "quality": jnp.where(state.done, 0.0, q),
    }
    return nxt, reward, info
