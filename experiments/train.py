"""Training runs of the learners (`wlf train`): many seeds at once, chunked, checkpointed,
resumable, evaluated exactly against the optimum.

A run trains ``seeds`` seeds together (one ``jit(vmap(chunk))`` program) in ``n_chunks``
chunks.  After each chunk the greedy-policy parameters are saved (``snapshots/``) and then the
whole training state of every seed is written atomically to ``checkpoint.msgpack`` together with
the run's settings and progress, so ``run_training(resume=out)`` continues a killed run after
its last chunk and ends with exactly the parameters of an uninterrupted run.  After training
(outside ``wall_s``) the snapshots are valued exactly with the solver (the learning curve), and
the final greedy policies are valued exactly and on fresh sampled weeks.

Files in ``out``: ``checkpoint.msgpack``, ``snapshots/``, ``result.json``, ``curve.json``,
``curve.csv``, ``curve.png``.  :func:`load_trained` turns such a folder back into a policy.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib
import json
import math
import os
import signal
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from wlf_jax import presets
from wlf_jax.env import OBS_SIZE
from wlf_jax.params import EnvParams

ALGOS: dict[str, str] = {"q": "agents.tabular_q", "dqn": "agents.dqn", "ppo": "agents.ppo"}
"""Command-line name -> module of each learner."""

CHECKPOINT = "checkpoint.msgpack"
FORMAT_VERSION = 1

# Tuned settings per (algorithm, preset); anything not listed is the module's Config default.
TUNED: dict[tuple[str, str], dict[str, Any]] = {
    ("q", "week_v2"): {},
    ("q", "seed_v1"): {},
    ("dqn", "week_v2"): {},
    ("dqn", "seed_v1"): {},
    ("ppo", "week_v2"): {},
    ("ppo", "seed_v1"): {"budget_steps": 200_000},
}

Progress = Callable[[str, float, float], None]  # (phase, done, total)


# ---------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------

def algo_module(algo: str):
    """The learner module of ``algo`` (q, dqn or ppo)."""
    if algo not in ALGOS:
        raise ValueError(f"unknown algorithm {algo!r}; known: {', '.join(ALGOS)}")
    return importlib.import_module(ALGOS[algo])


def default_config(algo: str, preset: str, budget_steps: int | None = None, **overrides):
    """The tuned configuration of ``algo`` on ``preset`` (a module ``Config``), optionally with
    another budget (environment steps per seed) and other fields overridden."""
    mod = algo_module(algo)
    fields = {**TUNED.get((algo, preset), {}), **overrides}
    if budget_steps is not None:
        if budget_steps <= 0:
            raise ValueError("budget_steps must be positive")
        fields["budget_steps"] = int(budget_steps)
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    known = {f.name for f in dataclasses.fields(mod.Config)}
    unknown = set(fields) - known
    if unknown:
        raise ValueError(f"{algo}: unknown settings {sorted(unknown)}")
    return mod.Config(**fields)


def config_to_dict(config) -> dict[str, Any]:
    """A JSON-ready dict of a ``Config`` (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}


def config_from_dict(algo: str, data: dict[str, Any]):
    """Inverse of :func:`config_to_dict`."""
    mod = algo_module(algo)
    known = {f.name for f in dataclasses.fields(mod.Config)}
    return mod.Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known})


def seed_keys(seeds: int, first_seed: int = 0) -> jnp.ndarray:
    """(seeds, 2) uint32 keys: seed ``i`` of a run uses ``PRNGKey(first_seed + i)``."""
    return jnp.stack([jax.random.PRNGKey(first_seed + i) for i in range(seeds)])


# ---------------------------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------------------------

def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, fsync, rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _pack_leaf(x: np.ndarray):
    """Large arrays that are mostly zeros (Q-tables) are stored sparsely."""
    x = np.asarray(x)
    if x.size >= 65_536 and x.dtype.kind in "fiu":
        nz = np.flatnonzero(x)
        if nz.size < x.size // 4:
            return {"__sparse__": np.asarray(x.shape, np.int64), "dtype": x.dtype.str,
                    "index": nz.astype(np.int32 if x.size < 2**31 else np.int64), "value": x.reshape(-1)[nz]}
    return x


