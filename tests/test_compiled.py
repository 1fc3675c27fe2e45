"""The compiled form of a rule book (wlf_jax/compiled.py) against the general dynamics.

* every reachable decision state of week_v2, every action and both outcomes: the tables give the
  observation, reward, end, score and early end that ``dynamics.transition`` gives;
* V* by value iteration on the tables equals the host solver's (plain-Python dynamics);
* weeks replayed from the same scenarios are the same weeks in both environments;
* it is a gymnax environment (wrappers, auto-reset), and random event orders are refused.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.conftest import xla_flags_without_devices
from wlf_jax import WorkWeek, dynamics, observe, presets
from wlf_jax.compiled import (
    CompiledState,
    CompiledWeek,
    UnsupportedRulesError,
    compile_rules,
    optimal_values,
    table_step,
)
from wlf_jax.events import N_ACTIONS, N_EVENTS
from wlf_jax.params import MAX_STEPS
from wlf_jax.reward import rubric_total
from wlf_jax.rollout import replay_scenario
from wlf_jax.state import sample_scenario

REWARD_ATOL = 1e-6  # float32 rounding of the same rubric difference in two compiled programs


@pytest.fixture(scope="module")
def compiled():
    return compile_rules(presets.week_v2(), return_states=True)


def test_decision_state_count_matches_the_host_solver(compiled):
    """151,807 is the host solver's count of week_v2's decision states when it solves the week
    alone (``wlf baselines --host-solver``; the session's shared solver memoises more states
    once other tests ask it about off-grid weeks, so its count depends on test order)."""
    rules, _ = compiled
    decisions = int(np.sum(~np.asarray(rules.done)))
    assert decisions == 151_807
    assert rules.layers[0] == 0 and rules.layers[-1] == rules.n_states
    assert np.all(np.diff(rules.layers) > 0)


def test_every_reachable_state_action_and_outcome_matches_the_dynamics(compiled):
    rules, states = compiled
    params = presets.week_v2()
    live = np.flatnonzero(~np.asarray(states.done))
    nxt_tab = np.asarray(rules.next_id).reshape(-1, N_ACTIONS, 2)
    rew_tab = np.asarray(rules.reward).reshape(-1, N_ACTIONS, 2)
    alt_tab = np.asarray(rules.alt_prob).reshape(-1, N_ACTIONS)
    obs_tab, done_tab = np.asarray(rules.obs), np.asarray(rules.done)
    score_tab, early_tab = np.asarray(rules.score), np.asarray(rules.early_end)

    @jax.jit
    def general(state, a, uniform):
        s = state.replace(uniforms=jnp.full((N_EVENTS,), uniform))
        nxt, reward, info = dynamics.transition(s, a, -1.0, params)
        return (
            observe(nxt, params),
            reward,
            nxt.done,
            rubric_total(nxt, params),
            nxt.early_end,
            info,
        )

    batched = jax.jit(jax.vmap(general, in_axes=(0, None, None)))
    chunk = 1 << 15
    for start in range(0, len(live), chunk):
        ids = live[start : start + chunk]
        part = jax.tree_util.tree_map(lambda x, ids=ids: x[ids], states)
        for a in range(N_ACTIONS):
            for alt, uniform in ((0, 1.0), (1, 0.0)):
                obs, reward, done, score, early, info = batched(part, a, uniform)
                taken = np.asarray(info["alt_outcome"])
                # the outcome the uniform forces is the one the tables take for it
                np.testing.assert_array_equal(taken, uniform < alt_tab[ids, a])
                nid = nxt_tab[ids, a, alt]
                np.testing.assert_array_equal(np.asarray(obs), obs_tab[nid])
                np.testing.assert_array_equal(np.asarray(done), done_tab[nid])
                np.testing.assert_allclose(
                    np.asarray(reward), rew_tab[ids, a, alt], atol=REWARD_ATOL
                )
                np.testing.assert_allclose(np.asarray(score), score_tab[nid], atol=REWARD_ATOL)
                np.testing.assert_array_equal(np.asarray(early), early_tab[nid])


def test_finished_weeks_absorb(compiled):
    rules, _ = compiled
    done = np.flatnonzero(np.asarray(rules.done))
    nxt = np.asarray(rules.next_id).reshape(-1, N_ACTIONS * 2)[done]
    assert np.all(nxt == done[:, None])
    assert np.all(np.asarray(rules.reward).reshape(-1, N_ACTIONS * 2)[done] == 0.0)


def test_a_table_step_reads_its_row_as_the_views_do(compiled):
    """``table_step`` (one gather of a 16-byte row, the alternative's probability from the
    (event, action) index in its bits) equals the flat views the solvers read, for every id,
    action and outcome: a draw of 1 never takes the alternative, a draw of 0 takes it whenever
    it can happen."""
    rules, _ = compiled
    assert rules.packed.shape == (rules.n_states * N_ACTIONS, 4)
    n = rules.n_states * N_ACTIONS
    ids, actions = np.arange(n) // N_ACTIONS, np.arange(n) % N_ACTIONS
    p = np.asarray(rules.alt_prob)
    np.testing.assert_array_equal(
        p, np.asarray(presets.week_v2().alt_prob)[np.maximum(np.asarray(rules.event), 0)].ravel()
    )
    nxt, rew = np.asarray(rules.next_id).reshape(n, 2), np.asarray(rules.reward).reshape(n, 2)
    done_tab = np.asarray(rules.done)
    step = jax.jit(jax.vmap(table_step, in_axes=(None, 0, 0, None)))
    for uniform in (1.0, 0.0):
        nid, reward, done, alt = (np.asarray(x) for x in step(rules, ids, actions, uniform))
        want_alt = uniform < p
        np.testing.assert_array_equal(alt, want_alt)
        np.testing.assert_array_equal(nid, np.where(want_alt, nxt[:, 1], nxt[:, 0]))
        np.testing.assert_array_equal(reward, np.where(want_alt, rew[:, 1], rew[:, 0]))
        np.testing.assert_array_equal(done, done_tab[nid])
    assert p.max() > 0 and np.all(nxt < rules.n_states)


def test_value_iteration_on_the_tables_equals_the_host_solver(compiled, solver_week_v2):
    rules, _ = compiled
    q, v = optimal_values(rules)
    solver = solver_week_v2
    assert float(v[rules.initial]) == pytest.approx(solver.value(), abs=1e-5)
    (week,) = [w for _, w in solver.initial()]
    np.testing.assert_allclose(np.asarray(q[rules.initial]), solver.q(week), atol=1e-5)


def test_replayed_weeks_are_the_same_weeks(compiled):
    rules, _ = compiled
    params = presets.week_v2()
    env = CompiledWeek()
    n = 2048
    keys = jax.random.split(jax.random.key(7), n)

    def one(key):
        k_s, k_a = jax.random.split(key)
        scenario = sample_scenario(k_s, params)
        actions = jax.random.randint(k_a, (MAX_STEPS,), 0, N_ACTIONS)
        _, (g_obs, g_rew, g_done) = replay_scenario(
            scenario,
            params,
            choose=lambda s, a: a,
            xs=actions,
            record=lambda s, nxt, r, info: (observe(nxt, params), r, nxt.done),
        )

        def body(state, a):
            e = jnp.maximum(rules.event[state.id], 0)
            obs, nxt, r, done, _ = env.step_with_uniform(state, a, scenario.uniforms[e], rules)
            return nxt, (obs, r, done)

        _, (c_obs, c_rew, c_done) = jax.lax.scan(body, CompiledState(id=rules.initial), actions)
        return g_obs, g_rew, g_done, c_obs, c_rew, c_done

    g_obs, g_rew, g_done, c_obs, c_rew, c_done = jax.jit(jax.vmap(one))(keys)
    np.testing.assert_array_equal(np.asarray(g_obs), np.asarray(c_obs))
    np.testing.assert_array_equal(np.asarray(g_done), np.asarray(c_done))
    np.testing.assert_allclose(np.asarray(g_rew), np.asarray(c_rew), atol=REWARD_ATOL)
    assert np.asarray(g_done)[:, -1].all()


def test_gymnax_contract_and_auto_reset(compiled):
    from gymnax.wrappers.purerl import LogWrapper

    rules, _ = compiled
    env = LogWrapper(CompiledWeek())
    n, steps = 256, 40
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(jax.random.key(0), n), rules
    )
    assert obs.shape == (n, WorkWeek.obs_size)

    def body(state, key):
        ka, ks = jax.random.split(key)
        a = jax.random.randint(ka, (n,), 0, N_ACTIONS)
        obs, state, r, term, trunc, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
            jax.random.split(ks, n), state, a, rules
        )
        return state, (term, info["returned_episode_returns"], trunc)

    _, (term, returns, trunc) = jax.jit(
        lambda s: jax.lax.scan(body, s, jax.random.split(jax.random.key(1), steps))
    )(state)
    assert not np.asarray(trunc).any()
    # every week ends within MAX_STEPS decisions, and is then replaced by a fresh one
    assert np.asarray(term).sum(0).min() >= steps // MAX_STEPS
    finished = np.asarray(returns)[np.asarray(term)]
    assert np.all((finished > -1.0) & (finished < 1.0))


def test_random_event_order_is_refused():
    with pytest.raises(UnsupportedRulesError, match="fixed order"):
        compile_rules(presets.seed_v1())


def test_wlf_bench_json_has_forms_peers_and_devices(tmp_path):
    """A tiny `wlf bench` in its own process (so it can ask JAX for one device per core): every
    form and peer measured, the keys a user's scripts read, and the batch sharded."""
    import json
    import os
    import subprocess
    import sys

    out = tmp_path / "bench.json"
    env = dict(os.environ, XLA_FLAGS=xla_flags_without_devices())  # --devices asks for its own
    res = subprocess.run(
        [sys.executable, "-m", "experiments.cli", "bench", "--envs", "64", "--steps", "3",
         "--batches", "63,128", "--repeats", "1", "--python-seconds", "0.05", "--devices", "2",
         "--json", str(out)],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    r = json.loads(out.read_text())
    assert r["devices"] == 2
    assert set(r["forms"]) == {"general", "static", "compiled"}
    assert set(r["peers"]) == {"week_v2", "CartPole-v1", "Catch-bsuite"}
    assert r["jax_steps_per_s"] == max(
        b["steps_per_s"] for b in r["by_batch"] + [{"steps_per_s": r["forms"][r["fastest_form"]]}]
    )
    assert r["ratio"] == pytest.approx(r["jax_steps_per_s"] / r["python_steps_per_s"])
    assert all(v > 0 for v in [*r["forms"].values(), *r["peers"].values()])
    assert "CartPole-v1" in res.stdout and "x plain Python" in res.stdout
    # each batch size timed sharded over both devices and on one; 63 weeks, which two devices
    # do not divide, only on one; the best row (or the forms row at --envs 64) is named
    assert [(b["batch"], b["devices"]) for b in r["by_batch"]] == [(63, 1), (128, 2), (128, 1)]
    top = max(r["by_batch"], key=lambda b: b["steps_per_s"])
    if top["steps_per_s"] == r["jax_steps_per_s"]:
        assert (r["best_batch"], r["best_devices"]) == (top["batch"], top["devices"])
    else:
        assert r["jax_steps_per_s"] == r["forms"][r["fastest_form"]] > top["steps_per_s"]
        assert (r["best_batch"], r["best_devices"]) == (64, 2)
    assert f"x{r['best_devices']} of 2" in " ".join(res.stdout.split())  # rich wraps lines


def test_wlf_bench_on_a_random_order_rule_book_skips_the_compiled_form(tmp_path):
    from experiments.bench import run_bench

    r = run_bench("seed_v1", batches=(32,), python_seconds=0.05, n_envs=32, n_steps=2,
                  repeats=1, peers=(), forms=("general", "compiled"))  # fmt: skip
    assert set(r["forms"]) == {"general"} and r["fastest_form"] == "general"
    assert "fixed order" in r["forms_skipped"]["compiled"]


def test_the_bench_reads_compiled_tables_an_earlier_command_built(monkeypatch):
    """`wlf bench` takes the compiled form's tables from the on-disk cache (the demo's
    baselines, or an earlier bench, built them) instead of enumerating the week again."""
    from experiments.bench import week_form
    from wlf_jax import compiled as C

    params = presets.week_v2()
    built = C.load_or_compile(params)  # written to this test run's cache folder

    def no_compile(*a, **k):
        raise AssertionError("the tables were built again")

    monkeypatch.setattr(C, "compile_rules", no_compile)
    env, rules, static = week_form("compiled", params)
    assert isinstance(env, C.CompiledWeek) and not static
    assert rules.layers == built.layers
    np.testing.assert_array_equal(np.asarray(rules.next_id), np.asarray(built.next_id))


def test_the_bench_s_week_harness_plays_the_same_weeks_in_every_form(compiled):
    """The ``weeks`` harness of ``wlf bench`` counts real decisions only, and its one draw per
    week gives uniform actions and uniforms: over 4,096 random-policy weeks of week_v2 the
    compiled form (a uniform per step) and the general form (``sample_scenario``) make the same
    number of decisions per week on average, within 5 standard errors."""
    from experiments.bench import _week_draw, make_week_harness

    actions, uniforms = jax.vmap(lambda k: _week_draw(k, 3))(
        jax.random.split(jax.random.key(1), 20_000)
    )
    counts = np.bincount(np.asarray(actions).ravel(), minlength=4)
    assert counts[3] == 0 and np.all(np.abs(counts[:3] / counts.sum() - 1 / 3) < 0.005)
    u = np.asarray(uniforms)
    assert u.min() >= 0.0 and u.max() < 1.0 and abs(u.mean() - 0.5) < 0.005

    rules, _ = compiled
    params = presets.week_v2()
    keys = jax.random.split(jax.random.key(0), 4096)
    made = {}
    for form, env, env_params in (
        ("compiled", CompiledWeek("week_v2"), rules),
        ("general", WorkWeek(), params),
    ):
        made[form] = np.asarray(make_week_harness(form, env, env_params, len(keys))(keys))
    for n in made.values():
        assert n.min() >= 1 and n.max() <= MAX_STEPS
    se = np.sqrt(made["compiled"].var() / 4096 + made["general"].var() / 4096)
    assert abs(made["compiled"].mean() - made["general"].mean()) < 5 * se


def test_cached_tables_are_keyed_by_the_code_that_compiles_them_and_by_jax(tmp_path, monkeypatch):
    """The on-disk tables are read back only for the same rule book, the same code of the
    dynamics and of ``compile_rules`` (every module of wlf_jax) and the same JAX: an edit to that
    code, or another JAX, compiles again instead of reading stale tables."""
    from pathlib import Path

    import wlf_jax.compiled as C
    from wlf_jax.params import keep_events

    monkeypatch.setenv("WLF_CACHE", str(tmp_path))
    small = keep_events(presets.week_v2(), (0, 1, 2))
    assert Path(C.__file__).resolve() in [p.resolve() for p in C.dynamics_code()]
    code = tmp_path / "dynamics.py"
    code.write_text("one version")
    monkeypatch.setattr(C, "dynamics_code", lambda: [code])
    compiles = []
    real = C.compile_rules

    def spy(*args, **kw):
        compiles.append(args)
        return real(*args, **kw)

    monkeypatch.setattr(C, "compile_rules", spy)
    first = C.load_or_compile(small)
    again = C.load_or_compile(small)
    assert len(compiles) == 1
    assert np.array_equal(np.asarray(first.packed), np.asarray(again.packed))
    code.write_text("an edited version")
    C.load_or_compile(small)
    assert len(compiles) == 2
    monkeypatch.setattr(C.jax, "__version__", "0.0.0-other")
    C.load_or_compile(small)
    assert len(compiles) == 3
