"""Tests of the vmappable exact solver (agents.exact.tree, agents.exact.induction) and `wlf sensitivity`.

Longer than 400 lines on purpose: the vmappable solver and `wlf sensitivity` share the solved
fixtures (trees, exact values) that are costly to build, so they are tested together.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents.exact import ExactSolver, exact_scores, fixed_map_policy
from agents.exact import induction as X
from agents.fixed import FIXED_MAP_NAMES, action_map
from experiments import sensitivity as S
from experiments.sensitivity.design import stack_params
from experiments.sensitivity.sweep import check_trained, possible_chance, trained_scores
from tests.conftest import solved, xla_flags_with_devices
from wlf_jax import presets
from wlf_jax.events import EVENT_IDS, event_index
from wlf_jax.params import keep_events, replace

ROOT = Path(__file__).resolve().parents[1]
MAPS = np.stack([action_map(n) for n in FIXED_MAP_NAMES])


def reduced_week(keep: list[str]):
    """week_v2 with only the events ``keep`` scheduled (spawns of dropped events removed)."""
    return keep_events(presets.week_v2(), [event_index(e) for e in keep], name="reduced")


# Every mechanic in a week small enough for quick host solves: chance outcomes (E1, S1, E4, E6,
# E7, S5), spawns (staging relapse, leave conflict, night incident, exhaustion), days with
# recovery and the sleep debt of the late standup.  TINY keeps Tuesday to Thursday only.
MIXED = [
    "E1_staging",
    "S1_staging_relapse",
    "E4_leave",
    "S4_leave_conflict",
    "E6_oncall",
    "E7_standup",
    "S5_night_incident",
    "S6_thursday_exhaustion",
]
TINY = [
    "E4_leave",
    "S4_leave_conflict",
    "E6_oncall",
    "E7_standup",
    "S5_night_incident",
    "S6_thursday_exhaustion",
]
MICRO = ["E6_oncall", "E7_standup", "S5_night_incident", "S6_thursday_exhaustion"]


def perturbed(params, n: int, seed: int, spread: float = 1.0):
    """``n`` random valid rule books around ``params`` (every default group moved at once)."""
    groups = S.default_groups(params)
    rng = np.random.default_rng(seed)
    lo = np.array([g.low for g in groups])
    hi = np.array([g.high for g in groups])
    mid = S.identity_row(groups)
    X_ = mid + spread * (rng.uniform(lo, hi, (n, len(groups))) - mid)
    fields = S.apply_groups(S.base_fields(params), groups, X_)
    return stack_params(fields), fields


# ---------------------------------------------------------------------------------------------
# the JAX exact solver equals the host solver
# ---------------------------------------------------------------------------------------------


def test_tree_size_of_week_v2():
    size = X.tree_size(presets.week_v2())
    assert size["decision_nodes"] == 173_411 and size["leaves"] == 406_560 and size["levels"] == 13


def test_default_week_v2_equals_host_solver():
    params = presets.week_v2()
    host = {}
    # the host solver of the test run (tests/conftest.py): solved by whichever test asked first
    # or read from the run's disk cache; a solve (tens of seconds) runs beside the XLA compile
    worker = threading.Thread(target=lambda: host.setdefault("value", solved("week_v2").value()))
    worker.start()
    got = X.solve_one(params, arrival=False)
    worker.join()
    assert abs(float(got["optimal_return"]) - host["value"]) < 1e-5


def test_perturbed_rule_books_equal_host_solver():
    base = reduced_week(MIXED)
    stack, fields = perturbed(base, 4, seed=1)
    got = X.solve_one(stack, MAPS, arrival=False)
    assert len(set(np.round(got["optimal_score"], 6))) == 4  # four different rule books
    for i in range(4):
        book = replace(base, name=f"book{i}", **{k: v[i] for k, v in fields.items()})
        solver = ExactSolver(book)
        assert abs(float(got["optimal_return"][i]) - solver.value()) < 1e-5
        # Q* of Monday's first decision (expected return = expected score - Φ(Monday))
        ((_, w0),) = solver.initial()
        phi0 = float(got["optimal_score"][i] - got["optimal_return"][i])
        np.testing.assert_allclose(np.asarray(got["q_monday"][i]) - phi0, solver.q(w0), atol=1e-5)
        for amap, score in zip(MAPS, got["map_scores"][i]):
            assert abs(solver.evaluate(fixed_map_policy(amap)).exact_score - score) < 1e-5


def test_fixed_agents_equal_pattern_enumeration():
    base = reduced_week(MICRO)
    got = X.solve_one(base, MAPS, arrival=False)
    np.testing.assert_allclose(got["map_scores"], exact_scores(base, MAPS)[0], atol=1e-5)


def test_a_swept_probability_can_create_a_chance_outcome():
    # no_clearly_kindly has no alternative outcome by default; a "set"
    # group gives it one, and the tree grows the branch
    base = reduced_week(MICRO)
    e, a = event_index("E6_oncall"), 0
    assert float(base.alt_prob[e, a]) == 0.0
    group = S.RuleGroup("refusal_backlash", (S.Target("alt_prob", (e, a)),), "set", 0.2, 0.6)
    alt = S.RuleGroup("backlash_trust", (S.Target("alt_trust_delta", (e, a, 4)),), "set", -30, -10)
    chance = possible_chance(base, [group])
    assert chance[e, a]
    fields = S.apply_groups(S.base_fields(base), [group, alt], np.array([[0.2, -30], [0.6, -10]]))
    stack = stack_params(fields)
    got = X.solve_one_structure(stack, X.structure_of(base, chance))
    for i in range(2):
        book = replace(base, name=f"book{i}", **{k: v[i] for k, v in fields.items()})
        assert abs(float(got["optimal_return"][i]) - ExactSolver(book).value()) < 1e-5


def test_overnight_composition_equals_night_by_night_clamping():
    """One clip of the composed nights equals the dynamics' clamp after every night, also with
    negative recovery, penalties larger than the energy and several nights at once."""
    from types import SimpleNamespace

    rng = np.random.default_rng(7)
    n, b = 40, 16
    day = rng.integers(0, 5, n)
    next_day = np.minimum(day + rng.integers(0, 4, n), 4)
    recovery = rng.integers(-40, 61, (4, b))
    penalty = rng.integers(0, 81, b)
    energy = rng.integers(0, 101, (n, b))
    sleep = rng.integers(0, 2, (n, b))
    early = rng.random((n, b)) < 0.2
    rules = SimpleNamespace(recovery=jnp.asarray(recovery), sleep_debt_penalty=jnp.asarray(penalty))
    got = np.asarray(
        X._overnight(
            jnp.asarray(energy, X.SMALL),
            jnp.asarray(sleep, X.SMALL),
            jnp.asarray(early),
            day,
            next_day,
            rules,
        )
    )
    want = energy.copy()
    for i in range(n):
        for k in range(b):
            if early[i, k]:
                continue
            e = energy[i, k]
            for d in range(day[i], next_day[i]):
                e = min(
                    100,
                    max(0, e + recovery[d, k] - (penalty[k] if sleep[i, k] and d == day[i] else 0)),
                )
            want[i, k] = e
    assert (next_day - day > 1).any() and (want != energy).any()
    np.testing.assert_array_equal(got, want)


def test_vmap_over_params_equals_stacked_solve():
    base = reduced_week(MICRO)
    stack, _ = perturbed(base, 3, seed=5)
    tree = X.build_tree(X.structure_of(stack))
    vmapped = jax.jit(jax.vmap(lambda p: X.solve(p, tree, arrival=False)))(stack)
    stacked = X.solve_one(stack, arrival=False)
    for k in stacked:
        np.testing.assert_allclose(np.asarray(vmapped[k]), stacked[k], atol=1e-6)


def test_node_score_matches_rubric_total():
    from wlf_jax.reward import rubric_total
    from wlf_jax.state import EnvState

    params = presets.week_v2()
    rng = np.random.default_rng(0)
    n = 64
    nodes = {
        "energy": rng.integers(0, 101, (n, 1)).astype(np.int16),
        "sprint": rng.integers(0, 101, (n, 1)).astype(np.int16),
        "trust": rng.integers(0, 101, (n, 5, 1)).astype(np.int16),
        "staging": rng.integers(0, 2, (n, 1)).astype(np.int16),
        "sleep_debt": np.zeros((n, 1), np.int16),
        "quality_sum": rng.uniform(0, 8, (n, 1)).astype(np.float32),
        "boundary": rng.integers(-80, 150, (n, 1)).astype(np.int16),
    }
    count = rng.integers(1, 14, n).astype(np.float32)
    rules, _ = X.batch_last(params)
    got = np.asarray(
        X.node_score({k: jnp.asarray(v) for k, v in nodes.items()}, jnp.asarray(count), rules)
    )[:, 0]
    status = np.zeros((n, 5), np.int8)
    status[:, 0] = nodes["staging"][:, 0]

    def one(energy, sprint, trust, status, count, quality_sum, boundary):
        state = EnvState(
            energy=energy,
            sprint=sprint,
            trust=trust,
            drift=jnp.zeros(7, jnp.int32),
            status=status,
            pending=None,
            actions=None,
            slot=None,
            count=count,
            day=None,
            quality_sum=quality_sum,
            boundary=boundary,
            energy_by_day=None,
            done=None,
            early_end=None,
            slot_event=None,
            uniforms=None,
        )
        return rubric_total(state, params)

    want = jax.jit(jax.vmap(one))(
        jnp.asarray(nodes["energy"][:, 0], jnp.int32),
        jnp.asarray(nodes["sprint"][:, 0], jnp.int32),
        jnp.asarray(nodes["trust"][:, :, 0], jnp.int32),
        jnp.asarray(status),
        jnp.asarray(count, jnp.int32),
        jnp.asarray(nodes["quality_sum"][:, 0]),
        jnp.asarray(nodes["boundary"][:, 0], jnp.int32),
    )
    np.testing.assert_allclose(got, np.asarray(want), atol=1e-6)


def test_shuffled_preset_is_refused():
    with pytest.raises(X.UnsupportedPresetError, match="ExactSolver"):
        X.structure_of(presets.seed_v1())
    with pytest.raises(ValueError, match="fixed-schedule preset"):
        S.run_sensitivity(S.SweepConfig(preset="seed_v1", samples=2))


# ---------------------------------------------------------------------------------------------
# rule groups and sampled rule books
# ---------------------------------------------------------------------------------------------


def test_default_groups_cover_every_kind():
    groups = S.default_groups(presets.week_v2())
    names = {g.name for g in groups}
    assert "E6_oncall/yes_people_pleaser/energy" in names
    assert "E1_staging/delegate_oncall/chance" in names
    assert {"night/recovery", "rubric/weight/boundary_setting", "rubric/energy_thresholds"} <= names
    assert len(names) == len(groups)
    coarse = S.default_groups(presets.week_v2(), "event")
    assert "E6_oncall/energy" in {g.name for g in coarse} and len(coarse) < len(groups)


def test_sampled_rule_books_are_valid_even_at_extremes():
    params = presets.week_v2()
    groups = [
        dataclass_replace(g, low=0.0, high=10.0) if g.mode == "scale" else g
        for g in S.default_groups(params)
    ]
    rng = np.random.default_rng(0)
    X_ = np.array([[rng.uniform(g.low, g.high) for g in groups] for _ in range(16)])
    fields = S.apply_groups(S.base_fields(params), groups, X_)
    stack_params(fields)  # raises on any invalid field
    np.testing.assert_allclose(fields["rubric_weights"].sum(-1), 1.0, atol=1e-6)
    assert np.all(np.diff(fields["energy_thresholds"], axis=-1) <= 0)
    assert fields["energy_delta"].dtype == np.int32 and np.abs(fields["energy_delta"]).max() <= 100
    assert fields["alt_prob"].max() <= 1.0


def dataclass_replace(obj, **kw):
    """A copy of a frozen dataclass with some fields changed."""
    import dataclasses

    return dataclasses.replace(obj, **kw)


def test_identity_row_reproduces_the_default():
    params = presets.week_v2()
    groups = S.default_groups(params)
    fields = S.apply_groups(S.base_fields(params), groups, S.identity_row(groups)[None])
    for k, v in S.base_fields(params).items():
        np.testing.assert_array_equal(fields[k][0], v, err_msg=k)


# -- group files ------------------------------------------------------------------------------

GOOD = """
defaults = true

