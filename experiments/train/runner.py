"""The training run itself: the compiled trainer of a setting (cached per process),
:func:`run_training` (chunks, snapshots, checkpoints, the final exact and sampled evaluation,
``result.json``) and :func:`resume`."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from wlf_jax import presets

from .checkpoints import (
    CHECKPOINT,
    atomic_write,
    load_snapshot,
    read_checkpoint,
    restore_carry,
    save_checkpoint,
    save_snapshot,
)
from .config import algo_module, config_from_dict, config_to_dict, default_config, seed_keys
from .evaluation import ci95, make_act_batch, policy_valuer, sampled_scores, seed_slice, write_curve

Progress = Callable[[str, float, float], None]  # (phase, done, total)

_COMPILED: dict[tuple, tuple] = {}
INIT_COMPILER_OPTIONS = {"xla_backend_optimization_level": 0}


def compiled_trainer(algo: str, preset: str, config, seeds: int):
    """``(trainer, init, chunk, greedy, carry template)`` with ``init``/``chunk`` compiled
    ahead of time for ``seeds`` seeds (``jit(vmap(...))``); cached per process, so repeated
    runs with the same settings (tests, the demo, resume after a stop) compile once."""
    key = (algo, preset, config, seeds)
    if key not in _COMPILED:
        trainer = algo_module(algo).make_trainer(config, presets.get(preset))
        keys = jax.ShapeDtypeStruct((seeds, 2), jnp.uint32)
        template = jax.eval_shape(jax.vmap(trainer.init), keys)
        # The chunk compiles in a second thread while the init compiles here (XLA releases the
        # interpreter lock); the init runs once, so it is compiled without backend optimisation,
        # which roughly halves its compile time.
        with ThreadPoolExecutor(1) as pool:
            chunk = pool.submit(lambda: jax.jit(jax.vmap(trainer.chunk)).lower(template).compile())
            init = (
                jax.jit(jax.vmap(trainer.init))
                .lower(keys)
                .compile(compiler_options=INIT_COMPILER_OPTIONS)
            )
            chunk = chunk.result()
        _COMPILED[key] = (trainer, init, chunk, jax.jit(trainer.greedy), template)
    return _COMPILED[key]


def _new_meta(
    algo, preset, config, seeds, first_seed, eval_weeks, steps_per_chunk
) -> dict[str, Any]:
    return {
        "algo": algo,
        "preset": preset,
        "seeds": seeds,
        "first_seed": first_seed,
        "eval_weeks": eval_weeks,
        "config": config_to_dict(config),
        "n_chunks": config.n_chunks,
        "steps_per_chunk": steps_per_chunk,
        "chunks_done": 0,
        "curve": {"env_steps": [0], "train_scores": [[] for _ in range(seeds)], "metrics": []},
        "train_wall_s": 0.0,
        "sessions": [],
    }


def _host_metrics(metrics) -> dict[str, list[float]]:
    return {
        k: [float(v) for v in np.asarray(x).reshape(-1)] for k, x in jax.device_get(metrics).items()
    }


def run_training(
    algo: str,
    preset: str = "week_v2",
    seeds: int = 5,
    budget_steps: int | None = None,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    first_seed: int = 0,
    eval_weeks: int = 100_000,
    exact_curve: bool = True,
    progress: Progress | None = None,
    overrides: dict[str, Any] | None = None,
    stop_after_chunks: int | None = None,
    kill_after_chunks: int | None = None,
    evaluate: bool = True,
) -> dict[str, Any]:
    """Train ``seeds`` seeds of ``algo`` on ``preset``, checkpointing after every chunk.

    With ``resume`` (a run folder) the run's own settings are read from its checkpoint and
    training continues after its last completed chunk; the other arguments are ignored.
    ``stop_after_chunks`` stops after that many chunks in total (``kill_after_chunks`` kills
    the process with SIGKILL right after that chunk's checkpoint: the resume tests use it); the
    result then only holds the progress, as it does with ``evaluate=False``.  Otherwise returns
    the result dict (also written to ``out/result.json``).  ``exact_curve=False`` values the
    learning curve with the training weeks' scores instead of the solver.
    """
    say = progress or (lambda *_: None)
    if resume is not None:
        out = Path(resume)
        meta, state = read_checkpoint(out / CHECKPOINT)
        algo, preset = meta["algo"], meta["preset"]
        config = config_from_dict(algo, meta["config"])
        seeds, first_seed, eval_weeks = meta["seeds"], meta["first_seed"], meta["eval_weeks"]
    else:
        if seeds < 1:
            raise ValueError("seeds must be at least 1")
        if eval_weeks < 2:
            raise ValueError("eval_weeks must be at least 2")
        settings = dict(overrides or {})
        if budget_steps is None:
            budget_steps = settings.pop("budget_steps", None)
        settings.pop("budget_steps", None)  # an explicit budget wins over an override
        config = default_config(algo, preset, budget_steps, **settings)
        out = Path(out) if out is not None else Path("runs") / f"train_{algo}_{preset}"
        meta, state = None, None
    out.mkdir(parents=True, exist_ok=True)
    session_start = time.perf_counter()
    say("compile", 0, 1)
    compiled = compiled_trainer(algo, preset, config, seeds)
    trainer, init, chunk, greedy, template = compiled
    compile_s = time.perf_counter() - session_start
    if meta is None:
        meta = _new_meta(
            algo, preset, config, seeds, first_seed, eval_weeks, trainer.steps_per_chunk
        )
    keys = seed_keys(seeds, first_seed)
    if state is None:
        carry = init(keys)
        save_snapshot(out, 0, trainer.policy_params(carry))
    else:
        carry = restore_carry(template, state)
    say("train", meta["chunks_done"], trainer.n_chunks)
    prior_wall = meta["train_wall_s"]

    def finish_chunk(i: int, new_carry, metrics) -> None:
        """Host work after chunk ``i``: metrics, policy snapshot, checkpoint (in that order, so a
        kill at any point leaves a consistent last checkpoint)."""
        m = _host_metrics(metrics)
        meta["chunks_done"] = i + 1
        meta["curve"]["env_steps"].append((i + 1) * trainer.steps_per_chunk)
        for s in range(seeds):
            meta["curve"]["train_scores"][s].append(m["train_score"][s])
        meta["curve"]["metrics"].append(m)
        meta["train_wall_s"] = prior_wall + (time.perf_counter() - session_start)
        save_snapshot(out, i + 1, trainer.policy_params(new_carry))
        save_checkpoint(out / CHECKPOINT, meta, new_carry)
        say("train", i + 1, trainer.n_chunks)
        if kill_after_chunks is not None and i + 1 >= kill_after_chunks:
            os.kill(os.getpid(), signal.SIGKILL)  # a real kill, for the resume tests

    last = (
        trainer.n_chunks if stop_after_chunks is None else min(trainer.n_chunks, stop_after_chunks)
    )
    pending = None
    for i in range(meta["chunks_done"], last):
        new_carry, metrics = chunk(carry)  # dispatched asynchronously
        if pending is not None:
            finish_chunk(*pending)  # host work of the previous chunk overlaps this one
        pending = (i, new_carry, metrics)
        carry = new_carry
    if pending is not None:
        finish_chunk(*pending)
    jax.block_until_ready(carry)
    session_wall = time.perf_counter() - session_start
    meta["sessions"].append({"wall_s": session_wall, "compile_s": compile_s})
    meta["train_wall_s"] = prior_wall + session_wall
    save_checkpoint(out / CHECKPOINT, meta, carry)
    if meta["chunks_done"] < trainer.n_chunks or not evaluate:
        return {
            "algo": algo,
            "preset": preset,
            "complete": meta["chunks_done"] == trainer.n_chunks,
            "chunks_done": meta["chunks_done"],
            "n_chunks": trainer.n_chunks,
            "out": str(out),
            "wall_s": meta["train_wall_s"],
            "compile_s": compile_s,
        }

    run = FinishedRun(
        algo=algo,
        preset=preset,
        config=config,
        trainer=trainer,
        greedy=greedy,
        carry=carry,
        template=template,
        meta=meta,
        out=out,
        seeds=seeds,
        eval_weeks=eval_weeks,
        session_wall=session_wall,
    )
    return _evaluate_final(run, say, exact_curve=exact_curve)


class FinishedRun(NamedTuple):
    """What the final evaluation of a complete training run reads."""

    algo: str
    preset: str
    config: Any
    trainer: Any  # agents.vec_env.Trainer
    greedy: Any  # greedy(policy_params, obs) -> actions
    carry: Any  # the final training carry (seeds on the leading axis)
    template: Any  # a carry of the same structure, to load snapshots into
    meta: dict[str, Any]
    out: Path
    seeds: int
    eval_weeks: int
    session_wall: float


def _evaluate_final(run: FinishedRun, say, exact_curve: bool = True) -> dict[str, Any]:
    """Exact and sampled values of the final greedy policies, the learning curve, result.json."""
    algo, preset, config, trainer, greedy, carry, template, meta, out, seeds, eval_weeks = run[:11]
    session_wall = run.session_wall
    params = presets.get(preset)
    valuer = policy_valuer(preset)
    t_eval = time.perf_counter()
    say("solving the week exactly", 0, 1)
    opt = valuer.optimal().exact_score

    def evaluate_seeds(policy_params) -> list:
        return [
            valuer.evaluate(make_act_batch(greedy, seed_slice(policy_params, i)))
            for i in range(seeds)
        ]

    pp_template = jax.eval_shape(trainer.policy_params, template)
    curve = meta["curve"]
    if exact_curve:
        scores = []
        for j in range(trainer.n_chunks + 1):
            say("exact learning curve", j, trainer.n_chunks + 1)
            snap = load_snapshot(out, j, pp_template)
            scores.append(valuer.exact_scores(greedy, snap, seeds))  # all seeds in one pass
        curve = {**curve, "scores": np.asarray(scores).T.tolist(), "score_kind": "exact"}
    else:
        curve = {
            **curve,
            "scores": curve["train_scores"],
            "env_steps": curve["env_steps"][1:],
            "score_kind": "training weeks (epsilon-greedy / sampled actions)",
        }
    pp = jax.device_get(trainer.policy_params(carry))
    evals = evaluate_seeds(pp)
    per_seed = [e.exact_score for e in evals]
    rep = int(np.argsort(per_seed)[len(per_seed) // 2])  # the median seed represents the run
    initial = evaluate_seeds(load_snapshot(out, 0, pp_template))[rep]
    say(f"sampling {eval_weeks:,} fresh weeks per seed", 0, 1)
    sampled = sampled_scores(
        greedy,
        trainer.policy_params(carry),
        params,
        eval_weeks,
        jax.random.PRNGKey(10_000 + meta["first_seed"]),
    )
    mean = float(np.mean(per_seed))
    steps = trainer.n_chunks * trainer.steps_per_chunk
    result = {
        "algo": algo,
        "learner": algo_module(algo).NAME,
        "preset": preset,
        "seeds": seeds,
        "first_seed": meta["first_seed"],
        "wall_s": meta["train_wall_s"],
        "compile_s": float(sum(x["compile_s"] for x in meta["sessions"])),
        "session_wall_s": session_wall,
        "sessions": meta["sessions"],
        "env_steps": steps,
        "env_steps_total": steps * seeds,
        "steps_per_s": steps * seeds / max(meta["train_wall_s"], 1e-9),
        "optimal_score": opt,
        "final_score_mean": mean,
        "final_score_ci95": ci95(per_seed),
        "ratio_to_optimal": mean / opt,
        "ratio_min": float(np.min(per_seed)) / opt,
        "per_seed": per_seed,
        "per_seed_ratio": [v / opt for v in per_seed],
        "sampled": {
            "weeks_per_seed": eval_weeks,
            "per_seed_mean": [float(v) for v in sampled.mean(1)],
            "per_seed_ci95": [ci95(v) for v in sampled],
            "mean": float(sampled.mean()),
            "ci95_over_seeds": ci95(sampled.mean(1)),
        },
        "representative_seed": rep,
        "exact_eval": {
            **evals[rep].as_dict(),
            "initial_action_freq": initial.action_freq,
            "initial_score": initial.exact_score,
        },
        "config": config_to_dict(config),
        "eval_s": time.perf_counter() - t_eval,
        "out": str(out),
        "complete": True,
    }
    write_curve(out, algo, preset, curve, opt)
    atomic_write(out / "result.json", json.dumps(result, indent=2).encode())
    return result


def resume(out: str | Path, progress: Progress | None = None) -> dict[str, Any]:
    """Continue the killed run in folder ``out`` from its last checkpoint."""
    return run_training("", resume=out, progress=progress)
