"""Valuing trained policies: greedy actions on numpy batches, exact values with the solver
(:class:`PolicyValuer`), scores on fresh sampled weeks, confidence intervals, the learning-curve
files, finished runs loaded back as policies, and the summary of a run."""

from __future__ import annotations

import csv
import json
import math
import os
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from wlf_jax import presets
from wlf_jax.env import OBS_SIZE
from wlf_jax.params import EnvParams

from .checkpoints import CHECKPOINT, atomic_write, read_checkpoint, restore_carry
from .config import algo_module, config_from_dict, seed_keys

EVAL_BATCH = 1024
EVAL_BATCH_LARGE = 32_768
"""Block size for large batches (every state of a compiled rule book): far fewer dispatches."""


def eval_block(n: int) -> int:
    """The block size greedy actions of ``n`` observations are computed in."""
    return EVAL_BATCH_LARGE if n >= EVAL_BATCH_LARGE else EVAL_BATCH


def make_act_batch(greedy: Callable, policy_params) -> Callable[[np.ndarray], np.ndarray]:
    """``act_batch(obs (n, OBS_SIZE)) -> actions (n,)`` of a greedy policy, on numpy arrays.

    ``greedy`` should be jitted; observations are padded to blocks of ``EVAL_BATCH`` (or
    ``EVAL_BATCH_LARGE`` when there are that many), so it compiles at most twice.  The
    parameters are put on the device once (a tabular Q run's snapshot is a 54 MB host array,
    which every block would otherwise copy again).
    """
    policy_params = jax.device_put(policy_params)

    def act(obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, np.float32).reshape(-1, OBS_SIZE)
        n = len(obs)
        size = eval_block(n)
        out = np.zeros(n, np.int64)
        for i in range(0, n, size):
            block = np.zeros((size, OBS_SIZE), np.float32)
            part = obs[i : i + size]
            block[: len(part)] = part
            out[i : i + len(part)] = np.asarray(greedy(policy_params, jnp.asarray(block)))[
                : len(part)
            ]
        return out

    return act


def seed_slice(tree, i: int):
    """Seed ``i`` of a seed-batched pytree."""
    return jax.tree_util.tree_map(lambda x: x[i], tree)


_VALUERS: dict[str, PolicyValuer] = {}
_BATCHED_GREEDY: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
"""``jit(vmap(greedy))`` over stacked policies, per greedy function (compiled once while that
function lives)."""


def policy_valuer(preset: str) -> PolicyValuer:
    """The :class:`PolicyValuer` of a preset, shared within the process (solved once)."""
    if preset not in _VALUERS:
        from agents.exact import solver_for

        _VALUERS[preset] = PolicyValuer(presets.get(preset), solver_for(preset), preset=preset)
    return _VALUERS[preset]