[[group]]
name = "E6_oncall/yes_people_pleaser/energy"
scale = [0.25, 2.0]

[[group]]
name = "late_night_costs"
shift = [-10, 10]
targets = [
  { field = "energy_delta", event = "E7_standup", action = "attend_sacrifice" },
  { field = "sleep_debt_penalty" },
  { field = "trust_delta", event = "E7_standup", stakeholder = "david_chen" },
]
"""


def test_valid_group_file(tmp_path):
    params = presets.week_v2()
    path = tmp_path / "groups.toml"
    path.write_text(GOOD)
    groups = S.load_groups(path, params)
    by_name = {g.name: g for g in groups}
    assert len(groups) == len(S.default_groups(params)) + 1
    assert (
        by_name["E6_oncall/yes_people_pleaser/energy"].low,
        by_name["E6_oncall/yes_people_pleaser/energy"].high,
    ) == (0.25, 2.0)
    late = by_name["late_night_costs"]
    assert late.mode == "shift" and late.targets[2].index == (event_index("E7_standup"), None, 0)
    as_json = tmp_path / "groups.json"
    as_json.write_text(
        json.dumps(
            {
                "group": [
                    {
                        "name": "g",
                        "set": [0, 1],
                        "targets": [{"field": "alt_prob", "index": [3, 0]}],
                    }
                ]
            }
        )
    )
    (only,) = S.load_groups(as_json, params)
    assert only.targets[0].index == (3, 0)


@pytest.mark.parametrize(
    "text,needle",
    [
        ("[[group]\nname = 1", "invalid TOML"),
        (
            '[[group]]\nname = "g"\nscale = [0.5, 1.5]\ntargets = [{ field = "energy" }]',
            "'energy' is not a field",
        ),
        (
            '[[group]]\nname = "g"\nscale = [0.5, 1.5]\ntargets = [{ field = "spawn" }]',
            "structural",
        ),
        (
            '[[group]]\nname = "g"\nscale = [0.5, 1.5]\nshift = [0, 1]\ntargets = [{ field = "recovery" }]',
            "exactly one of",
        ),
        (
            '[[group]]\nname = "g"\nscale = [1.5, 0.5]\ntargets = [{ field = "recovery" }]',
            "low < high",
        ),
        ('[[group]]\nname = "g"\nscale = [0.5]\ntargets = [{ field = "recovery" }]', "two numbers"),
        (
            '[[group]]\nname = "g"\nscale = [0.5, 1.5]\ntargets = [{ field = "energy_delta", event = "E9" }]',
            "unknown event",
        ),
        (
            '[[group]]\nname = "g"\nscale = [0.5, 1.5]\ntargets = [{ field = "energy_delta", event = "E6_oncall", action = "maybe" }]',
            "unknown action",
        ),
        (
            '[[group]]\nname = "g"\nscale = [0.5, 1.5]\ntargets = [{ field = "recovery", index = [9] }]',
            "out of range",
        ),
        (
            '[[group]]\nname = "g"\nscale = [0.5, 1.5]\ntargets = [{ field = "recovery", stakeholder = "sundar" }]',
            "no stakeholder axis",
        ),
        ('[[group]]\nname = "not_builtin"\nscale = [0.5, 1.5]', "not a built-in group"),
        (
            '[[group]]\nname = "g"\nscale = [0.5, 1.5]\ntargets = [{ field = "recovery" }]\n'
            '[[group]]\nname = "g"\nscale = [0.5, 1.5]\ntargets = [{ field = "recovery" }]',
            "duplicate group name",
        ),
        (
            'colour = "blue"\n[[group]]\nname = "g"\nscale = [0.5, 1.5]\ntargets = [{ field = "recovery" }]',
            "unknown keys",
        ),
        ("defaults = false", "non-empty list"),
    ],
)
def test_invalid_group_files_give_clear_errors(tmp_path, text, needle):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(S.GroupFileError) as err:
        S.load_groups(path, presets.week_v2())
    assert needle in str(err.value) and "bad.toml" in str(err.value)


def test_group_file_type_and_missing_file(tmp_path):
    with pytest.raises(S.GroupFileError, match="cannot read"):
        S.load_groups(tmp_path / "missing.toml", presets.week_v2())
    (tmp_path / "g.yaml").write_text("x: 1")
    with pytest.raises(S.GroupFileError, match="use .toml or .json"):
        S.load_groups(tmp_path / "g.yaml", presets.week_v2())
    (tmp_path / "g.json").write_text("{not json")
    with pytest.raises(S.GroupFileError, match="invalid JSON"):
        S.load_groups(tmp_path / "g.json", presets.week_v2())


def test_cli_reports_a_bad_group_file(tmp_path, capsys):
    from experiments.cli import main

    path = tmp_path / "bad.toml"
    path.write_text('[[group]]\nname = "g"\nscale = [2, 1]\ntargets = [{ field = "recovery" }]')
    assert main(["sensitivity", "--groups", str(path), "--list-groups"]) == 2
    assert "low < high" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# indices recover known answers
# ---------------------------------------------------------------------------------------------


def synthetic_groups(n: int = 3):
    """``n`` placeholder groups on [0, 1] for designs fed to synthetic functions."""
    return [S.RuleGroup(f"g{i}", (S.Target("recovery"),), "scale", 0.0, 1.0) for i in range(n)]


def test_sobol_indices_on_a_synthetic_function():
    groups = synthetic_groups()
    X_ = S.sample_design(groups, "sobol", 512, seed=3)
    assert X_.shape == (512 * 5, 3)
    Y = 5.0 * X_[:, 0] + 0.0 * X_[:, 1] + 0.3 * X_[:, 2] ** 2
    res = S.sobol_indices(groups, Y, seed=3)
    assert res["ST"]["g1"] == pytest.approx(0.0, abs=1e-12)
    assert res["ST"]["g0"] > 0.95 and res["S1"]["g0"] > 0.95
    assert 0 < res["ST"]["g2"] < 0.05
    assert all(v >= 0 for v in res["ST_conf"].values())


def test_morris_indices_on_a_synthetic_function():
    groups = synthetic_groups()
    X_ = S.sample_design(groups, "morris", 20, seed=1)
    Y = 5.0 * X_[:, 0] + 0.3 * X_[:, 2]
    res = S.morris_indices(groups, X_, Y, seed=1)
    assert res["mu_star"]["g1"] == 0.0
    assert res["mu_star"]["g0"] == pytest.approx(5.0) and res["mu_star"]["g2"] == pytest.approx(0.3)


def e2e_groups(params):
    """A provably dead group, a dominant one and a small one for ``params``."""
    scheduled = [int(e) for e in np.asarray(params.slot_event) if e >= 0]
    dead_event = next(e for e in range(len(EVENT_IDS)) if e not in scheduled)
    return [
        # an event that is never scheduled: provably irrelevant
        S.RuleGroup("dead", (S.Target("energy_delta", (dead_event,)),), "scale", 0.0, 2.0),
        # every message quality set to one value: communication = x whatever is chosen, so the
        # score is w_comm * x + (something x cannot change)
        S.RuleGroup(
            "quality", tuple(S.Target("template_quality", (e,)) for e in scheduled), "set", 0.0, 1.0
        ),
        # a boundary credit moved by a hundredth or two: a small effect
        S.RuleGroup(
            "small",
            (S.Target("boundary_credit", (event_index("E6_oncall"), 0)),),
            "scale",
            0.9,
            1.1,
        ),
    ]


def test_sobol_end_to_end_recovers_dead_and_dominant_groups(tmp_path):
    params = reduced_week(TINY)
    groups = e2e_groups(params)
    config = S.SweepConfig(
        method="sobol", samples=32, switch_points=3, chunk=8, out=str(tmp_path / "run")
    )
    calls = []
    res = S.run_sensitivity(
        config, progress=lambda d, t: calls.append((d, t)), params=params, groups=groups
    )
    assert res["rule_books"] == 1 + 32 * 5 + 3 * 3 and calls[-1] == (res["rule_books"],) * 2
    for name in ("optimal", *FIXED_MAP_NAMES):
        o = res["outputs"][name]
        assert o["ST"]["dead"] == 0.0 and o["S1"]["dead"] == 0.0, name
        assert o["ST"]["quality"] > 0.9 and o["S1"]["quality"] > 0.9, name
    assert all(v == 0.0 for d in res["policy_switch"].values() for g, v in d.items() if g == "dead")
    json.dumps(res)  # JSON-able (no NaN objects)
    for key in ("method", "samples", "rule_books", "wall_s", "devices", "outputs", "policy_switch"):
        assert key in res
    figures = S.save_figures(res, tmp_path / "figs")
    assert all(Path(f).stat().st_size > 1000 for f in figures)


def test_morris_end_to_end_and_resume(tmp_path, monkeypatch):
    params = reduced_week(TINY)
    groups = e2e_groups(params)
    config = S.SweepConfig(
        method="morris", samples=6, switch_points=2, chunk=8, out=str(tmp_path / "run")
    )
    first = S.run_sensitivity(config, params=params, groups=groups)
    assert first["outputs"]["optimal"]["mu_star"]["dead"] == 0.0
    assert (
        first["outputs"]["optimal"]["mu_star"]["quality"]
        > first["outputs"]["optimal"]["mu_star"]["small"]
    )
    S.save_figures(first, tmp_path / "figs")
    chunks = sorted((tmp_path / "run" / "chunks").glob("*.npz"))
    assert len(chunks) == -(-first["rule_books"] // (8 * len(jax.devices())))
    # resume: every chunk is on disk, nothing is recomputed
    monkeypatch.setattr(
        S.Evaluator, "run", lambda self, fields: pytest.fail("recomputed a saved chunk")
    )
    again = S.run_sensitivity(config, params=params, groups=groups)
    assert again["outputs"] == first["outputs"]
    # an interrupted run: a missing chunk is the only one recomputed
    chunks[1].unlink()
    monkeypatch.undo()
    seen = []
    original = S.Evaluator.run
    monkeypatch.setattr(
        S.Evaluator, "run", lambda self, fields: seen.append(1) or original(self, fields)
    )
    third = S.run_sensitivity(config, params=params, groups=groups)
    assert len(seen) == 1 and third["outputs"] == first["outputs"]
    # a different sweep in the same directory is refused
    with pytest.raises(ValueError, match="different sweep"):
        S.run_sensitivity(
            S.SweepConfig(
                method="morris", samples=4, switch_points=2, chunk=8, out=str(tmp_path / "run")
            ),
            params=params,
            groups=groups,
        )


# ---------------------------------------------------------------------------------------------
# sharded == unsharded
# ---------------------------------------------------------------------------------------------

SHARDED = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    sys.path.insert(0, {root!r})
    sys.path.insert(0, {tests!r})
    from test_sensitivity import reduced_week, perturbed, MICRO, MAPS
    from agents.exact.tree import structure_of
    from experiments import sensitivity as S
    from experiments.sensitivity.solve import device_mesh

    base = reduced_week(MICRO)
    stack, fields = perturbed(base, 24, 7)
    structure = structure_of(base)
    many = S.Evaluator(structure, MAPS, device_mesh())
    one = S.Evaluator(structure, MAPS, device_mesh(jax.devices()[:1]))
    a, b = many.run(fields), one.run(fields)
    print(json.dumps({{"devices": many.devices, "equal": all(np.array_equal(a[k], b[k]) for k in a),
                       "shards": len(jax.device_put(np.zeros(24), many.sharding).addressable_shards)}}))
""")


