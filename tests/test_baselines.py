"""week_v2's design properties (SPEC §3.3) hold on exact values; the solver is exact."""

from __future__ import annotations

import numpy as np
import pytest

from agents.exact import ExactSolver, exact_scores, fixed_map_policy, uniform_policy
from agents.fixed import action_map
from experiments.compare import best_fixed_map, design_properties
from wlf_jax import presets
from wlf_jax.compiled import fixed_order
from wlf_jax.params import keep_events


@pytest.fixture(scope="module")
def week_v2_evaluations(solver_week_v2):
    """The host solver's exact evaluation of every built-in agent on week_v2."""
    solver = solver_week_v2
    evals = {
        "optimal": solver.evaluate(solver.optimal_policy()),
        "myopic": solver.evaluate(solver.myopic_policy()),
        "random": solver.evaluate(uniform_policy()),
    }
    for name in ("accept_all", "decline_all", "ignore_all", "strategic"):
        evals[name] = solver.evaluate(fixed_map_policy(action_map(name)))
    return evals


@pytest.fixture(scope="module")
def week_v2_exact(solver_week_v2, week_v2_evaluations):
    params = presets.week_v2()
    exact = {k: ev.exact_score for k, ev in week_v2_evaluations.items()}
    _, exact["best_fixed_map"], _ = best_fixed_map(params)
    return solver_week_v2, exact


def test_design_properties_hold_on_week_v2(week_v2_exact):
    _, exact = week_v2_exact
    props = design_properties(exact)
    failing = {k: v for k, v in props.items() if not v["holds"]}
    assert not failing, failing


def test_design_properties_fail_on_seed_v1(solver_seed_v1):
    """The original rule book has one dominant action per event: the properties must NOT hold
    there (so the check above can fail)."""
    solver = solver_seed_v1
    opt = solver.evaluate(solver.optimal_policy()).exact_score
    strat = solver.evaluate(fixed_map_policy(action_map("strategic"))).exact_score
    assert abs(opt - strat) < 1e-9  # a fixed map is exactly optimal in seed_v1
    assert (
        design_properties(
            {
                "optimal": opt,
                "best_fixed_map": strat,
                "myopic": opt,
                "accept_all": 0.4,
                "decline_all": 0.6,
                "ignore_all": 0.47,
                "random": 0.48,
            }
        )["state_matters"]["holds"]
        is False
    )


def test_optimal_value_equals_the_return_of_its_policy(week_v2_exact):
    solver, exact = week_v2_exact
    ev = solver.evaluate(solver.optimal_policy())
    assert abs(ev.exact_return - solver.value()) < 1e-9
    # potential-based shaping: return = final rubric - Φ(Monday morning)
    w0 = solver.initial()[0][1]
    assert abs(ev.exact_return - (ev.exact_score - solver.ref.score(w0))) < 1e-9
    # nothing beats the optimum, and the optimum beats every fixed agent
    assert all(v <= exact["optimal"] + 1e-12 for v in exact.values())


def _brute_force(params, events_kept):
    """Enumerate every deterministic history-dependent policy on a reduced week by recursion
    over (action, chance) without any merging; returns the optimal expected return."""
    from wlf_jax.params import to_python
    from wlf_jax.reference import ReferenceWeek

    ref = ReferenceWeek(to_python(params))

    def best(w):
        if w.done:
            return 0.0
        vals = []
        e = w.slot_event[w.slot]
        for a in range(3):
            p = ref.r["alt_prob"][e][a]
            v = 0.0
            for prob, alt in ((1 - p, False), (p, True)):
                if prob > 0:
                    nw, r = ref.apply(w, a, alt)
                    v += prob * (r + best(nw))
            vals.append(v)
        return max(vals)

    se = [e if e in events_kept else -1 for e in ref.r["slot_event"]]
    return best(ref.reset(se, [1.0] * 13))