class PolicyValuer:
    """Exact values of greedy policies; the optimum is solved on first use.

    A fixed-order rule book (week_v2) is valued on its compiled tables
    (:mod:`agents.exact.tables`: every reachable state, value iteration on the device), in
    seconds; a random event order (seed_v1) with the host solver. ``tables=False`` forces the
    host solver."""

    def __init__(
        self, params: EnvParams, solver=None, tables: bool | None = None, preset: str | None = None
    ):
        from wlf_jax.compiled import fixed_order

        self.params = params
        self.preset = preset
        """When ``params`` is this preset's rule book: its tables come from the process-wide
        :func:`~wlf_jax.compiled.compiled_for` (shared with the baselines)."""
        self._solver = solver
        self.tables = fixed_order(params) if tables is None else tables
        self._rules = None
        self._optimal = None
        self._obs_blocks = None

    @property
    def solver(self):
        """The host :class:`~agents.exact.ExactSolver` (built on first use)."""
        if self._solver is None:
            from agents.exact import ExactSolver

            self._solver = ExactSolver(self.params)
        return self._solver

    @property
    def rules(self):
        """The compiled rule book (compiled, or read from its cache, on first use)."""
        if self._rules is None:
            from wlf_jax.compiled import compiled_for, load_or_compile

            self._rules = compiled_for(self.preset) if self.preset else load_or_compile(self.params)
        return self._rules

    def evaluate(self, act_batch: Callable[[np.ndarray], np.ndarray]):
        """The exact :class:`~agents.exact.Evaluation` of a greedy policy."""
        if self.tables:
            from agents.exact import tables

            acts = np.asarray(act_batch(np.asarray(self.rules.obs)), np.int32)
            return tables.evaluate(self.rules, jnp.asarray(acts))
        from agents.exact import obs_policy

        return self.solver.evaluate(obs_policy(act_batch, self.params))

    def exact_scores(self, greedy: Callable, policy_params, n_policies: int) -> list[float]:
        """Exact scores of the ``n_policies`` greedy policies stacked on the leading axis of
        ``policy_params`` (a run's seeds).  On compiled tables all are valued in one pass (the
        greedy actions of every state for every policy, then :func:`agents.exact.tables.
        exact_scores`); with the host solver one by one.  Equal to ``evaluate(...).exact_score``
        of each policy."""
        if not self.tables:
            return [
                self.evaluate(make_act_batch(greedy, seed_slice(policy_params, i))).exact_score
                for i in range(n_policies)
            ]
        from agents.exact import tables

        acts = self._actions(greedy, policy_params)
        if acts.shape[0] != n_policies:
            raise ValueError(f"policy_params stack {acts.shape[0]} policies, not {n_policies}")
        return tables.exact_scores(self.rules, acts)

    def _actions(self, greedy: Callable, policy_params) -> jax.Array:
        """(P, N): the greedy action of every state under each stacked policy, on the device,
        in the blocks (and padding) :func:`make_act_batch` uses."""
        if self._obs_blocks is None:
            obs = np.asarray(self.rules.obs, np.float32)
            n = len(obs)
            size = eval_block(n)
            padded = np.zeros((-(-n // size) * size, OBS_SIZE), np.float32)
            padded[:n] = obs
            self._obs_blocks = (n, [jnp.asarray(b) for b in np.split(padded, len(padded) // size)])
        n, blocks = self._obs_blocks
        policy_params = jax.device_put(policy_params)  # once, not once per block
        try:
            act = _BATCHED_GREEDY[greedy]
        except KeyError:
            act = _BATCHED_GREEDY[greedy] = jax.jit(jax.vmap(greedy, in_axes=(0, None)))
        return jnp.concatenate([act(policy_params, b) for b in blocks], axis=1)[:, :n]

    def optimal(self):
        """Evaluation of the optimal policy (solves the week the first time)."""
        if self._optimal is None:
            if self.tables:
                from agents.exact import tables

                self._optimal = tables.evaluate(self.rules, tables.optimal_policy(self.rules))
            else:
                self.solver.solve()
                self._optimal = self.solver.evaluate(self.solver.optimal_policy())
        return self._optimal


def sampled_scores(
    greedy: Callable,
    policy_params,
    params: EnvParams,
    n_weeks: int,
    key: jax.Array,
    block: int = 50_000,
) -> np.ndarray:
    """Week scores of the greedy policy of every seed on the same ``n_weeks`` fresh weeks.

    ``policy_params`` is seed-batched; returns ``(seeds, n_weeks)`` float64.
    """
    from agents.vec_env import greedy_policy
    from wlf_jax.rollout import rollout

    policy = greedy_policy(greedy)
    block = min(block, n_weeks)

    @jax.jit
    def scores(pp, k):
        return jax.vmap(lambda p: rollout(policy, params, k, block, p)["score"])(pp)

    out = []
    for k in jax.random.split(key, math.ceil(n_weeks / block)):
        out.append(np.asarray(scores(policy_params, k), np.float64))
    return np.concatenate(out, axis=1)[:, :n_weeks]


def ci95(values) -> float:
    """Half-width of the normal 95% confidence interval of the mean."""
    v = np.asarray(values, np.float64)
    return float(1.96 * v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0


# -- learning curve files ---------------------------------------------------------------------


def write_curve(
    out: Path, algo: str, preset: str, curve: dict[str, Any], optimal: float | None
) -> None:
    """``curve.json``, ``curve.csv`` (one row per point and seed) and ``curve.png``."""
    atomic_write(out / "curve.json", json.dumps({**curve, "optimal": optimal}, indent=1).encode())
    rows = [("env_steps", "seed", "exact_score", "train_score")]
    for j, steps in enumerate(curve["env_steps"]):
        for s in range(len(curve["scores"])):
            train = curve["train_scores"][s][j] if j < len(curve["train_scores"][s]) else ""
            rows.append((steps, s, curve["scores"][s][j], train))
    tmp = out / ".curve.csv.tmp"
    with open(tmp, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    os.replace(tmp, out / "curve.csv")
    import matplotlib

    matplotlib.use("Agg")
    from experiments import plots

    plots.learning_curves(
        {algo: {"steps": curve["env_steps"], "scores": curve["scores"], "optimal": optimal}},
        out / "curve.png",
        f"wlf train {algo} on {preset}: exact week score of the greedy policy",
    )


# -- finished runs as policies ----------------------------------------------------------------


def read_finished_run(run_dir: str | Path) -> tuple[dict[str, Any], dict]:
    """``(meta, carry state dict)`` of the checkpoint of a finished run; a missing checkpoint
    (FileNotFoundError) or an unfinished run (ValueError) is refused with a clear message."""
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        raise FileNotFoundError(f"no {CHECKPOINT} in {run_dir} (train with `wlf train`)")
    meta, state = read_checkpoint(path)
    if meta["chunks_done"] < meta["n_chunks"]:
        raise ValueError(
            f"{run_dir}: training stopped after {meta['chunks_done']} of "
            f"{meta['n_chunks']} chunks; finish it with "
            f"`wlf train --resume {run_dir}`"
        )
    return meta, state


def trained_name(meta: dict[str, Any], seed_index: int) -> str:
    """How a trained policy is named in tables, e.g. ``"ppo (trained, seed 2 of 5)"``."""
    return f"{meta['algo']} (trained, seed {seed_index + 1} of {meta['seeds']})"


def load_policy_params(run_dir: str | Path, seed_index: int | None = None):
    """``(meta, trainer, policy_params of one seed, seed index)`` of a finished run folder
    (see :func:`read_finished_run` for what is refused).

    Without ``seed_index`` the run's representative (median) seed is used."""
    run_dir = Path(run_dir)
    meta, state = read_finished_run(run_dir)
    algo, preset = meta["algo"], meta["preset"]
    config = config_from_dict(algo, meta["config"])
    trainer = algo_module(algo).make_trainer(config, presets.get(preset))
    if seed_index is None:
        try:
            result = json.loads((run_dir / "result.json").read_text())
            seed_index = int(result["representative_seed"])
        except (OSError, KeyError, ValueError):
            seed_index = 0
    keys = seed_keys(meta["seeds"], meta["first_seed"])
    template = jax.eval_shape(jax.vmap(trainer.init), keys)
    carry = restore_carry(template, state)
    return meta, trainer, seed_slice(trainer.policy_params(carry), seed_index), seed_index


def load_trained(run_dir: str | Path) -> tuple[str, Callable[[np.ndarray], np.ndarray]]:
    """``(name, act_batch)`` of the policy trained in ``run_dir`` (its representative seed).

    ``act_batch(obs (n, OBS_SIZE)) -> actions (n,)`` is the greedy action; the name says the
    algorithm, e.g. ``"ppo (trained, seed 2 of 5)"``.
    """
    meta, trainer, pp, idx = load_policy_params(run_dir)
    return trained_name(meta, idx), make_act_batch(jax.jit(trainer.greedy), pp)


def summary_text(result: dict[str, Any]) -> str:
    """A few lines summarising a finished run."""
    r = result
    lines = [
        f"{r['algo']} on {r['preset']}: {r['seeds']} seeds x {r['env_steps']:,} env steps "
        f"in {r['wall_s']:.1f} s (compile {r['compile_s']:.1f} s; {r['steps_per_s']:,.0f} steps/s)",
        f"exact week score of the greedy policies: {r['final_score_mean']:.4f} "
        f"± {r['final_score_ci95']:.4f} (optimal {r['optimal_score']:.4f}) -> "
        f"{r['ratio_to_optimal']:.4f} x optimal (worst seed {r['ratio_min']:.4f})",
        "per seed: " + ", ".join(f"{v:.4f}" for v in r["per_seed"]),
        f"sampled over {r['sampled']['weeks_per_seed']:,} fresh weeks per seed: "
        f"{r['sampled']['mean']:.4f} ± {r['sampled']['ci95_over_seeds']:.4f}",
        f"files in {r['out']}: {CHECKPOINT}, result.json, curve.json, curve.csv, curve.png",
    ]
    return "\n".join(lines)