def _unpack_leaf(x):
    if isinstance(x, dict) and "__sparse__" in x:
        shape = tuple(int(v) for v in np.asarray(x["__sparse__"]))
        out = np.zeros(int(np.prod(shape)), np.dtype(x["dtype"]))
        out[np.asarray(x["index"])] = np.asarray(x["value"])
        return out.reshape(shape)
    return x


def _map_state(fn, state):
    if isinstance(state, dict) and "__sparse__" not in state:
        return {k: _map_state(fn, v) for k, v in state.items()}
    return fn(state)


def save_checkpoint(path: Path, meta: dict[str, Any], carry) -> None:
    """Atomically write the run settings/progress ``meta`` and the batched training ``carry``."""
    state = serialization.to_state_dict(jax.device_get(carry))
    payload = {"format": FORMAT_VERSION, "meta": json.dumps(meta),
               "carry": _map_state(_pack_leaf, state)}
    atomic_write(path, zlib.compress(serialization.msgpack_serialize(payload), 1))


def read_checkpoint(path: Path) -> tuple[dict[str, Any], dict]:
    """``(meta, carry state dict)`` of a checkpoint file."""
    payload = serialization.msgpack_restore(zlib.decompress(Path(path).read_bytes()))
    if int(payload.get("format", -1)) != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported checkpoint format {payload.get('format')}")
    return json.loads(payload["meta"]), _map_state(_unpack_leaf, payload["carry"])


def restore_carry(template, state: dict):
    """Rebuild a carry with the structure of ``template`` from a checkpoint's state dict."""
    restored = serialization.from_state_dict(template, state)
    return jax.tree_util.tree_map(jnp.asarray, restored)


def snapshot_path(out: Path, index: int) -> Path:
    """File of the greedy-policy parameters after ``index`` chunks (0 = untrained)."""
    return Path(out) / "snapshots" / f"policy_{index:03d}.msgpack"


def save_snapshot(out: Path, index: int, policy_params) -> None:
    """Atomically store the (seed-batched) policy parameters after ``index`` chunks; the
    learning curve is valued from these after training, so training time is not spent on it."""
    path = snapshot_path(out, index)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = _map_state(_pack_leaf, serialization.to_state_dict(jax.device_get(policy_params)))
    atomic_write(path, zlib.compress(serialization.msgpack_serialize(state), 1))


def load_snapshot(out: Path, index: int, template):
    """Policy parameters saved by :func:`save_snapshot`, with the structure of ``template``."""
    state = serialization.msgpack_restore(zlib.decompress(snapshot_path(out, index).read_bytes()))
    return serialization.from_state_dict(template, _map_state(_unpack_leaf, state))


# ---------------------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------------------

EVAL_BATCH = 1024


def make_act_batch(greedy: Callable, policy_params) -> Callable[[np.ndarray], np.ndarray]:
    """``act_batch(obs (n, OBS_SIZE)) -> actions (n,)`` of a greedy policy, on numpy arrays.

    ``greedy`` should be jitted; observations are padded to blocks of ``EVAL_BATCH`` so it
    compiles once.
    """

    def act(obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, np.float32).reshape(-1, OBS_SIZE)
        n = len(obs)
        out = np.zeros(n, np.int64)
        for i in range(0, n, EVAL_BATCH):
            block = np.zeros((EVAL_BATCH, OBS_SIZE), np.float32)
            part = obs[i:i + EVAL_BATCH]
            block[:len(part)] = part
            out[i:i + len(part)] = np.asarray(greedy(policy_params, jnp.asarray(block)))[:len(part)]
        return out

    return act


def seed_slice(tree, i: int):
    """Seed ``i`` of a seed-batched pytree."""
    return jax.tree_util.tree_map(lambda x: x[i], tree)


_JUDGES: dict[str, "ExactJudge"] = {}


def exact_judge(preset: str) -> "ExactJudge":
    """The :class:`ExactJudge` of a preset, shared within the process (solved once)."""
    if preset not in _JUDGES:
        _JUDGES[preset] = ExactJudge(presets.get(preset))
    return _JUDGES[preset]