# event indices: 0-6 = E1..E7; 7 relapse, 8 Slack follow-up, 9 re-escalation, 10 leave
# conflict, 11 night incident, 12 Thursday exhaustion
@pytest.mark.parametrize("kept", [(0, 1, 2), (0, 3, 7, 10), (5, 6, 11, 12), (1, 2, 8, 9)])
def test_solver_matches_brute_force_on_reduced_weeks(kept):
    reduced = keep_events(presets.week_v2(), kept)
    solver = ExactSolver(reduced).solve()
    assert abs(solver.value() - _brute_force(reduced, kept)) < 1e-9


def test_pattern_enumeration_matches_the_solver_for_fixed_maps():
    params = presets.week_v2()
    solver = ExactSolver(params)
    maps = np.stack([action_map(n) for n in ("accept_all", "strategic", "ignore_all")])
    scores, returns = exact_scores(params, maps)
    for m, s, r in zip(maps, scores, returns):
        ev = solver.evaluate(fixed_map_policy(m))
        assert abs(ev.exact_score - s) < 1e-5 and abs(ev.exact_return - r) < 1e-5


def test_seed_v1_pattern_enumeration_covers_every_order():
    from agents.exact import pattern_scenarios

    pats = pattern_scenarios(presets.seed_v1())
    assert len(pats.slot_event) == 720 * 2
    assert abs(pats.order_weight.sum() - 2.0) < 1e-9  # 720 orders x 2 leave outcomes


@pytest.mark.parametrize("preset", ["seed_v1", "week_v2"])
def test_jax_states_convert_to_solver_states(preset):
    import json

    import jax

    from agents.exact import state_key
    from wlf_jax import WorkWeek
    from wlf_jax.convert import week_from_state
    from wlf_jax.params import to_python
    from wlf_jax.reference import ReferenceWeek, week_from_json, week_to_json

    params = presets.get(preset)
    env, ref = WorkWeek(), ReferenceWeek(to_python(params))
    rng = np.random.default_rng(0)
    for k in range(10):
        _, s = env.reset(jax.random.key(k), params)
        w = ref.reset(np.asarray(s.slot_event).tolist(), np.asarray(s.uniforms).tolist())
        while not w.done:
            converted = week_from_state(s, params)
            assert state_key(converted) == state_key(w) and converted.values == w.values
            assert week_from_json(json.loads(json.dumps(week_to_json(w)))) == w
            a = int(rng.integers(3))
            w, _ = ref.step(w, a)
            _, s, *_ = env.step_env(None, s, a, params)


def test_q_of_a_played_seed_v1_week_hides_the_future_order(solver_seed_v1):
    """A week played from a scenario knows its future order; Q* must not use it."""
    solver = solver_seed_v1
    ref = solver.ref
    a = ref.reset([0, 1, 2, 3, 4, 5, 6] + [-1] * 7, [0.5] * 13)
    b = ref.reset([0, 6, 5, 4, 3, 2, 1] + [-1] * 7, [0.5] * 13)
    assert solver.q(a) == solver.q(b)
    assert abs(max(solver.q(a)) - solver.value()) < 1e-12


def _assert_same_evaluation(table, host, atol: float = 2e-6) -> None:
    """Every field of two :class:`Evaluation` s agrees (float32 tables vs float64 host)."""
    for field in ("exact_return", "exact_score", "early_end_prob"):
        assert getattr(table, field) == pytest.approx(getattr(host, field), abs=atol), field
    for k, v in host.components.items():
        assert table.components[k] == pytest.approx(v, abs=atol), k
    np.testing.assert_allclose(table.energy_by_day, host.energy_by_day, atol=atol)
    assert table.action_freq.keys() == host.action_freq.keys()
    for k, v in host.action_freq.items():
        np.testing.assert_allclose(table.action_freq[k], v, atol=atol, err_msg=k)
    assert table.event_prob.keys() == host.event_prob.keys()
    for k, v in host.event_prob.items():
        assert table.event_prob[k] == pytest.approx(v, abs=atol), k


