"""`WorkWeek`: one hard work week as a gymnax 1.0 environment, and :func:`make`.

    env, params = wlf_jax.make("week_v2")
    obs, state = env.reset(key, params)
    obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)

``step`` (gymnax's) auto-resets a finished week (so ``lax.scan`` never branches); ``step_env``
does not and is what week-level analysis uses.  ``reset_to_scenario`` replays an explicit
scenario.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from gymnax.environments import environment, spaces

from . import dynamics
from .events import (
    DAYS,
    EVENTS,
    N_ACTIONS,
    N_EVENTS,
    N_STAKEHOLDERS,
    STAKEHOLDERS,
    STATUS_NAMES,
    STATUS_SIZES,
    STATUS_VALUES,
)
from .params import COMPONENT_NAMES, MAX_STEPS, N_DAYS, EnvParams
from .reward import components, rubric_total
from .state import EnvState, Scenario, sample_scenario

OBS_LAYOUT: tuple[tuple[str, int], ...] = (
    ("energy", 1),
    ("sprint_health", 1),
    ("trust", N_STAKEHOLDERS),
    ("day_onehot", N_DAYS),
    ("event_onehot", N_EVENTS),
    *((f"{s}_onehot", n) for s, n in zip(STATUS_NAMES, STATUS_SIZES)),
    ("handled", N_EVENTS),
    ("pending", N_EVENTS),
    ("progress", 1),
    ("mean_quality", 1),
    ("boundary", 1),
)
"""Named blocks of the flat observation vector, in order. All in [0, 1] except ``boundary``,
the unclipped boundary credit (negative after leaked boundaries; see ``observation_space``)."""

OBS_SIZE: int = sum(n for _, n in OBS_LAYOUT)
_BOUNDARY = OBS_SIZE - 1  # index of the last block, ``boundary``
assert OBS_LAYOUT[-1] == ("boundary", 1)


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
        *(jax.nn.one_hot(state.status[k], n) for k, n in enumerate(STATUS_SIZES)),
        (state.actions >= 0).astype(jnp.float32),
        state.pending.astype(jnp.float32),
        state.count[None] / MAX_STEPS,
        (state.quality_sum / jnp.maximum(state.count, 1))[None],
        state.boundary[None] / 100.0,
    ]
    return jnp.concatenate([jnp.asarray(p, jnp.float32).reshape(-1) for p in parts])


@functools.lru_cache(maxsize=1)
def _default_params() -> EnvParams:
    from . import presets

    # Concrete arrays even when first asked for inside a trace (``step(..., params=None)``
    # under jit), so the cached rule book never holds a tracer.
    with jax.ensure_compile_time_eval():
        return presets.week_v2()


@jax.jit
def _rubric(state: EnvState, params: EnvParams):
    """(components, total) of one state, compiled once per rule-book structure (describe())."""
    return components(state, params), rubric_total(state, params)


class WorkWeek(environment.Environment[EnvState, EnvParams]):
    """One hard work week as a gymnax 1.0 environment.

    ``reset``/``step`` come from gymnax's base class: ``step`` returns ``(obs, state, reward,
    terminated, truncated, info)`` and replaces a finished week by a fresh one. A week always
    ends by itself within ``MAX_STEPS`` decisions, so ``truncated`` is always false.
    Additions to the gymnax contract: ``step_env`` takes a message ``quality``,
    ``reset_to_scenario`` replays an explicit week, ``describe`` gives a host-side view.
    """

    num_events: int = N_EVENTS
    max_steps: int = MAX_STEPS
    obs_size: int = OBS_SIZE

    @property
    def name(self) -> str:
        return "WorkWeek"

    @property
    def num_actions(self) -> int:
        return N_ACTIONS

    # Every WorkWeek is the same environment (the rule book is in the params), so jitted
    # methods with a static ``self`` compile once for all instances.
    def __hash__(self) -> int:
        return hash(type(self))

    def __eq__(self, other) -> bool:
        return type(self) is type(other)

    @property
    def default_params(self) -> EnvParams:
        """The default rule book, ``week_v2``."""
        return _default_params()

    def action_space(self, params: EnvParams | None = None) -> spaces.Discrete:
        """Three actions per event (their meaning depends on the event; see ``describe``)."""
        return spaces.Discrete(N_ACTIONS)

    def observation_space(self, params: EnvParams | None = None) -> spaces.Box:
        """The flat observation of :data:`OBS_LAYOUT` (host side: needs concrete params).

        Every entry lies in [0, 1] except ``boundary``, the unclipped boundary credit, whose
        bounds are the sums of the rule book's most negative and most positive credit per
        event (each event is handled at most once), widened by one float32 step.
        """
        params = self.default_params if params is None else params
        credit = np.asarray(params.boundary_credit, np.int64)
        lowest = np.minimum(credit.min(axis=1), 0).sum() / np.float32(100)
        highest = np.maximum(credit.max(axis=1), 0).sum() / np.float32(100)
        low, high = np.zeros(OBS_SIZE, np.float32), np.ones(OBS_SIZE, np.float32)
        low[_BOUNDARY] = np.nextafter(np.float32(lowest), np.float32(-np.inf))
        high[_BOUNDARY] = np.nextafter(np.float32(max(1.0, highest)), np.float32(np.inf))
        return spaces.Box(jnp.asarray(low), jnp.asarray(high), (OBS_SIZE,), jnp.float32)

    # -- reset -------------------------------------------------------------------------------
    def reset_env(self, key: jax.Array, params: EnvParams) -> tuple[jax.Array, EnvState]:
        """Draw a week's scenario from ``key``: ``(obs, state)`` on Monday morning."""
        return self.reset_to_scenario(sample_scenario(key, params), params)

    def reset_to_scenario(self, scenario: Scenario, params: EnvParams | None = None):
        """Start the week described by an explicit ``scenario`` (order and uniform draws)."""
        params = self.default_params if params is None else params
        state = dynamics.initial_state(scenario, params)
        return observe(state, params), state

    # -- step --------------------------------------------------------------------------------
    def step_env(self, key, state: EnvState, action, params: EnvParams, quality=-1.0):
        """One decision without auto-reset: ``(obs, state, reward, terminated, info)``.

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

    def is_terminated(self, state: EnvState, params: EnvParams) -> jax.Array:
        """The week is over: every decision made, or energy ran out."""
        return state.done

    def is_truncated(self, state: EnvState, params: EnvParams) -> jax.Array:
        """Never: a week ends by itself within ``MAX_STEPS`` decisions."""
        return jnp.zeros_like(state.done)

    def get_obs(self, state: EnvState, params: EnvParams | None = None, key=None) -> jax.Array:
        """gymnax's observation hook (the base class's ``observe(key, state, action, params)``
        calls it); the same as the module-level :func:`observe`."""
        return observe(state, params)

    # -- host-side view ----------------------------------------------------------------------
    def describe(
        self, state: EnvState, params: EnvParams | None = None, rubric=None
    ) -> dict[str, Any]:
        """Host-side, human-readable view of ``state`` (not jittable).

        ``state`` may be on the device or a host (numpy) copy; ``rubric``, when given, is the
        precomputed ``(components (5,), score)`` of the state (e.g. ``info`` of the step that
        produced it), which spares a device call.

        Returns a plain dict: day, the current event (id, title, sender, channel, body and the
        three actions with meanings), status (energy, sprint health, trust, flags), pending
        spawned events, history of decisions, the rubric so far and whether the week is over.
        """
        params = self.default_params if params is None else params
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
                "actions": [
                    {"index": i, "name": a.name, "meaning": a.meaning}
                    for i, a in enumerate(spec.actions)
                ],
            }
        history = [
            {
                "event": EVENTS[int(ev)].id,
                "action": EVENTS[int(ev)].actions[int(s.actions[int(ev)])].name,
            }
            for ev in s.slot_event
            if ev >= 0 and s.actions[int(ev)] >= 0
        ]
        comps, score = (
            np.asarray(x) for x in (rubric if rubric is not None else _rubric(state, params))
        )
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


def make(name: str = "week_v2") -> tuple[WorkWeek, EnvParams]:
    """``(env, params)`` of the rule book called ``name``, like ``gymnax.make``.

    ``name`` is a preset (``"week_v2"``, ``"seed_v1"``); an unknown name raises ``KeyError``
    listing the known ones.
    """
    from . import presets

    return WorkWeek(), presets.get(name)
