"""The simulator: golden parity, JAX vs plain Python, jit/vmap/scan, reproducibility, bad input."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from experiments.golden import check_file
from wlf_jax import InvalidParamsError, WorkWeek, presets
from wlf_jax.events import EVENT_IDS, N_EVENTS, SLEEP_DEBT
from wlf_jax.params import MAX_STEPS, replace, to_python
from wlf_jax.reference import ReferenceWeek
from wlf_jax.rollout import make_rollout, random_policy
from wlf_jax.state import Scenario, sample_scenario

GOLDEN = Path(__file__).resolve().parent / "data" / "golden" / "seed_v1_trajectories.json"
env = WorkWeek()
PRESETS = {name: presets.get(name) for name in ("seed_v1", "week_v2")}
REFS = {name: ReferenceWeek(to_python(p)) for name, p in PRESETS.items()}


@jax.jit
def _jit_step_seed(state, action, quality):
    return env.step_env(None, state, action, PRESETS["seed_v1"], quality)


@jax.jit
def _jit_step_v2(state, action, quality):
    return env.step_env(None, state, action, PRESETS["week_v2"], quality)


STEPS = {"seed_v1": _jit_step_seed, "week_v2": _jit_step_v2}


def _exact_value(h: int, drift: int) -> Fraction:
    return Fraction(int(h), 100) + Fraction(int(drift), 25 * 2**60)


# -- golden parity ----------------------------------------------------------------------------


def test_golden_trajectories_have_no_mismatch():
    n, mismatches = check_file(GOLDEN)
    assert n == 400
    assert mismatches == []


def test_golden_check_reports_a_changed_rule(tmp_path):
    """The checker is not vacuous: a trajectory with a wrong reward is reported."""
    import json

    data = json.loads(GOLDEN.read_text())
    data["cases"] = data["cases"][:3]
    data["cases"][1]["steps"][0]["reward"] += 0.01
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    n, mismatches = check_file(path)
    assert n == 3 and len(mismatches) >= 1 and "case 1: step 0 reward" in mismatches[0]


# -- differential: JAX vs the plain-Python implementation -------------------------------------


def _scenario(preset: str, perm_seed: int, uniforms: list[float]):
    params = PRESETS[preset]
    rules = REFS[preset].r
    slot_event = list(rules["slot_event"])
    shuffled = [t for t, s in enumerate(rules["slot_shuffle"]) if s]
    moved = [slot_event[t] for t in shuffled]
    rng = np.random.default_rng(perm_seed)
    rng.shuffle(moved)
    for t, e in zip(shuffled, moved):
        slot_event[t] = e
    return params, slot_event, uniforms


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    preset=st.sampled_from(["seed_v1", "week_v2"]),
    perm_seed=st.integers(0, 10_000),
    uniforms=st.lists(
        st.floats(0.0, 0.99951171875, width=32), min_size=N_EVENTS, max_size=N_EVENTS
    ),
    actions=st.lists(st.integers(0, 2), min_size=MAX_STEPS, max_size=MAX_STEPS),
    # message qualities with 4 decimals, like the golden file's (seed_v1 rounds rewards to 4)
    qualities=st.lists(
        st.one_of(st.just(-1.0), st.integers(0, 10_000).map(lambda x: x / 10_000)),
        min_size=MAX_STEPS,
        max_size=MAX_STEPS,
    ),
)
def test_jax_matches_plain_python(preset, perm_seed, uniforms, actions, qualities):
    params, slot_event, uniforms = _scenario(preset, perm_seed, uniforms)
    ref = REFS[preset]
    w = ref.reset(slot_event, uniforms)
    _, s = env.reset_to_scenario(
        Scenario(jnp.asarray(slot_event, jnp.int32), jnp.asarray(uniforms, jnp.float32)), params
    )
    for a, q in zip(actions, qualities):
        if w.done:
            break
        w, r_ref = ref.step(w, a, None if q < 0 else q)
        _, s, r_jax, done, info = STEPS[preset](s, a, q)
        assert bool(done) == w.done
        assert abs(float(r_jax) - r_ref) < 2e-5
        values = [s.energy, s.sprint, *s.trust]
        for k, (h, v) in enumerate(zip(values, w.values)):
            if ref.floats:
                assert _exact_value(h, s.drift[k]) == Fraction(v)
            else:
                assert int(h) == v
        assert tuple(int(x) for x in s.status) == w.status
        assert {i for i in range(N_EVENTS) if s.pending[i]} == set(w.pending)
        assert int(s.day) == w.day and int(s.count) == w.count
        assert int(s.boundary) == w.boundary
        expected_days = [
            -1 if v is None else (round(v * 100) if ref.floats else v) for v in w.energy_by_day
        ]
        assert [int(v) for v in s.energy_by_day] == expected_days
        np.testing.assert_allclose(np.asarray(info["components"]), ref.components(w), atol=1e-5)
    assert w.done and bool(s.done)


# -- jit / vmap / scan, reproducibility, invariants --------------------------------------------


def test_step_never_retraces():
    params = PRESETS["week_v2"]

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(state, action):
        return env.step(jax.random.key(0), state, action, params)

    _, s = env.reset(jax.random.key(1), params)
    for a in [0, 1, 2, 0, 1, 2, 0]:
        _, s, *_ = step(s, jnp.int32(a))


def test_same_key_same_week_different_keys_different_orders():
    params = PRESETS["seed_v1"]
    a = sample_scenario(jax.random.key(3), params)
    b = sample_scenario(jax.random.key(3), params)
    assert np.array_equal(a.slot_event, b.slot_event) and np.array_equal(a.uniforms, b.uniforms)
    orders = {
        tuple(np.asarray(sample_scenario(jax.random.key(k), params).slot_event[:7]))
        for k in range(40)
    }
    assert len(orders) > 20  # 720 possible orders
    for order in orders:
        assert order[0] == EVENT_IDS.index("E1_staging")
        assert sorted(order) == list(range(7))


@pytest.mark.parametrize("preset", ["seed_v1", "week_v2"])
def test_whole_weeks_under_jit_vmap_stay_in_bounds_and_end(preset):
    params = PRESETS[preset]
    out = make_rollout(random_policy, 2048)(None, params, jax.random.key(0))
    s = out["final_state"]
    for x in (s.energy, s.sprint, s.trust):
        assert int(jnp.min(x)) >= 0 and int(jnp.max(x)) <= 100
    assert bool(jnp.all(s.done))
    assert int(jnp.max(out["decisions"])) <= MAX_STEPS
    assert bool(jnp.all(jnp.isfinite(out["return"]))) and bool(jnp.all(jnp.isfinite(out["score"])))
    assert float(jnp.min(out["score"])) >= 0.0 and float(jnp.max(out["score"])) <= 1.0
    if preset == "week_v2":  # return = final rubric - the constant Φ(Monday morning)
        _, s0 = env.reset(jax.random.key(0), params)
        from wlf_jax.reward import rubric_total

        phi0 = float(rubric_total(s0, params))
        np.testing.assert_allclose(
            np.asarray(out["return"]), np.asarray(out["score"]) - phi0, atol=1e-4
        )


def test_rollout_is_reproducible_from_the_key():
    params = PRESETS["week_v2"]
    run = make_rollout(random_policy, 256)
    a, b = run(None, params, jax.random.key(7)), run(None, params, jax.random.key(7))
    c = run(None, params, jax.random.key(8))
    assert np.array_equal(a["actions"], b["actions"]) and np.array_equal(a["score"], b["score"])
    assert not np.array_equal(a["actions"], c["actions"])


def test_auto_reset_step_starts_a_new_week():
    params = PRESETS["seed_v1"]
    _, s = env.reset(jax.random.key(0), params)
    for _ in range(7):
        _, s, _, terminated, truncated, _ = env.step(jax.random.key(5), s, 0, params)
    assert bool(terminated) and not bool(truncated)
    assert int(s.count) == 0 and not bool(s.done)


@pytest.mark.parametrize("bad", [-1, 3, 99])
def test_out_of_range_action_is_clipped_and_flagged_under_jit(bad):
    params = PRESETS["week_v2"]
    _, s = env.reset(jax.random.key(0), params)
    step = jax.jit(lambda s, a: env.step_env(None, s, a, params))
    _, s_bad, r_bad, _, info = step(s, jnp.int32(bad))
    _, s_ok, r_ok, _, info_ok = step(s, jnp.int32(min(max(bad, 0), 2)))
    assert bool(info["invalid_action"]) and not bool(info_ok["invalid_action"])
    assert float(r_bad) == float(r_ok) and int(s_bad.energy) == int(s_ok.energy)


def test_describe_names_the_event_and_status():
    params = PRESETS["week_v2"]
    _, s = env.reset(jax.random.key(0), params)
    d = env.describe(s, params)
    assert d["event"]["id"] == "E1_staging" and len(d["event"]["actions"]) == 3
    assert d["day"] == "Monday" and d["status"]["energy"] == 0.75
    _, s, *_ = env.step_env(None, s, 2, params)
    d = env.describe(s, params)
    assert d["history"] == [{"event": "E1_staging", "action": "escalate_infra"}]


# -- invalid rule books ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "field,value,fragment",
    [
        ("alt_prob", "prob", "alt_prob"),
        ("template_quality", "nan", "template_quality"),
        ("energy_delta", "shape", "energy_delta"),
        ("rubric_weights", [0.5, 0.5, 0.5, 0.0, 0.0], "rubric_weights"),
        ("spawn", "spawn", "spawn"),
    ],
)
def test_invalid_params_are_rejected_with_the_field_named(field, value, fragment):
    params = PRESETS["week_v2"]
    arr = np.array(getattr(params, field))
    if value == "prob":
        arr = arr.copy()
        arr[0, 1] = 1.5
    elif value == "nan":
        arr = arr.astype(np.float32)
        arr[2, 0] = np.nan
    elif value == "shape":
        arr = arr[:, :2]
    elif value == "spawn":
        arr = arr.copy()
        arr[0, 0, 0] = 99
    else:
        arr = np.asarray(value)
    with pytest.raises(InvalidParamsError, match=fragment):
        replace(params, **{field: arr})


def test_integer_fields_reject_fractions():
    with pytest.raises(InvalidParamsError, match="start_energy"):
        replace(PRESETS["seed_v1"], start_energy=80.5)


def test_unknown_preset_is_a_clear_error():
    with pytest.raises(KeyError, match="known: week_v2, seed_v1"):
        presets.get("week_v9")


def test_state_fits_in_256_bytes():
    from experiments.bench import state_bytes

    assert state_bytes(PRESETS["week_v2"]) <= 256


def test_check_golden_cli_exit_status(tmp_path):
    import json
    import subprocess
    import sys

    text_rules = GOLDEN.parent / "seed_v1_text_rules.json"
    ok = subprocess.run(
        [sys.executable, "-m", "experiments.cli", "check-golden", str(text_rules)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ok.returncode == 0 and ok.stdout.strip().endswith("600 cases, 0 mismatches")
    data = json.loads(GOLDEN.read_text())
    data["cases"] = data["cases"][:5]
    data["cases"][0]["steps"][0]["energy"] = 0.5
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    res = subprocess.run(
        [sys.executable, "-m", "experiments.cli", "check-golden", str(bad)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 1 and res.stdout.strip().endswith("5 cases, 1 mismatches")


# -- week_v2 mechanics --------------------------------------------------------------------------


def _week(uniforms=0.99, params=None):
    """Monday of week_v2 (or of ``params``) in its scheduled order, every draw ``uniforms``."""
    params = PRESETS["week_v2"] if params is None else params
    scenario = Scenario(
        jnp.asarray(params.slot_event), jnp.full((N_EVENTS,), uniforms, jnp.float32)
    )
    return params, env.reset_to_scenario(scenario, params)[1]


def _play(actions, uniforms=0.99):
    params, s = _week(uniforms)
    infos = []
    for a in actions:
        _, s, _, _, info = env.step_env(None, s, a, params)
        infos.append(info)
    return s, infos


def test_ignoring_slack_spawns_the_follow_up_escalation():
    s, infos = _play([0, 2])
    assert int(infos[1]["spawned"]) == EVENT_IDS.index("S2_slack_followup")
    _, s2 = _week()
    d = env.describe(s, PRESETS["week_v2"])
    assert "S2_slack_followup" in d["pending"]


def test_a_failed_delegation_relapses_on_tuesday():
    s, infos = _play([1], uniforms=0.0)  # every chance draw takes the alternative outcome
    assert bool(infos[0]["alt_outcome"])
    assert "S1_staging_relapse" in env.describe(s, PRESETS["week_v2"])["pending"]
    s_ok, infos_ok = _play([1], uniforms=0.99)
    assert not env.describe(s_ok, PRESETS["week_v2"])["pending"]


def test_attending_the_late_standup_costs_the_next_night_of_recovery():
    # Monday..Wednesday the same; E7 decline (0) vs attend (1); compare Thursday's energy
    base = [0, 0, 0, 0, 0, 0]  # E1 E2 E3 E4 E5 E6 (no spawns with draws of 0.99)
    s_decline, _ = _play(base + [0])
    s_attend, _ = _play(base + [1])
    e_decline = int(s_decline.energy_by_day[3])  # end of Thursday = after Wed->Thu night
    e_attend = int(s_attend.energy_by_day[3])
    params = PRESETS["week_v2"]
    delta_choice = int(params.energy_delta[6, 0]) - int(params.energy_delta[6, 1])
    assert e_decline - e_attend == delta_choice + int(params.sleep_debt_penalty)


def test_a_finished_week_reaches_friday():
    s, _ = _play([0] * 7)
    assert bool(s.done) and not bool(s.early_end) and int(s.day) == 4
    assert all(int(v) >= 0 for v in s.energy_by_day)


def test_a_finished_week_absorbs_further_steps_with_zero_reward():
    s, _ = _play([0] * 7)
    params = PRESETS["week_v2"]
    for a in (0, 1, 2):
        _, after, reward, done, info = env.step_env(None, s, a, params, 0.9)
        assert float(reward) == 0.0 and bool(done)
        chex.assert_trees_all_equal(after, s)
        assert int(info["spawned"]) == -1  # nothing happens in a finished week
        assert not bool(info["alt_outcome"]) and not bool(info["invalid_action"])


def test_sleep_debt_waits_for_the_night_when_the_next_event_is_the_same_day():
    """Rushing the appraisal tonight (E5, action 1) costs the coming night's recovery. In
    week_v2 the next event is always the next day; here E6 is moved to E5's day, so the debt
    must survive that decision and still cost the night (JAX equals plain Python)."""
    base = PRESETS["week_v2"]
    slot_day = np.asarray(base.slot_day).copy()
    slot_day[7:9] = slot_day[6]  # E6 (slot 8; slot 7 waits for a spawn) comes on E5's day
    params = replace(base, name="same_day", slot_day=slot_day)
    ref = ReferenceWeek(to_python(params))
    w = ref.reset([int(x) for x in np.asarray(params.slot_event)], [0.99] * N_EVENTS)
    _, s = _week(0.99, params)
    step = jax.jit(lambda s, a: env.step_env(None, s, a, params, -1.0))
    debts = []
    for a in [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]:  # E5 (the 5th decision): rush tonight
        if w.done:
            break
        w, _ = ref.step(w, a)
        _, s, _, _, _ = step(s, a)
        assert tuple(int(x) for x in s.status) == w.status
        assert [int(v) for v in s.energy_by_day] == [
            -1 if v is None else v for v in w.energy_by_day
        ]
        debts.append(w.status[SLEEP_DEBT])
    assert debts[4] == 1 and debts[5] == 0  # set by E5, kept until the night after E6


def test_step_info_reports_the_quality_played():
    """``info["quality"]`` (read by the server's step result) is the quality the step used: the
    reply's, clipped to 1, or the rule book's template quality when none is given."""
    params = PRESETS["week_v2"]
    _, s = env.reset(jax.random.key(0), params)
    step = jax.jit(lambda s, a, q: env.step_env(None, s, a, params, q))
    e = int(s.slot_event[s.slot])
    for q, want in ((0.7, 0.7), (1.5, 1.0), (-1.0, float(params.template_quality[e, 2]))):
        *_, info = step(s, jnp.int32(2), jnp.float32(q))
        assert {"event", "action", "invalid_action", "alt_outcome", "spawned", "quality"} <= set(
            info
        )
        assert float(info["quality"]) == pytest.approx(want, abs=1e-6)
        assert int(info["event"]) == e and int(info["action"]) == 2


def test_an_event_in_the_last_slot_comes_on_that_slot_s_day():
    """The next event's day is read from its slot, up to the last one (``MAX_STEPS - 1``).
    Neither preset schedules an event there, so here the re-escalation (slot 12, Thursday)
    moves to the last slot (Friday): on every path that reaches it, the day after the step
    before is Friday, and JAX equals plain Python step by step.  (The re-escalation is spawned
    by a full apology to the client whose alternative outcome comes, i.e. a low draw.)"""
    base = PRESETS["week_v2"]
    slot_event = np.asarray(base.slot_event).copy()
    slot_day = np.asarray(base.slot_day)
    assert slot_event[-1] == -1 and slot_day[-1] != slot_day[-2]
    slot_event[-1], slot_event[-2] = slot_event[-2], -1
    params = replace(base, name="last_slot", slot_event=slot_event)
    ref = ReferenceWeek(to_python(params))
    step = jax.jit(lambda s, a: env.step_env(None, s, a, params, -1.0))
    reached = 0
    for uniforms in (0.01, 0.99):
        for a in range(3):
            w = ref.reset([int(x) for x in slot_event], [uniforms] * N_EVENTS)
            _, s = _week(uniforms, params)
            while not w.done:
                act = 1 if int(s.slot_event[s.slot]) == EVENT_IDS.index("E3_client_email") else a
                w, _ = ref.step(w, act)
                _, s, _, _, _ = step(s, act)
                assert int(s.day) == w.day and int(s.slot) == w.slot
                if int(s.slot) == MAX_STEPS - 1:
                    reached += 1
                    assert int(s.day) == int(slot_day[-1])
    assert reached, "no path reached the last slot"


def test_sprint_and_trust_stop_at_100_after_a_decision():
    """Outside seed_v1's float64 emulation the values are integer hundredths clipped to
    [0, 100] after each decision.  From a sprint and trusts of 99, every action of the first
    event lands on ``min(100, 99 + delta)`` (no alternative outcome: every draw is 1)."""
    params = PRESETS["week_v2"]
    _, s = env.reset(jax.random.key(0), params)
    s = s.replace(
        sprint=jnp.int32(99),
        trust=jnp.full_like(s.trust, 99),
        uniforms=jnp.ones_like(s.uniforms),
    )
    e = int(s.slot_event[s.slot])
    step = jax.jit(lambda s, a: env.step_env(None, s, a, params, -1.0))
    over = 0
    for a in range(3):
        _, nxt, *_, info = step(s, jnp.int32(a))
        assert not bool(info["alt_outcome"])
        d_sprint = int(params.sprint_delta[e, a])
        d_trust = np.asarray(params.trust_delta[e, a])
        assert int(nxt.sprint) == min(100, 99 + d_sprint)
        np.testing.assert_array_equal(np.asarray(nxt.trust), np.minimum(100, 99 + d_trust))
        over += (99 + d_sprint > 100) + int(np.sum(99 + d_trust > 100))
    assert over > 0  # the cap bites for some action of this event


def test_a_decision_is_recorded_for_its_event_only():
    """``state.actions`` holds each decided event's action (-1 = not decided): a step writes the
    current event's entry and leaves every other one as it was."""
    params = PRESETS["week_v2"]
    _, s = env.reset(jax.random.key(0), params)
    step = jax.jit(lambda s, a: env.step_env(None, s, a, params, -1.0))
    assert np.all(np.asarray(s.actions) == -1)
    for a in (2, 1, 0):
        e = int(s.slot_event[s.slot])
        before = np.asarray(s.actions).copy()
        _, s, *_ = step(s, jnp.int32(a))
        after = np.asarray(s.actions)
        assert after[e] == a
        np.testing.assert_array_equal(np.delete(after, e), np.delete(before, e))


@pytest.mark.parametrize(
    "rule, check",
    [
        # every night restores the most a rule book allows: energy stops at 100
        ({"recovery": [100, 100, 100, 100]}, lambda s: int(s.energy) == 100),
        # every night drains the most a rule book allows: energy stops at 0
        ({"recovery": [-100, -100, -100, -100]}, lambda s: int(s.energy) == 0),
        # a boundary credit of 100 per decision: the boundary component stops at 1
        ({"boundary_credit": np.full((N_EVENTS, 3), 100)}, lambda s: int(s.boundary) > 100),
    ],
    ids=["recovery_+100", "recovery_-100", "boundary_credit_100"],
)
def test_extreme_rule_books_stay_in_bounds_and_match_plain_python(rule, check):
    """Rule books at the edges of the validated ranges (a sensitivity sweep reaches them):
    the nightly recovery keeps energy in [0, 100] and the boundary component stays at most 1,
    and JAX equals plain Python step by step, including each decision's components."""
    params = replace(PRESETS["week_v2"], name="extreme", **rule)
    ref = ReferenceWeek(to_python(params))
    step = jax.jit(lambda s, a: env.step_env(None, s, a, params, -1.0))
    hit = False
    for actions in ([2] * MAX_STEPS, [1] * MAX_STEPS, [0, 1, 2] * 4):
        w = ref.reset([int(x) for x in np.asarray(params.slot_event)], [0.99] * N_EVENTS)
        _, s = _week(0.99, params)
        for a in actions:
            if w.done:
                break
            w, r_ref = ref.step(w, a, None)
            _, s, r_jax, done, info = step(s, jnp.int32(a))
            assert bool(done) == w.done and abs(float(r_jax) - r_ref) < 2e-5
            assert int(s.energy) == w.values[0] and 0 <= int(s.energy) <= 100
            assert int(s.day) == w.day and int(s.boundary) == w.boundary
            comps = np.asarray(info["components"])
            np.testing.assert_allclose(comps, ref.components(w), atol=1e-5)
            assert np.all((comps >= 0.0) & (comps <= 1.0))
            if int(s.day) > 0:
                hit |= bool(check(s))
        assert bool(s.done)
    assert hit  # the bound bites in at least one of the weeks