def test_compiled_tables_value_every_agent_as_the_host_solver(week_v2_evaluations):
    """Each field of the exact evaluation on the compiled tables (agents.exact.tables) equals
    the host solver's, for state-dependent (optimal, myopic), stochastic (random) and fixed
    agents; the tables' optimal and myopic actions are the host solver's."""
    from agents.exact import tables as TB
    from wlf_jax.compiled import compiled_for

    rules = compiled_for("week_v2")
    uniform = np.full((rules.n_states, 3), 1.0 / 3.0, np.float32)
    policies = {
        "optimal": TB.optimal_policy(rules),
        "myopic": TB.myopic_policy(rules),
        "random": uniform,
        **{n: TB.map_policy(rules, action_map(n)) for n in ("accept_all", "decline_all", "ignore_all", "strategic")},
    }  # fmt: skip
    for name, host in week_v2_evaluations.items():
        _assert_same_evaluation(TB.evaluate(rules, policies[name]), host)


def test_a_wrong_policy_table_is_told_apart():
    """The comparison above can fail: one state's action changed on the optimal path moves
    the exact value."""
    from agents.exact import tables as TB
    from wlf_jax.compiled import compiled_for

    rules = compiled_for("week_v2")
    opt = np.asarray(TB.optimal_policy(rules)).copy()
    base = TB.evaluate(rules, opt)
    opt[int(rules.initial)] = (opt[int(rules.initial)] + 1) % 3
    assert TB.evaluate(rules, opt).exact_score < base.exact_score - 1e-4


def test_many_policies_scored_in_one_pass_equal_each_evaluation():
    """``tables.exact_scores`` (the learning curve's batched pass) gives each policy's
    ``evaluate(...).exact_score`` exactly, for tables that differ off and on the optimal path."""
    from agents.exact import tables as TB
    from wlf_jax.compiled import compiled_for

    rules = compiled_for("week_v2")
    rng = np.random.default_rng(0)
    opt = np.asarray(TB.optimal_policy(rules))
    tweaked = opt.copy()
    tweaked[int(rules.initial)] = (tweaked[int(rules.initial)] + 1) % 3
    policies = np.stack([opt, tweaked, np.asarray(TB.myopic_policy(rules)),
                         rng.integers(0, 3, rules.n_states)]).astype(np.int32)  # fmt: skip
    got = TB.exact_scores(rules, policies)
    assert got == [TB.evaluate(rules, p).exact_score for p in policies]
    assert len(set(got)) == 4  # four different values: a pass that mixed them up would fail


def test_map_scores_on_the_tables_equal_pattern_enumeration():
    from agents.exact import relevant_maps
    from agents.exact.tables import map_scores
    from wlf_jax.compiled import compiled_for

    params = presets.week_v2()
    maps = relevant_maps(params)[::4001]
    scores, returns = map_scores(compiled_for("week_v2"), params, maps, batch=16)
    want_scores, want_returns = exact_scores(params, maps)
    np.testing.assert_allclose(scores, want_scores, atol=2e-6)
    np.testing.assert_allclose(returns, want_returns, atol=2e-6)


def test_baselines_on_the_tables_equal_the_host_solver_run():
    """`wlf baselines` on week_v2 (compiled tables) gives the host solver's exact values for
    every agent, with sampled weeks that agree within their confidence intervals."""
    from experiments.compare import run_baselines

    fast = run_baselines("week_v2", weeks=2000, seed=1)
    assert fast["solver"].startswith("compiled tables") and fast["states"] == 151_807
    for name, a in fast["agents"].items():
        assert a["weeks"] == 2000
        assert abs(a["mean_score"] - a["exact_score"]) <= 4 * a["ci95_score"] + 1e-6, name
    _, best_score, n_maps = best_fixed_map(presets.week_v2())
    assert fast["agents"]["best_fixed_map"]["exact_score"] == pytest.approx(best_score, abs=1e-9)
    assert n_maps == fast["fixed_maps_searched"] == 99_225


