"""The whole sensitivity run behind ``wlf sensitivity``: its settings (:class:`SweepConfig`),
:func:`run_sensitivity` (default rule book, design and one-at-a-time sweep, solved exactly,
then the indices) and the exact scores of a trained policy (``--trained``) across the design."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wlf_jax.events import EVENT_IDS
from wlf_jax.params import EnvParams

from .design import (
    apply_groups,
    base_fields,
    identity_row,
    one_at_a_time,
    sample_design,
    slice_fields,
    stack_params,
)
from .groups import RuleGroup, default_groups, load_groups
from .indices import morris_indices, policy_switch, sobol_indices
from .solve import ChunkStore, cached_evaluator, evaluate_design


@dataclass
class SweepConfig:
    """Settings of one sensitivity run (see ``wlf sensitivity --help``)."""

    preset: str = "week_v2"
    method: str = "sobol"
    samples: int = 64
    seed: int = 0
    groups_file: str | None = None
    granularity: str = "action"
    switch_points: int = 8
    chunk: int = 32  # rule books per device per compiled call
    out: str | None = None
    fresh: bool = False
    trained: str | None = None  # a finished `wlf train` folder: also score its greedy policy


def possible_chance(params: EnvParams, groups: Sequence[RuleGroup]) -> np.ndarray:
    """(E, A) pairs that can have an alternative outcome in some rule book of the sweep: those
    of the default, plus those a ``shift`` or ``set`` group moves the probability of (scaling
    keeps a zero probability zero)."""
    alt_prob = np.asarray(params.alt_prob)
    chance = alt_prob > 0
    for g in groups:
        for t in g.targets:
            if t.field == "alt_prob" and g.mode != "scale":
                chance[t.np_index()] = True
    return chance


def sweep_groups(config: SweepConfig, params: EnvParams) -> list[RuleGroup]:
    """The rule groups of a run: from the file if given, else the built-in catalogue."""
    if config.groups_file:
        return load_groups(config.groups_file, params)
    return default_groups(params, config.granularity)


def _same_preset(meta: dict, run_dir, params: EnvParams) -> None:
    if meta["preset"] != params.name:
        raise ValueError(
            f"--trained {run_dir} was trained on {meta['preset']!r}; this sweep is "
            f"around {params.name!r}"
        )


def check_trained(run_dir: str | os.PathLike, params: EnvParams) -> None:
    """Refuse a ``--trained`` folder that is missing, unfinished or from another preset
    (checked before the sweep starts, not after it)."""
    from experiments.train import read_finished_run

    _same_preset(read_finished_run(run_dir)[0], run_dir, params)


def trained_scores(
    run_dir: str | os.PathLike,
    params: EnvParams,
    groups: Sequence[RuleGroup],
    X: np.ndarray,
    chance: np.ndarray,
    chunk: int = 256,
    tick: Callable[[int], None] | None = None,
) -> tuple[str, np.ndarray]:
    """``(name, scores (n,))``: the exact expected week score of the greedy policy trained in
    ``run_dir`` (``wlf train``; its representative seed) in each rule book ``X`` describes.

    Uses :func:`agents.exact.policy_scorer.make_policy_scorer` (every chance pattern played by the
    network, weighted exactly), ``chunk`` rule books per compiled call on the default device.
    ``chance`` (E, A): pairs that may have an alternative outcome in the sweep.
    """
    from agents.exact.policy_scorer import fixed_schedule, greedy_obs_policy, make_policy_scorer
    from experiments.train import load_policy_params, trained_name

    meta, trainer, policy_params, idx = load_policy_params(run_dir)
    _same_preset(meta, run_dir, params)
    chance_events = np.asarray(chance).any(axis=1)
    scorer = make_policy_scorer(
        greedy_obs_policy(trainer.greedy), fixed_schedule(params), chance_events
    )
    # every rule book plays 2**K weeks (K chance events): keep a call near 32k weeks
    chunk = max(1, min(chunk, 32_768 // 2 ** int(chance_events.sum())))
    fields = apply_groups(base_fields(params), groups, X)
    out = np.zeros(len(X))
    for start in range(0, len(X), chunk):
        stop = min(len(X), start + chunk)
        part = stack_params(slice_fields(fields, start, stop, chunk))
        out[start:stop] = np.asarray(scorer(policy_params, part))[: stop - start]
        if tick:
            tick(stop - start)
    return trained_name(meta, idx), out


def run_sensitivity(
    config: SweepConfig,
    progress: Callable[[int, int], None] | None = None,
    mesh=None,
    params: EnvParams | None = None,
    groups: Sequence[RuleGroup] | None = None,
) -> dict[str, Any]:
    """Run a sensitivity analysis end to end and return the JSON-able result.

    Evaluates, exactly, the default rule book, the design (``config.method``) and the
    one-at-a-time sweep for the policy-switch map; ``progress(done, total)`` is called after
    every chunk.  With ``config.out`` every chunk is saved there and a rerun resumes.
    ``params`` / ``groups`` replace the preset / the configured groups (tests, notebooks).
    """
    import jax

    from agents.exact.tree import UnsupportedPresetError, build_tree, structure_of
    from agents.fixed import FIXED_MAP_NAMES, action_map
    from wlf_jax import presets

    t0 = time.perf_counter()
    params = presets.get(config.preset) if params is None else params
    groups = list(sweep_groups(config, params) if groups is None else groups)
    if not groups:
        raise ValueError("no rule groups to sweep")
    if config.trained:
        check_trained(config.trained, params)
    names = ["optimal", *FIXED_MAP_NAMES]
    maps = np.stack([action_map(n) for n in FIXED_MAP_NAMES])
    try:
        structure = structure_of(params, possible_chance(params, groups))
    except UnsupportedPresetError as exc:
        raise ValueError(
            f"rule book {params.name!r} cannot be swept by the vectorised exact "
            f"solver ({exc}); sensitivity sweeps need a fixed-schedule preset such "
            "as week_v2"
        ) from None
    tree = build_tree(structure)
    X_design = sample_design(groups, config.method, config.samples, config.seed)
    X_oat, owner = one_at_a_time(groups, config.switch_points)
    X = np.concatenate([identity_row(groups)[None], X_design, X_oat])
    evaluator = cached_evaluator(structure, maps, mesh)
    store = None
    if config.out:
        fingerprint = {
            "preset": params.name,
            "method": config.method,
            "samples": config.samples,
            "seed": config.seed,
            "switch_points": config.switch_points,
            "chunk": config.chunk,
            "devices": evaluator.devices,
            "groups": [g.as_dict() for g in groups],
            "rows": len(X),
            "default": {k: v.tolist() for k, v in base_fields(params).items()},
        }
        store = ChunkStore(
            Path(config.out), fingerprint, config.fresh, writer=jax.process_index() == 0
        )
    done = [0]
    n_trained = 1 + len(X_design) if config.trained else 0  # the default and the design

    def tick(k: int) -> None:
        done[0] += k
        if progress:
            progress(done[0], len(X) + n_trained)

    t_eval, cpu_eval = time.perf_counter(), time.process_time()
    res = evaluate_design(base_fields(params), groups, X, evaluator, config.chunk, store, tick)
    eval_s, eval_cpu_s = time.perf_counter() - t_eval, time.process_time() - cpu_eval
    scores = np.concatenate([res["optimal"][:, None], res["maps"]], axis=1)  # (n, 1 + M)
    n_design = len(X_design)
    trained_name, trained_s = None, None
    if config.trained:
        t_trained = time.perf_counter()
        chance = possible_chance(params, groups)
        trained_name, y = trained_scores(
            config.trained, params, groups, X[:n_trained], chance, tick=tick
        )
        trained_s = time.perf_counter() - t_trained
        names.append("trained")
        pad = np.full(len(X), np.nan)
        pad[:n_trained] = y
        scores = np.concatenate([scores, pad[:, None]], axis=1)
    design_scores = scores[1 : 1 + n_design]
    outputs = {}
    for j, name in enumerate(names):
        y = design_scores[:, j]
        if config.method == "sobol":
            outputs[name] = sobol_indices(groups, y, config.seed)
        else:
            outputs[name] = morris_indices(groups, X_design, y, config.seed)
        outputs[name]["default"] = float(scores[0, j])
        outputs[name]["mean"] = float(y.mean())
        outputs[name]["std"] = float(y.std())
        if name == "trained":
            outputs[name]["policy"] = trained_name
    default_arrival = res["arrival"][0]
    switch = policy_switch(res["arrival"][1 + n_design :], owner, default_arrival, groups)
    from wlf_jax.events import ACTION_NAMES as AN

    wall = time.perf_counter() - t0
    return {
        "preset": params.name,
        "method": config.method,
        "samples": config.samples,
        "rule_books": int(len(X)),
        "design_rule_books": int(n_design),
        "switch_rule_books": int(len(X_oat)),
        "wall_s": wall,
        "eval_s": eval_s,
        "eval_cpu_s": eval_cpu_s,
        "rule_books_per_s": len(X) / eval_s if eval_s > 0 else None,
        "trained_s": trained_s,
        "devices": evaluator.devices,
        "processes": jax.process_count(),
        "seed": config.seed,
        "tree": {
            "decision_nodes": tree.n_nodes,
            "leaves": tree.n_leaves,
            "levels": len(tree.levels),
        },
        "groups": [g.as_dict() for g in groups],
        "outputs": outputs,
        "policy_switch": switch,
        "default_actions": {
            EVENT_IDS[e]: AN[e][int(a)] for e, a in enumerate(default_arrival) if a >= 0
        },
    }