def test_sharded_equals_unsharded_on_8_cpu_devices():
    env = dict(os.environ, XLA_FLAGS=xla_flags_with_devices(8), JAX_PLATFORMS="cpu")
    script = SHARDED.format(root=str(ROOT), tests=str(ROOT / "tests"))
    out = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"devices": 8, "equal": True, "shards": 8}


# ---------------------------------------------------------------------------------------------
# exact scores of a state-dependent (trained) policy across rule books
# ---------------------------------------------------------------------------------------------


def _energy_threshold_policy(threshold=0.55):
    """A deterministic policy that depends on the state: with policy parameters ``(hi, lo)``
    (two per-event maps), map ``hi`` above an energy threshold and ``lo`` below it (the event
    read from the observation's one-hot)."""
    from wlf_jax.env import OBS_LAYOUT

    start = 0
    for name, n in OBS_LAYOUT:
        if name == "event_onehot":
            break
        start += n

    def policy(maps, obs):
        hi, lo = maps
        e = jnp.argmax(obs[start : start + len(EVENT_IDS)])
        return jnp.where(obs[0] > threshold, hi[e], lo[e])

    return policy


def test_policy_scorer_equals_host_solver_for_a_state_dependent_policy():
    from agents.exact import obs_policy
    from agents.exact.policy_scorer import fixed_schedule, make_policy_scorer

    base = reduced_week(MIXED)
    stack, fields = perturbed(base, 3, seed=2)
    rng = np.random.default_rng(0)
    maps = tuple(jnp.asarray(rng.integers(0, 3, len(EVENT_IDS)), jnp.int32) for _ in range(2))
    policy = _energy_threshold_policy()
    chance = possible_chance(base, S.default_groups(base)).any(axis=1)
    got = np.asarray(make_policy_scorer(policy, fixed_schedule(base), chance)(maps, stack))
    mixed = False
    for i in range(3):
        book = replace(base, name=f"book{i}", **{k: v[i] for k, v in fields.items()})
        act = lambda obs: np.asarray(jax.vmap(lambda o: policy(maps, o))(jnp.asarray(obs)))  # noqa: E731
        ev = ExactSolver(book).evaluate(obs_policy(act, book))
        assert abs(ev.exact_score - got[i]) < 1e-5, (i, ev.exact_score, got[i])
        mixed |= any(0.0 < f < 1.0 for freq in ev.action_freq.values() for f in freq)
    assert mixed  # the policy really acts on the state, not only on the event