class ExactJudge:
    """Exact values of greedy policies with the solver; the optimum is solved on first use."""

    def __init__(self, params: EnvParams):
        from agents.exact import ExactSolver

        self.params = params
        self.solver = ExactSolver(params)
        self._optimal = None

    def evaluate(self, act_batch: Callable[[np.ndarray], np.ndarray]):
        """The solver's :class:`~agents.exact.Evaluation` of a greedy policy."""
        from agents.exact import obs_policy

        return self.solver.evaluate(obs_policy(act_batch, self.params))

    def optimal(self):
        """Evaluation of the optimal policy (solves the week the first time)."""
        if self._optimal is None:
            self.solver.solve()
            self._optimal = self.solver.evaluate(self.solver.optimal_policy())
        return self._optimal


def sampled_scores(greedy: Callable, policy_params, params: EnvParams, n_weeks: int,
                   key: jax.Array, block: int = 50_000) -> np.ndarray:
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
    for i, k in enumerate(jax.random.split(key, math.ceil(n_weeks / block))):
        out.append(np.asarray(scores(policy_params, k), np.float64))
    return np.concatenate(out, axis=1)[:, :n_weeks]


def ci95(values) -> float:
    """Half-width of the normal 95% confidence interval of the mean."""
    v = np.asarray(values, np.float64)
    return float(1.96 * v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0


# ---------------------------------------------------------------------------------------------
# learning curve files
# ---------------------------------------------------------------------------------------------

def write_curve(out: Path, algo: str, preset: str, curve: dict[str, Any], optimal: float | None) -> None:
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

    plots.learning_curves({algo: {"steps": curve["env_steps"], "scores": curve["scores"],
                                  "optimal": optimal}},
                          out / "curve.png", f"wlf train {algo} on {preset}: exact week score of the greedy policy")


# ---------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------

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
            init = jax.jit(jax.vmap(trainer.init)).lower(keys).compile(compiler_options=INIT_COMPILER_OPTIONS)
            chunk = chunk.result()
        _COMPILED[key] = (trainer, init, chunk, jax.jit(trainer.greedy), template)
    return _COMPILED[key]


def _new_meta(algo, preset, config, seeds, first_seed, eval_weeks, steps_per_chunk) -> dict[str, Any]:
    return {
        "algo": algo, "preset": preset, "seeds": seeds, "first_seed": first_seed,
        "eval_weeks": eval_weeks, "config": config_to_dict(config),
        "n_chunks": config.n_chunks, "steps_per_chunk": steps_per_chunk, "chunks_done": 0,
        "curve": {"env_steps": [0], "train_scores": [[] for _ in range(seeds)], "metrics": []},
        "train_wall_s": 0.0, "sessions": [],
    }


def _zeros_like(template):
    return jax.tree_util.tree_map(lambda x: np.zeros(x.shape, x.dtype), template)


def _host_metrics(metrics) -> dict[str, list[float]]:
    return {k: [float(v) for v in np.asarray(x).reshape(-1)] for k, x in jax.device_get(metrics).items()}


def run_training(algo: str, preset: str = "week_v2", seeds: int = 5, budget_steps: int | None = None,
                 out: str | Path | None = None, resume: str | Path | None = None,
                 first_seed: int = 0, eval_weeks: int = 100_000, exact_curve: bool = True,
                 progress: Progress | None = None, overrides: dict[str, Any] | None = None,
                 stop_after_chunks: int | None = None, kill_after_chunks: int | None = None,
                 evaluate: bool = True) -> dict[str, Any]:
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
        meta = _new_meta(algo, preset, config, seeds, first_seed, eval_weeks, trainer.steps_per_chunk)
    keys = seed_keys(seeds, first_seed)
    if state is None:
        carry = init(keys)
        save_snapshot(out, 0, trainer.policy_params(carry))
    else:
        carry = restore_carry(_zeros_like(template), state)
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

    last = trainer.n_chunks if stop_after_chunks is None else min(trainer.n_chunks, stop_after_chunks)
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
        return {"algo": algo, "preset": preset, "complete": meta["chunks_done"] == trainer.n_chunks,
                "chunks_done": meta["chunks_done"], "n_chunks": trainer.n_chunks, "out": str(out),
                "wall_s": meta["train_wall_s"], "compile_s": compile_s}

    return _evaluate_final(algo, preset, config, trainer, greedy, carry, template, meta, out,
                           seeds, eval_weeks, session_wall, say, exact_curve)


def _evaluate_final(algo, preset, config, trainer, greedy, carry, template, meta, out, seeds,
                    eval_weeks, session_wall, say, exact_curve: bool = True) -> dict[str, Any]:
    """Exact and sampled values of the final greedy policies, the learning curve, result.json."""
    params = presets.get(preset)
    judge = exact_judge(preset)
    t_eval = time.perf_counter()
    say("solving the week exactly", 0, 1)
    opt = judge.optimal().exact_score

    def evaluate_seeds(policy_params) -> list:
        return [judge.evaluate(make_act_batch(greedy, seed_slice(policy_params, i))) for i in range(seeds)]

    pp_template = jax.eval_shape(trainer.policy_params, template)
    curve = meta["curve"]
    if exact_curve:
        scores = []
        for j in range(trainer.n_chunks + 1):
            say("exact learning curve", j, trainer.n_chunks + 1)
            snap = load_snapshot(out, j, _zeros_like(pp_template))
            scores.append([e.exact_score for e in evaluate_seeds(snap)])
        curve = {**curve, "scores": np.asarray(scores).T.tolist(), "score_kind": "exact"}
    else:
        curve = {**curve, "scores": curve["train_scores"], "env_steps": curve["env_steps"][1:],
                 "score_kind": "training weeks (epsilon-greedy / sampled actions)"}
    pp = jax.device_get(trainer.policy_params(carry))
    evals = evaluate_seeds(pp)
    per_seed = [e.exact_score for e in evals]
    rep = int(np.argsort(per_seed)[len(per_seed) // 2])  # the median seed represents the run
    initial = evaluate_seeds(load_snapshot(out, 0, _zeros_like(pp_template)))[rep]
    say(f"sampling {eval_weeks:,} fresh weeks per seed", 0, 1)
    sampled = sampled_scores(greedy, trainer.policy_params(carry), params, eval_weeks,
                             jax.random.PRNGKey(10_000 + meta["first_seed"]))
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
        "exact_eval": {**evals[rep].as_dict(), "initial_action_freq": initial.action_freq,
                       "initial_score": initial.exact_score},
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


# ---------------------------------------------------------------------------------------------
# trained policies as agents
# ---------------------------------------------------------------------------------------------

def read_finished_run(run_dir: str | Path) -> tuple[dict[str, Any], dict]:
    """``(meta, carry state dict)`` of the checkpoint of a finished run; a missing checkpoint
    (FileNotFoundError) or an unfinished run (ValueError) is refused with a clear message."""
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        raise FileNotFoundError(f"no {CHECKPOINT} in {run_dir} (train with `wlf train`)")
    meta, state = read_checkpoint(path)
    if meta["chunks_done"] < meta["n_chunks"]:
        raise ValueError(f"{run_dir}: training stopped after {meta['chunks_done']} of "
                         f"{meta['n_chunks']} chunks; finish it with `wlf train --resume {run_dir}`")
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
            seed_index = int(json.loads((run_dir / "result.json").read_text())["representative_seed"])
        except (OSError, KeyError, ValueError):
            seed_index = 0
    keys = seed_keys(meta["seeds"], meta["first_seed"])
    template = jax.eval_shape(jax.vmap(trainer.init), keys)
    carry = restore_carry(jax.tree_util.tree_map(lambda x: np.zeros(x.shape, x.dtype), template), state)
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
        f"exact week score of the greedy policies: {r['final_score_mean']:.4f} ± {r['final_score_ci95']:.4f} "
        f"(optimal {r['optimal_score']:.4f}) -> {r['ratio_to_optimal']:.4f} x optimal (worst seed {r['ratio_min']:.4f})",
        "per seed: " + ", ".join(f"{v:.4f}" for v in r["per_seed"]),
        f"sampled over {r['sampled']['weeks_per_seed']:,} fresh weeks per seed: "
        f"{r['sampled']['mean']:.4f} ± {r['sampled']['ci95_over_seeds']:.4f}",
        f"files in {r['out']}: {CHECKPOINT}, result.json, curve.json, curve.csv, curve.png",
    ]
    return "\n".join(lines)