def test_solved_values_round_trip_through_the_disk_cache(tmp_path, monkeypatch):
    """A second process solving the same rule book reads the first one's values (exactly
    equal); another rule book, or a damaged file, is solved anew; ``WLF_CACHE=`` keeps
    nothing."""
    from agents.exact.host import memo_path

    monkeypatch.setenv("WLF_CACHE", str(tmp_path))
    params = presets.week_v2()

    def reduced(kept):
        return keep_events(params, kept)

    small, other = reduced((0, 1, 2, 8, 9)), reduced((0, 1, 2))
    first = ExactSolver(small).solve()
    assert first.solved_from == "solve" and memo_path(small).is_file()
    again = ExactSolver(small).solve()
    assert again.solved_from == "cache"
    assert again._qmemo == first._qmemo and again.value() == first.value()
    assert memo_path(other) != memo_path(small)
    assert ExactSolver(other).solve().solved_from == "solve"
    memo_path(small).write_bytes(b"not a pickle")
    assert ExactSolver(small).solve().solved_from == "solve"
    assert ExactSolver(small).solve().solved_from == "cache"  # rewritten by the solve above
    monkeypatch.setenv("WLF_CACHE", "")
    assert memo_path(small) is None
    assert ExactSolver(small).solve().solved_from == "solve"


@pytest.mark.parametrize("preset", ["seed_v1", "week_v2"])
def test_best_fixed_map_round_trips_through_the_disk_cache(tmp_path, monkeypatch, preset):
    """The search for the best fixed map runs once per rule book and code, by pattern
    enumeration (random order, seed_v1) or on the compiled tables (fixed order, week_v2): a
    second call reads the same map, score and count; another rule book, a damaged file or
    ``WLF_CACHE=`` searches anew."""
    import agents.exact.tables as TB
    import experiments.compare as compare

    monkeypatch.setenv("WLF_CACHE", str(tmp_path))
    params = presets.get(preset)
    assert fixed_order(params) == (preset == "week_v2")

    def reduced(kept):
        return keep_events(params, kept)

    small, other = reduced((0, 1, 2, 3)), reduced((0, 1, 2))
    searches = []
    # the search that does the work: patterns (compare.exact_scores) or tables (map_scores)
    owner, fn = (TB, "map_scores") if fixed_order(params) else (compare, "exact_scores")
    real = getattr(owner, fn)

    def spy(*args, **kw):
        searches.append(args)
        return real(*args, **kw)

    monkeypatch.setattr(owner, fn, spy)
    first = best_fixed_map(small)
    assert len(searches) == 1 and compare._search_cache(small).is_file()
    again = best_fixed_map(small)
    assert len(searches) == 1
    assert (again[0] == first[0]).all() and again[1:] == first[1:] and again[0].dtype == np.int32
    assert compare._search_cache(other) != compare._search_cache(small)
    best_fixed_map(other)
    assert len(searches) == 2
    compare._search_cache(small).write_text("{not json")
    assert best_fixed_map(small)[1] == first[1] and len(searches) == 3
    best_fixed_map(small)
    assert len(searches) == 3  # rewritten by the search above
    monkeypatch.setenv("WLF_CACHE", "")
    assert compare._search_cache(small) is None
    best_fixed_map(small)
    assert len(searches) == 4


def test_the_best_map_cache_is_keyed_by_the_code_of_both_searches(monkeypatch):
    """An edit to either search (pattern enumeration, the compiled tables and their format) or
    to the dynamics gives the cached best map a new name, so a stale result is never read."""
    from pathlib import Path

    import agents.exact.patterns as patterns
    import agents.exact.tables as tables
    import experiments.compare as compare
    import wlf_jax.compiled as compiled
    from wlf_jax import dynamics

    seen = []
    real = compiled.keyed_path

    def spy(params, kind, code_files):
        seen.extend(Path(f).resolve() for f in code_files)
        return real(params, kind, code_files)

    monkeypatch.setattr(compiled, "keyed_path", spy)
    compare._search_cache(presets.week_v2())
    for module in (patterns, tables, compiled, compare, dynamics):  # the rule book: its fingerprint
        assert Path(module.__file__).resolve() in seen, module.__name__