def test_policy_scorer_of_fixed_maps_equals_the_tree_solver():
    from agents.exact.policy_scorer import fixed_schedule, make_policy_scorer

    base = reduced_week(MIXED)
    stack, _ = perturbed(base, 4, seed=3)
    tree_scores = X.solve_one(stack, MAPS, arrival=False)["map_scores"]  # (4, M)
    chance = np.asarray(base.alt_prob).max(axis=1) > 0
    scorer = make_policy_scorer(_energy_threshold_policy(), fixed_schedule(base), chance)
    for m, amap in enumerate(MAPS):  # one compiled program: the map is a policy parameter
        amap = jnp.asarray(amap, jnp.int32)
        np.testing.assert_allclose(
            np.asarray(scorer((amap, amap), stack)), tree_scores[:, m], atol=1e-5
        )


@pytest.fixture(scope="module")
def tiny_ppo_run(tmp_path_factory):
    """A finished (tiny) PPO run on week_v2."""
    from experiments.train import run_training

    run = tmp_path_factory.mktemp("ppo")
    run_training(
        "ppo",
        preset="week_v2",
        seeds=1,
        out=run,
        exact_curve=False,
        evaluate=False,
        overrides={"budget_steps": 4 * 128 * 16, "n_chunks": 1},
    )
    return run


