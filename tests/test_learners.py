"""Learners (tabular Q, Q-network, PPO) and `wlf train`: short runs on seed_v1 learn, a killed
run resumes to exactly the same parameters, and vmap over seeds equals each seed alone.

Budgets are small (seconds of training); the benchmark targets are measured by `wlf train`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents import ppo, tabular_q
from experiments import train as T
from wlf_jax import presets

PRESET = "seed_v1"
RANDOM_SCORE = 0.4799  # exact week score of the uniform random policy on seed_v1
OPTIMAL_SCORE = 0.8225

# Short budgets per learner (environment steps per seed) and small settings that keep each
# compile + run to seconds on two cores.
SHORT = {
    "q": {"budget_steps": 1_000_000, "n_chunks": 2},
    "dqn": {"budget_steps": 60_000, "n_chunks": 2, "grad_steps": 8},
    "ppo": {"budget_steps": 150_000, "n_chunks": 2},
}
# Tiny runs (a few updates in 4 chunks) for the determinism tests; every test of an algorithm
# uses the same settings, so the compiled programs are shared (experiments.train.runner caches them).
TINY = {
    "q": {"budget_steps": 8 * 1024, "n_chunks": 4},
    "dqn": {"budget_steps": 8 * 64, "n_chunks": 4, "learning_starts": 128, "buffer_size": 1024},
    "ppo": {"budget_steps": 4 * 256 * 16, "n_chunks": 4},
}


def observe_random_state(key):
    """The observation after a few random decisions of a fresh seed_v1 week."""
    from wlf_jax import WorkWeek

    env, params = WorkWeek(), presets.seed_v1()
    k_reset, k_steps = jax.random.split(key)
    _, state = env.reset(k_reset, params)
    n = jax.random.randint(k_steps, (), 0, 6)

    def body(t, s):
        a = jax.random.randint(jax.random.fold_in(k_steps, t), (), 0, 3)
        nxt = env.step_env(None, s, a, params)[1]
        return jax.tree_util.tree_map(lambda x, y: jnp.where(t < n, x, y), nxt, s)

    return env.get_obs(jax.lax.fori_loop(0, 6, body, state), params)


def _config(algo: str, settings: dict):
    return T.default_config(algo, PRESET, **settings)


def _leaves(tree) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(jax.device_get(tree))]


def _assert_same(a, b) -> None:
    la, lb = _leaves(a), _leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        assert x.shape == y.shape and x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module")
def valuer():
    return T.policy_valuer(PRESET)


# ---------------------------------------------------------------------------------------------
# learning
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("algo, min_ratio", [("q", 0.95), ("ppo", 0.97), ("dqn", 0.95)])
def test_short_training_beats_random_and_nears_optimum(valuer, algo, min_ratio):
    cfg = _config(algo, SHORT[algo])
    trainer, init, chunk, greedy, _ = T.compiled_trainer(algo, PRESET, cfg, 2)
    carry = init(T.seed_keys(2))
    before = [
        valuer.evaluate(
            T.make_act_batch(greedy, T.seed_slice(trainer.policy_params(carry), i))
        ).exact_score
        for i in range(2)
    ]
    for _ in range(trainer.n_chunks):
        carry, metrics = chunk(carry)
    after = [
        valuer.evaluate(
            T.make_act_batch(greedy, T.seed_slice(trainer.policy_params(carry), i))
        ).exact_score
        for i in range(2)
    ]
    optimal = valuer.optimal().exact_score
    assert optimal == pytest.approx(OPTIMAL_SCORE, abs=1e-4)
    # the untrained greedy policy is far from the optimum: learning, not the initialisation,
    # has to close the gap
    assert min(before) < 0.93 * optimal
    for score in after:
        assert score > RANDOM_SCORE + 0.25
        assert score >= min_ratio * optimal, (algo, after, optimal)
    assert np.all(np.isfinite(np.asarray(metrics["train_score"])))


# PPO on week_v2, where the best action depends on the state (energy, what came back, the day):
# 300,000 decisions per seed, seeds 0-1.  Measured on the correct code (seeds 0-3): 0.9756,
# 0.9756, 0.9756 and 0.9899 x optimal; with advantages leaking across week boundaries (GAE
# without the done mask) every seed stalls at 0.9533.  The bound sits between the two, 0.011
# from each.
WEEK_V2_PPO = {"budget_steps": 300_000, "n_chunks": 2}
WEEK_V2_MIN_RATIO = 0.965


@pytest.mark.slow
def test_ppo_on_week_v2_reaches_the_measured_bound():
    valuer = T.policy_valuer("week_v2")
    cfg = T.default_config("ppo", "week_v2", **WEEK_V2_PPO)
    trainer, init, chunk, greedy, _ = T.compiled_trainer("ppo", "week_v2", cfg, 2)
    carry = init(T.seed_keys(2))
    for _ in range(trainer.n_chunks):
        carry, _ = chunk(carry)
    optimal = valuer.optimal().exact_score
    scores = [
        valuer.evaluate(
            T.make_act_batch(greedy, T.seed_slice(trainer.policy_params(carry), i))
        ).exact_score
        for i in range(2)
    ]
    for score in scores:
        assert score >= WEEK_V2_MIN_RATIO * optimal, (scores, optimal)


def test_table_valuer_values_a_network_policy_as_the_host_solver(solver_week_v2):
    """On week_v2 the learners are valued on the compiled tables; a network's greedy policy
    (which reads observations, not state ids) gets the host solver's exact evaluation, field by
    field, and so does the optimum."""
    from tests.test_baselines import _assert_same_evaluation

    params = presets.week_v2()
    fast = T.policy_valuer("week_v2")
    host = T.PolicyValuer(params, solver_week_v2, tables=False)
    assert fast.tables and not host.tables
    cfg = T.default_config("ppo", "week_v2", **TINY["ppo"])
    trainer, init, _, greedy, _ = T.compiled_trainer("ppo", "week_v2", cfg, 2)
    carry = init(T.seed_keys(2))
    scores = []
    for i in range(2):
        act = T.make_act_batch(greedy, T.seed_slice(trainer.policy_params(carry), i))
        got = fast.evaluate(act)
        _assert_same_evaluation(got, host.evaluate(act))
        scores.append(got.exact_score)
    assert scores[0] != scores[1]  # two different untrained networks: the check sees the policy
    # the learning curve's pass: both seeds' networks at once (vmapped), the same scores
    assert fast.exact_scores(greedy, trainer.policy_params(carry), 2) == scores
    _assert_same_evaluation(fast.optimal(), host.optimal())


# ---------------------------------------------------------------------------------------------
# vmap over seeds == each seed alone
# ---------------------------------------------------------------------------------------------


def _assert_same_run(a, b) -> None:
    """Integer and boolean state (environment states, keys, counters, replay indices) must be
    identical, i.e. the same weeks were played with the same actions; floats may differ in the
    last bits, because XLA rounds a batched matrix product differently from a single one."""
    la, lb = _leaves(a), _leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        assert x.shape == y.shape and x.dtype == y.dtype
        if np.issubdtype(x.dtype, np.floating):
            np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)
        else:
            np.testing.assert_array_equal(x, y)


def _check_together_vs_alone(trainer, greedy, together, m2, alone, m1) -> None:
    _assert_same_run(T.seed_slice(together, 1), alone)
    _assert_same_run(T.seed_slice(m2, 1), m1)
    obs = jax.vmap(observe_random_state)(jax.random.split(jax.random.PRNGKey(0), 512))
    np.testing.assert_array_equal(
        greedy(T.seed_slice(trainer.policy_params(together), 1), obs),
        greedy(trainer.policy_params(alone), obs),
    )
    # the two seeds really are different runs
    p = _leaves(trainer.policy_params(together))
    assert any(not np.array_equal(x[0], x[1]) for x in p)


@pytest.mark.parametrize("algo", ["q", "dqn"])
def test_vmap_over_seeds_equals_each_seed_alone(algo):
    """Seeds 7 and 8 trained together (one vmapped program) vs seed 8 trained alone
    (`wlf train --seeds 1 --first-seed 8`)."""
    cfg = _config(algo, TINY[algo])
    trainer, init2, chunk2, greedy, _ = T.compiled_trainer(algo, PRESET, cfg, 2)
    _, init1, chunk1, _, _ = T.compiled_trainer(algo, PRESET, cfg, 1)
    together, alone = init2(T.seed_keys(2, first_seed=7)), init1(T.seed_keys(1, first_seed=8))
    for _ in range(trainer.n_chunks):
        together, m2 = chunk2(together)
        alone, m1 = chunk1(alone)
    _check_together_vs_alone(
        trainer, greedy, together, m2, T.seed_slice(alone, 0), T.seed_slice(m1, 0)
    )


def test_ppo_make_train_alone_equals_the_vmapped_chunked_run():
    """PPO's pure ``train(key)`` (``make_ppo_train``, jitted whole) for seed 8 alone equals seed 8
    of the two seeds trained together, chunk by chunk, by `wlf train`."""
    cfg = _config("ppo", TINY["ppo"])
    trainer, init2, chunk2, greedy, _ = T.compiled_trainer("ppo", PRESET, cfg, 2)
    together = init2(T.seed_keys(2, first_seed=7))
    m2 = []
    for _ in range(trainer.n_chunks):
        together, m = chunk2(together)
        m2.append(m)
    m2 = jax.tree_util.tree_map(lambda *x: jnp.stack(x, axis=1), *m2)  # (seeds, chunks)
    alone, m1 = jax.jit(ppo.make_ppo_train(cfg, presets.seed_v1()))(T.seed_keys(1, first_seed=8)[0])
    assert np.asarray(m1["train_score"]).shape == (trainer.n_chunks,)
    _check_together_vs_alone(trainer, greedy, together, m2, alone, m1)


# ---------------------------------------------------------------------------------------------
# checkpoints and resume
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("algo", ["q", "dqn", "ppo"])
def test_stop_and_resume_gives_the_uninterrupted_parameters(tmp_path, algo):
    common = dict(preset=PRESET, seeds=2, overrides=TINY[algo], exact_curve=False, evaluate=False)
    T.run_training(algo, out=tmp_path / "whole", **common)
    stopped = T.run_training(algo, out=tmp_path / "part", stop_after_chunks=1, **common)
    assert stopped["chunks_done"] == 1 and not stopped["complete"]
    T.run_training(algo, resume=tmp_path / "part", evaluate=False)
    meta_a, state_a = T.read_checkpoint(tmp_path / "whole" / T.CHECKPOINT)
    meta_b, state_b = T.read_checkpoint(tmp_path / "part" / T.CHECKPOINT)
    assert meta_a["chunks_done"] == meta_b["chunks_done"] == meta_a["n_chunks"]
    _assert_same(state_a, state_b)
    assert meta_a["curve"]["train_scores"] == meta_b["curve"]["train_scores"]


@pytest.mark.slow
def test_killed_process_resumes_to_the_uninterrupted_result(tmp_path):
    """A real SIGKILL of `wlf train` after its second checkpoint, then `--resume`."""
    settings = TINY["q"]
    sets = [a for k, v in settings.items() for a in ("--set", f"{k}={v}")]
    cmd = [
        sys.executable,
        "-m",
        "experiments.cli",
        "train",
        "q",
        "--preset",
        PRESET,
        "--seeds",
        "2",
        "--out",
        str(tmp_path / "killed"),
        "--eval-weeks",
        "1000",
        *sets,
    ]
    code = (
        "import sys; from experiments import cli, train; real = train.run_training; "
        "train.run_training = lambda *a, **k: real(*a, **{**k, 'kill_after_chunks': 2}); "
        f"sys.exit(cli.main({cmd[3:]!r}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    meta, _ = T.read_checkpoint(tmp_path / "killed" / T.CHECKPOINT)
    assert meta["chunks_done"] == 2
    assert not (tmp_path / "killed" / "result.json").exists()

    resumed = T.run_training("q", resume=tmp_path / "killed", eval_weeks=1000)
    whole = T.run_training(
        "q", preset=PRESET, seeds=2, overrides=settings, out=tmp_path / "whole", eval_weeks=1000
    )
    _, state_a = T.read_checkpoint(tmp_path / "killed" / T.CHECKPOINT)
    _, state_b = T.read_checkpoint(tmp_path / "whole" / T.CHECKPOINT)
    _assert_same(state_a, state_b)
    assert resumed["per_seed"] == whole["per_seed"]
    assert resumed["env_steps"] == whole["env_steps"]
    for name in ("result.json", "curve.json", "curve.csv", "curve.png"):
        assert (tmp_path / "killed" / name).exists()
    curve = json.loads((tmp_path / "killed" / "curve.json").read_text())
    assert len(curve["env_steps"]) == settings["n_chunks"] + 1 == len(curve["scores"][0])


def test_checkpoint_write_is_atomic_and_sparse_tables_round_trip(tmp_path):
    table = np.zeros((100_000, 3), np.float32)
    table[[5, 77, 99_999], 1] = [1.5, -2.0, 3.25]
    carry = {"q": jnp.asarray(table), "step": jnp.int32(4), "key": jax.random.PRNGKey(3)}
    path = tmp_path / T.CHECKPOINT
    T.save_checkpoint(path, {"chunks_done": 1}, carry)
    T.save_checkpoint(path, {"chunks_done": 2}, carry)  # replaces the file in one step
    assert sorted(p.name for p in tmp_path.iterdir()) == [T.CHECKPOINT]  # no temporary left over
    meta, state = T.read_checkpoint(path)
    assert meta == {"chunks_done": 2}
    _assert_same(T.restore_carry(carry, state), carry)
    assert path.stat().st_size < table.nbytes // 20


# ---------------------------------------------------------------------------------------------
# the command, the loader and the discretisation
# ---------------------------------------------------------------------------------------------


def test_wlf_train_writes_result_curve_and_loads_as_a_policy(tmp_path, valuer):
    from experiments.cli import main

    out = tmp_path / "run"
    sets = [a for k, v in TINY["ppo"].items() for a in ("--set", f"{k}={v}")]
    code = main(
        [
            "train",
            "ppo",
            "--preset",
            PRESET,
            "--seeds",
            "2",
            "--out",
            str(out),
            "--json",
            str(tmp_path / "r.json"),
            "--eval-weeks",
            "2000",
            *sets,
        ]
    )
    assert code == 0
    res = json.loads((tmp_path / "r.json").read_text())
    for key in (
        "algo",
        "preset",
        "seeds",
        "wall_s",
        "compile_s",
        "env_steps",
        "optimal_score",
        "final_score_mean",
        "final_score_ci95",
        "ratio_to_optimal",
        "per_seed",
    ):
        assert key in res
    assert res["algo"] == "ppo" and res["preset"] == PRESET and res["seeds"] == 2
    assert len(res["per_seed"]) == 2 and res["env_steps"] == TINY["ppo"]["budget_steps"]
    assert res["ratio_to_optimal"] == pytest.approx(res["final_score_mean"] / res["optimal_score"])
    assert 0 <= res["compile_s"] <= res["wall_s"]
    # the sampled estimate agrees with the exact value of each seed
    for exact, mean, ci in zip(
        res["per_seed"], res["sampled"]["per_seed_mean"], res["sampled"]["per_seed_ci95"]
    ):
        assert abs(exact - mean) < 4 * ci + 1e-3
    curve = json.loads((out / "curve.json").read_text())
    n_points = TINY["ppo"]["n_chunks"] + 1
    assert (
        len(curve["scores"]) == 2 and len(curve["scores"][0]) == len(curve["env_steps"]) == n_points
    )
    assert curve["scores"][0][-1] == pytest.approx(res["per_seed"][0])
    assert (out / "curve.png").stat().st_size > 1000
    name, act = T.load_trained(out)
    assert name.startswith("ppo")
    assert valuer.evaluate(act).exact_score == pytest.approx(
        res["per_seed"][res["representative_seed"]]
    )


def test_load_trained_refuses_an_unfinished_run(tmp_path):
    T.run_training(
        "q",
        preset=PRESET,
        seeds=1,
        overrides=TINY["q"],
        out=tmp_path / "part",
        stop_after_chunks=1,
        exact_curve=False,
    )
    with pytest.raises(ValueError, match="resume"):
        T.load_trained(tmp_path / "part")
    with pytest.raises(FileNotFoundError):
        T.load_trained(tmp_path / "nothing")


def test_bad_arguments_are_rejected_clearly(tmp_path):
    with pytest.raises(ValueError, match="unknown algorithm"):
        T.default_config("sarsa", PRESET)
    with pytest.raises(ValueError, match="unknown settings"):
        T.default_config("ppo", PRESET, learning_rate=1.0)
    with pytest.raises(ValueError, match="budget_steps"):
        T.default_config("q", PRESET, budget_steps=0)
    with pytest.raises(KeyError, match="unknown preset"):
        T.run_training("q", preset="week_v9", out=tmp_path / "x")


def test_discretisation_rows_are_distinct_and_in_range():
    from agents.exact import ExactSolver, weeks_to_obs

    disc = tabular_q.Discretisation()
    solver = ExactSolver(presets.seed_v1())
    weeks = [w for _, w in solver.initial()]
    obs = weeks_to_obs(weeks, presets.seed_v1())
    rows = np.asarray(tabular_q.discretise(jnp.asarray(obs), disc))
    assert rows.min() >= 0 and rows.max() < disc.rows
    # Monday morning in seed_v1 is always E1 at stage 0, same energy, sprint and flags
    assert len(set(rows.tolist())) == 1
    # changing one part of the observation changes the row
    o = obs[:1].copy()
    base = int(tabular_q.discretise(jnp.asarray(o), disc)[0])
    for block, value in (("energy", 0.40), ("sprint_health", 0.50), ("progress", 3 / 14)):
        p = o.copy()
        p[0, tabular_q._OFF[block]] = value
        assert int(tabular_q.discretise(jnp.asarray(p), disc)[0]) != base
    ties = np.asarray(tabular_q.best_action(jnp.zeros((disc.rows, 3)), jnp.arange(3000)))
    counts = np.bincount(ties, minlength=3)
    assert counts.min() > 800  # untrained rows act pseudo-randomly, not "always action 0"
