"""Work-Life Firewall simulator: one hard work week as pure JAX functions.

import wlf_jax
env, params = wlf_jax.make("week_v2")          # a gymnax 1.0 environment
obs, state = env.reset(jax.random.key(0), params)
obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)
"""

from . import presets
from .env import OBS_LAYOUT, OBS_SIZE, WorkWeek, make, observe
from .events import ACTION_NAMES, EVENT_IDS, EVENTS, STAKEHOLDERS
from .params import COMPONENT_NAMES, MAX_STEPS, EnvParams, InvalidParamsError, make_params
from .state import EnvState, Scenario, sample_scenario

__all__ = [
    "ACTION_NAMES",
    "COMPONENT_NAMES",
    "EVENTS",
    "EVENT_IDS",
    "MAX_STEPS",
    "OBS_LAYOUT",
    "OBS_SIZE",
    "STAKEHOLDERS",
    "EnvParams",
    "EnvState",
    "InvalidParamsError",
    "Scenario",
    "WorkWeek",
    "make",
    "make_params",
    "observe",
    "presets",
    "sample_scenario",
]
