"""The exact solver's policy evaluation, field by field, against a plain enumeration.

``ExactSolver.evaluate`` pushes probability mass through a merged decision graph. Here the same
expectations come from the simplest possible program: walk every schedule order and every
outcome of every action with the plain-Python dynamics, with no merging and no memo, and add
up what each finished week shows. Reduced rule books (a few events kept) make the walk small
enough to run in a second; both presets are covered (week_v2 with its spawns, seed_v1 with its
shuffled schedule and float arithmetic). These tests are also the fast selection under which
``make mutants`` scores ``agents/exact/host.py``.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from agents.exact import ExactSolver, fixed_map_policy, uniform_policy
from agents.exact.host import deterministic
from wlf_jax import presets
from wlf_jax.events import EVENT_IDS, N_ACTIONS, N_EVENTS
from wlf_jax.params import COMPONENT_NAMES, keep_events, replace, to_python
from wlf_jax.reference import N_DAYS, UNREVEALED, ReferenceWeek


def _reduced(preset: str, kept, start_energy: int | None = None):
    """The preset with only the events in ``kept`` (and, if given, a lower start energy, so
    that some weeks end early)."""
    extra = {} if start_energy is None else {"start_energy": start_energy}
    return keep_events(presets.get(preset), kept, **extra)


def _shuffled_slots(rules) -> list[int]:
    """The slots whose event is drawn at random (an order of the shuffled events)."""
    return [t for t, s in enumerate(rules["slot_shuffle"]) if s and rules["slot_event"][t] >= 0]


def _energy_hundredths(w) -> int:
    """Energy in hundredths, in integer (week_v2) and float64 (seed_v1) rule books alike."""
    energy = w.values[0]
    return round(energy * 100) if isinstance(energy, float) else energy


def _state_policy(weeks):
    """A stochastic policy that reads the state (energy, day, event): it tells apart solvers
    that hand the policy the wrong states."""
    out = []
    for w in weeks:
        h = _energy_hundredths(w)
        e = w.slot_event[w.slot]
        raw = np.array([1 + h % 5, 1 + (w.day + e) % 3, 1 + w.count % 2], dtype=np.float64)
        out.append(raw / raw.sum())
    return np.stack(out)


def _energy_rule(w) -> int:
    """A deterministic state-dependent rule: decline when energy is low."""
    return 1 if _energy_hundredths(w) < 60 else (w.slot_event[w.slot] + w.day) % N_ACTIONS


def _enumerate(params, policy) -> dict:
    """Every expectation of ``ExactSolver.evaluate`` by brute force: all schedule orders, all
    outcomes, every path to its end."""
    ref = ReferenceWeek(to_python(params))
    r = ref.r
    scale = 1.0 if ref.floats else 100.0
    shuffled = _shuffled_slots(r)
    orders = list(itertools.permutations([r["slot_event"][t] for t in shuffled]))
    acc = {
        "return": 0.0,
        "score": 0.0,
        "components": np.zeros(len(COMPONENT_NAMES)),
        "energy_by_day": np.zeros(N_DAYS),
        "early": 0.0,
        "freq": np.zeros((N_EVENTS, N_ACTIONS)),
    }

    def hidden(w):
        # what the solver's policy sees: the shuffled slots after the current one unrevealed
        se = [
            UNREVEALED if (t in shuffled and t > w.slot) else e for t, e in enumerate(w.slot_event)
        ]
        return w._replace(slot_event=tuple(se))

    def walk(w, p, ret):
        if w.done:
            acc["return"] += p * ret
            acc["score"] += p * ref.score(w)
            acc["components"] += p * np.asarray(ref.components(w))
            acc["energy_by_day"] += p * np.array(
                [0.0 if v is None else v / scale for v in w.energy_by_day]
            )
            acc["early"] += p * w.early_end
            return
        e = w.slot_event[w.slot]
        dist = np.asarray(policy([hidden(w)]), dtype=np.float64)[0]
        for a in range(N_ACTIONS):
            if dist[a] <= 0:
                continue
            acc["freq"][e, a] += p * dist[a]
            p_alt = r["alt_prob"][e][a]
            for q, alt in ((1.0 - p_alt, False), (p_alt, True)):
                if q > 0:
                    nw, reward = ref.apply(w, a, alt)
                    walk(nw, p * dist[a] * q, ret + reward)

    for order in orders:
        slot_event = list(r["slot_event"])
        for t, e in zip(shuffled, order):
            slot_event[t] = e
        walk(ref.reset(slot_event, [1.0] * N_EVENTS), 1.0 / len(orders), 0.0)
    return acc


CASES = [
    ("week_v2", (0, 1, 2, 7, 8), None),  # E1's relapse and E2's follow-up spawn
    ("week_v2", (3, 5, 6, 10, 11), None),  # the leave conflict, the night incident, the standup
    ("week_v2", (0, 4, 5, 6, 11, 12), 25),  # Thursday exhaustion; tired: some weeks end early
    ("seed_v1", (0, 1, 2, 3), None),  # 3! shuffled orders, float64 arithmetic
    ("seed_v1", (0, 4, 5, 6), 20),
    ("seed_v1", (1, 2, 3), None),  # the first slot is shuffled: three Monday mornings
]

POLICIES = {
    "uniform": lambda solver: uniform_policy(),
    "fixed map": lambda solver: fixed_map_policy([2, 1, 0, 1, 2, 0, 1] + [0] * 6),
    "state-dependent": lambda solver: _state_policy,
    "energy rule": lambda solver: deterministic(_energy_rule),
    "optimal": lambda solver: solver.optimal_policy(),
    "myopic": lambda solver: solver.myopic_policy(),
}


@pytest.mark.parametrize("preset,kept,start_energy", CASES)
@pytest.mark.parametrize("policy_name", list(POLICIES))
def test_every_field_of_the_exact_evaluation_equals_the_enumeration(
    preset, kept, start_energy, policy_name
):
    params = _reduced(preset, kept, start_energy)
    solver = ExactSolver(params)
    policy = POLICIES[policy_name](solver)
    ev = solver.evaluate(policy)
    want = _enumerate(params, policy)

    assert ev.exact_return == pytest.approx(want["return"], abs=1e-9)
    assert ev.exact_score == pytest.approx(want["score"], abs=1e-9)
    assert list(ev.components) == list(COMPONENT_NAMES)
    np.testing.assert_allclose(list(ev.components.values()), want["components"], atol=1e-9)
    np.testing.assert_allclose(ev.energy_by_day, want["energy_by_day"], atol=1e-9)
    assert ev.early_end_prob == pytest.approx(want["early"], abs=1e-12)
    occurs = want["freq"].sum(1)
    assert sorted(ev.event_prob) == sorted(EVENT_IDS[e] for e in range(N_EVENTS) if occurs[e] > 0)
    assert sorted(ev.action_freq) == sorted(ev.event_prob)
    for e in range(N_EVENTS):
        if occurs[e] > 0:
            assert ev.event_prob[EVENT_IDS[e]] == pytest.approx(occurs[e], abs=1e-12)
            np.testing.assert_allclose(
                ev.action_freq[EVENT_IDS[e]], want["freq"][e] / occurs[e], atol=1e-12
            )
    assert ev.as_dict() == {
        "exact_return": ev.exact_return,
        "exact_score": ev.exact_score,
        "components": ev.components,
        "energy_by_day": ev.energy_by_day,
        "early_end_prob": ev.early_end_prob,
        "action_freq": ev.action_freq,
        "event_prob": ev.event_prob,
    }


def test_the_enumeration_is_not_vacuous():
    """The reduced weeks exercise what the comparisons check: spawned events, early ends,
    several days, a stochastic outcome and more than one schedule order."""
    v2 = _enumerate(_reduced("week_v2", (0, 1, 2, 7, 8)), uniform_policy())
    assert v2["freq"][7].sum() > 0 and v2["freq"][8].sum() > 0  # both spawns happen
    assert 0 < v2["freq"][7].sum() < 1  # ... only sometimes
    v2b = _enumerate(_reduced("week_v2", (3, 5, 6, 10, 11)), fixed_map_policy([0] * 13))
    assert v2b["energy_by_day"][-1] > 0
    s1 = _enumerate(_reduced("seed_v1", (0, 1, 2, 3)), uniform_policy())
    assert np.all(s1["freq"][:4].sum(1) == pytest.approx(1.0))
    for preset, kept, start_energy in CASES:
        if start_energy is not None:  # the tired cases end early sometimes, not always
            early = _enumerate(_reduced(preset, kept, start_energy), uniform_policy())["early"]
            assert 0 < early < 1


def _check_against_direct_search(params) -> int:
    """In every reachable decision state: Q* equals a direct expectimax without merging or
    memo (a shuffled schedule revealed one event at a time, uniformly among those left), the
    optimal action is its argmax (lowest index on ties), the myopic action maximises the
    expected immediate reward, and Q* of the same state with its future order already known (a
    played week) is the same. Returns the number of states checked."""
    import random

    solver = ExactSolver(params)
    played = ExactSolver(params)  # asked only about weeks whose future order is known
    ref = ReferenceWeek(to_python(params))
    r = ref.r
    shuffled = _shuffled_slots(r)
    pool = {r["slot_event"][t] for t in shuffled}
    rng = random.Random(0)

    def reveal(w):
        if w.done or w.slot_event[w.slot] != UNREVEALED:
            return [(1.0, w)]
        left = sorted(pool - set(w.slot_event))
        return [
            (1.0 / len(left), w._replace(slot_event=tuple(
                e if t == w.slot else x for t, x in enumerate(w.slot_event)
            )))
            for e in left
        ]  # fmt: skip

    def known_future(w):
        left = sorted(pool - set(w.slot_event))
        rng.shuffle(left)
        it = iter(left)
        return w._replace(
            slot_event=tuple(next(it) if x == UNREVEALED else x for x in w.slot_event)
        )

    def outcomes(w, a):
        p_alt = r["alt_prob"][w.slot_event[w.slot]][a]
        out = []
        for q, alt in ((1 - p_alt, False), (p_alt, True)):
            if q > 0:
                nw, rew = ref.apply(w, a, alt)
                out += [(q * q2, w2, rew) for q2, w2 in reveal(nw)]
        return out

    def value(w):
        return 0.0 if w.done else max(qs(w))

    def qs(w):
        return [sum(q * (rew + value(nw)) for q, nw, rew in outcomes(w, a)) for a in range(3)]

    start = [UNREVEALED if t in shuffled else e for t, e in enumerate(r["slot_event"])]
    stack = [w for _, w in reveal(ref.reset(start, [1.0] * N_EVENTS))]
    seen = 0
    while stack:
        w = stack.pop()
        if w.done:
            continue
        want = qs(w)
        np.testing.assert_allclose(played.q(known_future(w)), want, atol=1e-9)
        np.testing.assert_allclose(solver.q(w), want, atol=1e-9)
        assert solver.optimal_action(w) == int(np.argmax(np.round(want, 12)))
        immediate = [sum(q * rew for q, _, rew in outcomes(w, a)) for a in range(3)]
        assert solver.myopic_action(w) == int(np.argmax(np.round(immediate, 12)))
        seen += 1
        for a in range(3):
            stack.extend(nw for _, nw, _ in outcomes(w, a))
    assert solver.value() == pytest.approx(
        sum(p * value(w) for p, w in reveal(ref.reset(start, [1.0] * N_EVENTS))), abs=1e-9
    )
    return seen


@pytest.mark.parametrize("preset,kept,start_energy", CASES)
def test_optimal_and_myopic_actions_equal_a_direct_search(preset, kept, start_energy):
    assert _check_against_direct_search(_reduced(preset, kept, start_energy)) > 20


def _same_row(params, field, e1, a1, e2, a2):
    arr = np.asarray(getattr(params, field)).copy()
    arr[e1, a1] = arr[e2, a2]
    return arr


ROW_FIELDS = ("energy_delta", "sprint_delta", "trust_delta", "alt_prob", "alt_energy_delta",
              "alt_sprint_delta", "alt_trust_delta", "status_set", "spawn", "boundary_credit")  # fmt: skip


def test_states_that_differ_only_in_what_was_handled_or_said_are_not_merged():
    """The solver merges states with equal keys; two rule books make states that differ only
    in one part of the key, so that a key without it would merge states of different value.

    * seed_v1 (events E1-E4): E2 and E3 have the same effects for action 0 but not for
      action 1, so "E2 then E3 to come" and "E3 then E2 to come" differ only in which events
      were handled.
    * week_v2 (E1-E3): E1's actions 0 and 1 have the same effects and different message
      qualities, so the states after them differ only in the quality sum, which the shaped
      reward pays for at the end of the week."""
    s1 = _reduced("seed_v1", (0, 1, 2, 3))
    changes = {f: _same_row(s1, f, 2, 0, 1, 0) for f in ROW_FIELDS + ("template_quality",)}
    changes["sprint_delta"][2, 1] = 40  # E3 still to come is worth more than E2 still to come
    handled = replace(s1, name="handled", **changes)
    assert _check_against_direct_search(handled) > 20

    v2 = _reduced("week_v2", (0, 1, 2))
    changes = {f: _same_row(v2, f, 0, 1, 0, 0) for f in ROW_FIELDS}
    tq = np.asarray(v2.template_quality).copy()
    tq[0, 0], tq[0, 1] = 0.6, 0.9
    said = replace(v2, name="said", template_quality=tq, **changes)
    assert _check_against_direct_search(said) > 10


def test_a_played_week_is_valued_without_knowing_its_future_order():
    """Q* of a week whose future order is known (a played week) must be the expectation over
    the orders still possible. In seed_v1 most orders give the same return, so here the order
    decides whether the week ends early: E2 drains 15 energy and E3 restores 20, from 10."""
    s1 = _reduced("seed_v1", (0, 1, 2, 3), start_energy=10)
    energy = np.asarray(s1.energy_delta).copy()
    energy[0, :], energy[1, :], energy[2, :] = 0, -15, 20
    order = replace(s1, name="order", energy_delta=energy)
    assert _check_against_direct_search(order) > 5


def test_argmax_rounds_values_to_1e_12_and_breaks_ties_to_the_lowest_index():
    from agents.exact.host import _argmax

    assert _argmax([1.0, 1.0 + 2e-13, 0.5]) == 0  # equal after rounding: the lowest index
    assert _argmax([1.0, 1.0 + 2e-12, 0.5]) == 1
    assert _argmax([0.2, 0.1, 0.3]) == 2
    assert _argmax([-1.0, -2.0, -3.0]) == 0


def test_a_shuffled_event_0_and_an_outcome_that_always_happens():
    """Event 0 (E1) in a shuffled slot, behind E2 in the fixed first slot, and an action whose
    alternative outcome is certain (``alt_prob`` 1): the evaluation and Q* still equal the
    plain enumeration and the direct search."""
    s1 = _reduced("seed_v1", (0, 1, 2, 3))
    slot_event = np.asarray(s1.slot_event).copy()
    slot_event[:4] = [1, 0, 2, 3]
    alt_prob = np.asarray(s1.alt_prob).copy()
    alt_prob[1, 2] = 1.0
    alt_energy = np.asarray(s1.alt_energy_delta).copy()
    alt_energy[1, 2] = -30
    book = replace(
        s1, name="e1_shuffled", slot_event=slot_event, alt_prob=alt_prob,
        alt_energy_delta=alt_energy,
    )  # fmt: skip
    solver = ExactSolver(book)
    assert solver.solved_from is None and solver.solve_seconds is None
    assert 0 in solver.shuffled_events
    for policy in (uniform_policy(), _state_policy):
        ev, want = solver.evaluate(policy), _enumerate(book, policy)
        assert ev.exact_return == pytest.approx(want["return"], abs=1e-9)
        np.testing.assert_allclose(ev.energy_by_day, want["energy_by_day"], atol=1e-9)
    assert _check_against_direct_search(book) > 20


def test_the_solver_refuses_a_spawned_event_in_a_shuffled_slot():
    s1 = _reduced("seed_v1", (0, 1, 2, 3))
    spawn = np.asarray(s1.spawn).copy()
    spawn[0, 0, 0] = 2  # E1 would spawn E3, which sits in a shuffled slot
    with pytest.raises(ValueError, match="^exact solver: spawned events cannot sit in shuffled"):
        ExactSolver(replace(s1, name="bad", spawn=spawn))


@pytest.mark.parametrize("preset,kept,start_energy", CASES)
def test_sampling_with_the_step_memo_plays_the_same_weeks(preset, kept, start_energy):
    """``sample_host_policy`` keeps each step and each action per state; the weeks it plays
    must be those of the plain loop, statistic for statistic, for the solver's policies and for
    a state-dependent rule."""
    from experiments.compare import sample_host_policy

    solver = ExactSolver(_reduced(preset, kept, start_energy))
    for policy in (solver.optimal_policy(), solver.myopic_policy(), deterministic(_energy_rule)):
        memo = sample_host_policy(solver, policy, 400, seed=7)
        plain = sample_host_policy(solver, policy, 400, seed=7, memo=False)
        assert memo == plain
        assert memo["weeks"] == 400 and memo["ci95_score"] >= 0
