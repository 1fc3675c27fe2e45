"""`WorkWeek`: the environment with gymnax conventions.

    env = WorkWeek()
    params = presets.week_v2()
    obs, state = env.reset(key, params)
    obs, state, reward, done, info = env.step(key, state, action, params)

``step`` auto-resets a finished week (so ``lax.scan`` never branches); ``step_env`` does not
and is what week-level analysis uses.  ``reset_to_scenario`` replays an explicit scenario.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import dynamics
from .events import (
    DAYS, EVENTS, N_ACTIONS, N_EVENTS, N_STAKEHOLDERS, STAKEHOLDERS, STATUS_NAMES, STATUS_VALUES,
)
from .params import COMPONENT_NAMES, MAX_STEPS, N_DAYS, EnvParams
from .reward import components, rubric_total
from .state import EnvState, Scenario, sample_scenario

_STATUS_SIZES = tuple(len(STATUS_VALUES[s]) for s in STATUS_NAMES)

OBS_LAYOUT: tuple[tuple[str, int], ...] = (
    ("energy", 1),
    ("sprint_health", 1),
    ("trust", N_STAKEHOLDERS),
    ("day_onehot", N_DAYS),
    ("event_onehot", N_EVENTS),
    *((f"{s}_onehot", n) for s, n in zip(STATUS_NAMES, _STATUS_SIZES)),
    ("handled", N_EVENTS),
    ("pending", N_EVENTS),
    ("progress", 1),
    ("mean_quality", 1),
    ("boundary", 1),
)
"""Named blocks of the flat observation vector, in order (energy etc. in [0, 1])."""

OBS_SIZE: int = sum(n for _, n in OBS_LAYOUT)


def observe(state: EnvState, params: EnvParams) -> jnp.ndarray:
    """Flat float32 observation of ``state``: see :data:`OBS_LAYOUT`. Shape (OBS_SIZE,)."""
    del params
    event = dynamics.current_event(state)
    parts = [
        state.energy[None] / 100.0,
        state.sprint[None] / 100.0,
        state.trust / 100.0,
        jax.nn.one_hot(state.day, N_DAYS),
        jax.nn.one_hot(jnp.where(state.done, -1, event), N_EVENTS),
        *(jax.nn.one_hot(state.status[k], n) for k, n in enumerate(_STATUS_SIZES)),
        (state.actions >= 0).astype(jnp.float32),
        state.pending.astype(jnp.float32),
        state.count[None] / MAX_STEPS,
        (state.quality_sum / jnp.maximum(state.count, 1))[None],
        state.boundary[None] / 100.0,
    ]
    return jnp.concatenate([jnp.asarray(p, jnp.float32).reshape(-1) for p in parts])


@jax.jit
def _rubric(state: EnvState, params: EnvParams):
    """(components, total) of one state, compiled once per rule-book structure (describe())."""
    return components(state, params), rubric_total(state, params)


class WorkWeek:
    """One hard work week.  Static sizes are class attributes; the rule book is ``EnvParams``."""

    num_actions: int = N_ACTIONS
    num_events: int = N_EVENTS
    max_steps: int = MAX_STEPS
    obs_size: int = OBS_SIZE

    # -- reset -------------------------------------------------------------------------------
    def reset(self, key: jax.Array, params: EnvParams) -> tuple[jnp.ndarray, EnvState]:
        """Draw a week's scenario from ``key`` and return ``(obs, state)`` on Monday morning."""
        return self.reset_to_scenario(sample_scenario(key, params), params)

    def reset_to_scenario(self, scenario: Scenario, params: EnvParams):
        """Start the week described by an explicit ``scenario`` (order and uniform draws)."""
        state = dynamics.initial_state(scenario, params)
        return observe(state, params), state

    # -- step --------------------------------------------------------------------------------
    def step_env(self, key, state: EnvState, action, params: EnvParams, quality=-1.0):
        """One decision without auto-reset. Returns ``(obs, state, reward, done, info)``.

        ``quality`` < 0 uses the action's template quality.  An out-of-range ``action`` is
        clipped to 0..2 and flagged in ``info["invalid_action"]``.  ``key`` is unused (all
        chance is in the scenario) and kept for the gymnax signature.
        """
        del key
        nxt, reward, info = dynamics.transition(state, action, quality, params)
        info = dict(info)
        info["components"] = components(nxt, params)
        info["score"] = rubric_total(nxt, params)
        info["early_end"] = nxt.early_end
        info["energy_by_day"] = nxt.energy_by_day
        return observe(nxt, params), nxt, reward, nxt.done, info

    def step(self, key, state: EnvState, action, params: EnvParams, quality=-1.0):
        """gymnax-style step: like ``step_env``, but a finished week is replaced by a fresh one
        drawn from ``key`` (the returned ``done``, reward and info are the finished step's)."""
        obs, nxt, reward, done, info = self.step_env(key, state, action, params, quality)
        obs_re, state_re = self.reset(key, params)
        nxt = jax.tree_util.tree_map(lambda r, s: jnp.where(done, r, s), state_re, nxt)
        obs = jnp.where(done, obs_re, obs)
        return obs, nxt, reward, done, info

    # -- helpers -----------------------------------------------------------------------------
    def observe(self, state: EnvState, params: EnvParams) -> jnp.ndarray:
        return observe(state, params)

    def describe(self, state: EnvState, params: EnvParams, rubric=None) -> dict[str, Any]:
        """Host-side, human-readable view of ``state`` (not jittable).

        ``state`` may be on the device or a host (numpy) copy; ``rubric``, when given, is the
        precomputed ``(components (5,), score)`` of the state (e.g. ``info`` of the step that
        produced it), which spares a device call.

        Returns a plain dict: day, the current event (id, title, sender, channel, body and the
        three actions with meanings), status (energy, sprint health, trust, flags), pending
        spawned events, history of decisions, the rubric so far and whether the week is over.
        """
        s = jax.tree_util.tree_map(np.asarray, state)
        done = bool(s.done)
        ev_index = int(s.slot_event[min(int(s.slot), MAX_STEPS - 1)]) if not done else -1
        event = None
        if ev_index >= 0:
            spec = EVENTS[ev_index]
            event = {
                "index": ev_index,
                "id": spec.id,
                "title": spec.title,
                "sender": spec.sender,
                "channel": spec.channel,
                "stakeholder": spec.stakeholder,
                "body": spec.body,
                "actions": [{"index": i, "name": a.name, "meaning": a.meaning}
                            for i, a in enumerate(spec.actions)],
            }
        history = [
            {"event": EVENTS[int(ev)].id, "action": EVENTS[int(ev)].actions[int(s.actions[int(ev)])].name}
            for ev in s.slot_event
            if ev >= 0 and s.actions[int(ev)] >= 0
        ]
        comps, score = (np.asarray(x) for x in (rubric if rubric is not None else _rubric(state, params)))
        return {
            "preset": params.name,
            "day": DAYS[int(s.day)],
            "day_index": int(s.day),
            "decisions": int(s.count),
            "event": event,
            "status": {
                "energy": int(s.energy) / 100,
                "sprint_health": int(s.sprint) / 100,
                "trust": {n: int(t) / 100 for n, t in zip(STAKEHOLDERS, s.trust)},
                **{n: STATUS_VALUES[n][int(v)] for n, v in zip(STATUS_NAMES, s.status)},
            },
            "pending": [EVENTS[i].id for i in range(N_EVENTS) if s.pending[i]],
            "history": history,
            "rubric": {n: float(c) for n, c in zip(COMPONENT_NAMES, comps)},
            "score": float(score),
            "done": done,
            "early_end": bool(s.early_end),
        }