def test_trained_policy_scores_across_rule_books(tiny_ppo_run, solver_week_v2):
    from agents.exact import obs_policy
    from experiments.train import load_policy_params, load_trained
    from wlf_jax.rollout import rollout

    run = tiny_ppo_run
    params = presets.week_v2()
    groups = S.default_groups(params)
    X_ = np.stack([S.identity_row(groups), S.identity_row(groups)])
    energy = next(g for g in groups if g.name == "start/energy")
    X_[1, groups.index(energy)] = energy.low  # ten points less energy on Monday
    chance = possible_chance(params, groups)
    name, scores = trained_scores(run, params, groups, X_, chance)
    assert name.startswith("ppo (trained")
    # the default rule book: equal to the host solver's exact evaluation of the same network
    _, act = load_trained(run)
    assert abs(scores[0] - solver_week_v2.evaluate(obs_policy(act, params)).exact_score) < 1e-5
    # the perturbed one: within sampling error of 20,000 weeks simulated with random outcomes
    _, trainer, pp, _ = load_policy_params(run)
    book = stack_params(S.apply_groups(S.base_fields(params), groups, X_[1:]))
    book = jax.tree_util.tree_map(lambda v: jnp.asarray(v[0]), book)
    greedy = lambda p_, obs, key: trainer.greedy(p_, obs[None])[0]  # noqa: E731
    sampled = np.asarray(
        jax.jit(lambda k: rollout(greedy, book, k, 20_000, pp)["score"])(jax.random.PRNGKey(1))
    )
    assert abs(scores[1] - sampled.mean()) < 4 * sampled.std() / np.sqrt(len(sampled)) + 1e-4
    assert scores[1] != scores[0]  # a more tired Monday changes the week
    # one rule book per call (the padding path) gives the same numbers
    _, one_by_one = trained_scores(run, params, groups, X_, chance, chunk=1)
    np.testing.assert_allclose(one_by_one, scores, atol=1e-6)


