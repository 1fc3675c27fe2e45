"""Throughput of the JAX simulator vs the plain-Python implementation, measured in one run.

Random-policy weeks run as ``jit(vmap(scan))`` at several batch sizes; the rate counts real
decisions (steps of weeks that were not over), compile time is excluded and reported apart.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from wlf_jax import WorkWeek, presets
from wlf_jax.params import MAX_STEPS, EnvParams, to_python
from wlf_jax.reference import ReferenceWeek
from wlf_jax.rollout import replay_scenario
from wlf_jax.state import sample_scenario

_env = WorkWeek()


def make_random_weeks(params: EnvParams, n_weeks: int) -> Callable[[jax.Array], jnp.ndarray]:
    """A jitted ``f(key) -> decisions made`` playing ``n_weeks`` random-policy weeks."""

    def one_week(key):
        k_reset, k_act = jax.random.split(key)
        actions = jax.random.randint(k_act, (MAX_STEPS,), 0, 3)
        final, _ = replay_scenario(
            sample_scenario(k_reset, params), params, choose=lambda s, a: a, xs=actions
        )
        return final.count

    @jax.jit
    def run(key):
        return jnp.sum(jax.vmap(one_week)(jax.random.split(key, n_weeks)))

    return run


def state_bytes(params: EnvParams) -> int:
    """Bytes of one week's ``EnvState`` (all leaves)."""
    _, state = _env.reset(jax.random.key(0), params)
    return int(sum(np.asarray(x).nbytes for x in jax.tree_util.tree_leaves(state)))


def bench_jax(params: EnvParams, batch: int, repeats: int = 5) -> dict[str, float]:
    """Median decisions/s over ``repeats`` timed runs (after one compile run)."""
    run = make_random_weeks(params, batch)
    t0 = time.perf_counter()
    jax.block_until_ready(run(jax.random.key(0)))
    compile_s = time.perf_counter() - t0
    rates = []
    for i in range(repeats):
        t0 = time.perf_counter()
        steps = int(jax.block_until_ready(run(jax.random.key(i + 1))))
        rates.append(steps / (time.perf_counter() - t0))
    return {"batch": batch, "steps_per_s": float(np.median(rates)), "compile_s": compile_s}


def bench_python(params: EnvParams, seconds: float = 2.0, seed: int = 0) -> float:
    """Random-policy decisions/s of the plain-Python implementation (scenario drawing included)."""
    ref = ReferenceWeek(to_python(params))
    rules = ref.r
    rng = random.Random(seed)
    slots = list(rules["slot_event"])
    shuffled = [t for t, s in enumerate(rules["slot_shuffle"]) if s]
    steps = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        order = slots[:]
        moved = [order[t] for t in shuffled]
        rng.shuffle(moved)
        for t, e in zip(shuffled, moved):
            order[t] = e
        w = ref.reset(order, [rng.random() for _ in range(ref.n_events)])
        while not w.done:
            w, _ = ref.step(w, rng.randrange(3))
            steps += 1
    return steps / (time.perf_counter() - t0)


def run_bench(
    preset: str = "week_v2",
    batches: tuple[int, ...] = (1_000, 10_000, 100_000, 1_000_000),
    python_seconds: float = 2.0,
    progress: Callable[[str], Any] | None = None,
) -> dict[str, Any]:
    """The whole benchmark; returns the JSON-ready result."""
    params = presets.get(preset)
    say = progress or (lambda _msg: None)
    say("plain Python")
    py = bench_python(params, python_seconds)
    rows = []
    for b in batches:
        say(f"JAX batch {b:,}")
        rows.append(bench_jax(params, b))
    best = max(rows, key=lambda r: r["steps_per_s"])
    return {
        "preset": preset,
        "device": str(jax.devices()[0].platform),
        "device_count": jax.device_count(),
        "jax_steps_per_s": best["steps_per_s"],
        "best_batch": best["batch"],
        "python_steps_per_s": py,
        "ratio": best["steps_per_s"] / py,
        "state_bytes": state_bytes(params),
        "compile_s": best["compile_s"],
        "by_batch": [
            {
                "batch": r["batch"],
                "steps_per_s": r["steps_per_s"],
                "ratio": r["steps_per_s"] / py,
                "compile_s": r["compile_s"],
            }
            for r in rows
        ],
    }
