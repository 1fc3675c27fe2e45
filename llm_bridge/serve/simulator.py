"""The served week's simulators: one jitted ``reset``/``step_env`` pair per rule book, compiled
once and shared by every session, and the host-side view of a state.

No OpenEnv here: :mod:`llm_bridge.serve.environment` wraps these in sessions.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Simulator:
    """A rule book with its compiled functions.

    ``start(seed uint32) -> (state, components (5,), score)``;
    ``advance(state, action int32, quality float32) -> (state, reward, done, info)``.
    """

    name: str
    params: Any
    start: Callable
    advance: Callable
    weights: tuple[float, ...]


def build_simulator(preset: str) -> Simulator:
    """Jit ``reset`` and ``step_env`` of ``preset`` and compile them (one call each)."""
    import jax
    import numpy as np

    from wlf_jax import WorkWeek, presets
    from wlf_jax.params import to_python
    from wlf_jax.reward import components, rubric_total

    params = presets.get(preset)
    env = WorkWeek()

    @jax.jit
    def start(seed):
        _, state = env.reset(jax.random.key(seed), params)
        return state, components(state, params), rubric_total(state, params)

    @jax.jit
    def advance(state, action, quality):
        _, nxt, reward, done, info = env.step_env(None, state, action, params, quality)
        return nxt, reward, done, info

    state, _, _ = start(np.uint32(0))
    jax.block_until_ready(advance(state, np.int32(0), np.float32(-1.0)))
    weights = tuple(float(w) for w in to_python(params)["rubric_weights"])
    return Simulator(preset, params, start, advance, weights)


_SIMULATORS: dict[str, Simulator] = {}
_SIM_LOCK = threading.Lock()


def known_presets() -> tuple[str, ...]:
    """Names of the rule books a reset may ask for."""
    from wlf_jax import presets

    return tuple(presets.PRESETS)


def get_simulator(preset: str) -> Simulator:
    """The compiled simulator of ``preset`` (built on first use, then shared)."""
    sim = _SIMULATORS.get(preset)
    if sim is None:
        with _SIM_LOCK:
            sim = _SIMULATORS.get(preset)
            if sim is None:
                sim = _SIMULATORS[preset] = build_simulator(preset)
    return sim


def warm_up(preset_names: tuple[str, ...] | None = None) -> None:
    """Compile every rule book and train the decoder now, so no request pays for it."""
    from llm_bridge.decode import get_decoder
    from llm_bridge.judge import get_judge

    for name in preset_names or known_presets():
        get_simulator(name)
    get_decoder("default").decode("E1_staging", "on it")
    get_judge("default")("E1_staging", "on it")


def describe_host(s, params, comps, score) -> dict[str, Any]:
    """``WorkWeek.describe`` of a host (numpy) copy of a state with its rubric already computed
    on the device (``comps`` shape (5,), ``score``), so no JAX dispatch happens per request."""
    from wlf_jax import WorkWeek

    return WorkWeek().describe(s, params, rubric=(comps, score))