def test_trained_folder_is_checked_before_the_sweep(tiny_ppo_run, tmp_path):
    config = S.SweepConfig(samples=2, method="morris", trained=str(tmp_path / "nothing"))
    with pytest.raises(FileNotFoundError, match="no checkpoint.msgpack"):
        S.run_sensitivity(
            config, params=presets.week_v2(), groups=S.default_groups(presets.week_v2())[:2]
        )
    with pytest.raises(ValueError, match="trained on 'week_v2'"):
        check_trained(tiny_ppo_run, presets.seed_v1())


def test_sensitivity_end_to_end_with_a_trained_policy(tiny_ppo_run, tmp_path):
    """Morris on a small week with the trained network as one more output (the week keeps the
    preset's name, so the week_v2 network may be scored on it)."""
    from agents.exact import obs_policy
    from experiments.train import load_trained

    params = replace(reduced_week(TINY), name="week_v2")
    groups = e2e_groups(params)
    config = S.SweepConfig(
        method="morris", samples=4, switch_points=2, chunk=8, trained=str(tiny_ppo_run)
    )
    calls = []
    res = S.run_sensitivity(
        config, progress=lambda d, t: calls.append((d, t)), params=params, groups=groups
    )
    n_design = res["design_rule_books"]
    assert calls[-1] == (res["rule_books"] + 1 + n_design,) * 2
    o = res["outputs"]["trained"]
    assert o["policy"].startswith("ppo (trained") and res["trained_s"] > 0
    _, act = load_trained(tiny_ppo_run)
    assert (
        abs(o["default"] - ExactSolver(params).evaluate(obs_policy(act, params)).exact_score) < 1e-5
    )
    assert o["mu_star"]["dead"] == 0.0 and np.isfinite(o["mean"])
    json.dumps(res)
