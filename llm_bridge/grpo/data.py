"""The simulator side of GRPO: decision states, prompt rows and the prompt dataset.

The prompts are decision states visited by the plain-Python simulator under a mix of policies
(random, strategic, optimal, accept-everything, epsilon-optimal), so early, late, healthy and
exhausted states all appear.  Each row carries its state (``state_json``, the
:func:`wlf_jax.reference.week_to_json` of the :class:`Week`) and its ``preset``, which the
reward functions (``llm_bridge.rewards``) read back with :func:`restore_week`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from wlf_jax.convert import week_to_state
from wlf_jax.env import WorkWeek
from wlf_jax.events import EVENT_IDS
from wlf_jax.reference import Week, sample_scenario_py, week_from_json, week_to_json

from ..consequence import get_solver
from ..prompts import build_messages

SOURCE_POLICIES: tuple[str, ...] = ("random", "strategic", "optimal", "accept_all", "eps_optimal")
"""Policies that walk the simulator to collect prompt states (see :func:`visit_states`)."""

_ENV = WorkWeek()


def week_description(w: Week, preset: str) -> dict[str, Any]:
    """``WorkWeek.describe`` of a plain-Python week (through :func:`wlf_jax.convert.week_to_state`).

    The rubric is the plain-Python simulator's own (float64, as the solver sees it), passed to
    ``describe`` so no device call is made.
    """
    solver = get_solver(preset)
    ref = solver.ref
    return _ENV.describe(
        week_to_state(w, solver.params), solver.params, rubric=(ref.components(w), ref.score(w))
    )


def week_messages(
    w: Week,
    preset: str,
    show_options: bool = True,
    include_system: bool = True,
    compact: bool = False,
) -> list[dict[str, str]]:
    """Chat messages (system + user) for the current decision of a plain-Python week."""
    return build_messages(
        week_description(w, preset),
        show_options=show_options,
        include_system=include_system,
        compact=compact,
    )


@cache
def _fixed_map(name: str) -> tuple[int, ...]:
    from agents.fixed import action_map

    return tuple(int(a) for a in action_map(name))


def _policy_action(name: str, w: Week, preset: str, rng: random.Random) -> int:
    """Action of a source policy in decision state ``w``."""
    e = w.slot_event[w.slot]
    if name == "random":
        return rng.randrange(3)
    if name in ("strategic", "accept_all"):
        return _fixed_map(name)[e]
    if name == "optimal":
        return get_solver(preset).optimal_action(w)
    if name == "eps_optimal":
        return rng.randrange(3) if rng.random() < 0.3 else get_solver(preset).optimal_action(w)
    raise KeyError(f"unknown source policy {name!r}; known: {', '.join(SOURCE_POLICIES)}")


def visit_states(
    preset: str, n_weeks: int, policies: Sequence[str] = SOURCE_POLICIES, seed: int = 0
) -> list[tuple[str, Week]]:
    """Play ``n_weeks`` weeks with the source policies in turn (week ``i`` uses
    ``policies[i % len]``) and return every decision state visited, as ``(policy, week)``."""
    solver = get_solver(preset)
    ref = solver.ref
    rng = random.Random(seed)
    out: list[tuple[str, Week]] = []
    for i in range(n_weeks):
        name = policies[i % len(policies)]
        w = ref.reset(*sample_scenario_py(solver.rules, rng))
        while not w.done:
            out.append((name, w))
            w, _ = ref.step(w, _policy_action(name, w, preset, rng))
    return out


def state_row(
    w: Week,
    preset: str,
    source: str = "",
    show_options: bool = True,
    include_system: bool = True,
    compact: bool = False,
) -> dict[str, Any]:
    """One prompt-dataset row: the chat prompt plus what the reward needs to restore the state."""
    return {
        "prompt": week_messages(w, preset, show_options, include_system, compact),
        "state_json": json.dumps(week_to_json(w)),
        "preset": preset,
        "event": EVENT_IDS[w.slot_event[w.slot]],
        "day": int(w.day),
        "energy": float(w.values[0]) / (1.0 if get_solver(preset).ref.floats else 100.0),
        "decision": int(w.count),
        "source": source,
    }


def prompt_rows(
    preset: str = "week_v2",
    n_rows: int = 64,
    seed: int = 0,
    policies: Sequence[str] = SOURCE_POLICIES,
    show_options: bool = True,
    include_system: bool = True,
    compact: bool = False,
) -> list[dict[str, Any]]:
    """``n_rows`` distinct decision states (deduplicated on what the future depends on),
    drawn at random from the states the source policies visit, as dataset rows."""
    from agents.exact import state_key

    rng = random.Random(seed + 1)
    seen, pool = set(), []
    n_weeks = max(len(policies), n_rows // 2)
    for attempt in range(8):
        for src, w in visit_states(preset, n_weeks, policies, seed=seed + 1000 * attempt):
            key = state_key(get_solver(preset).canonical(w))
            if key not in seen:
                seen.add(key)
                pool.append((src, w))
        if len(pool) >= n_rows:
            break
    rng.shuffle(pool)
    return [
        state_row(w, preset, src, show_options, include_system, compact) for src, w in pool[:n_rows]
    ]


def restore_week(state_json: str | Mapping[str, Any]) -> Week:
    """The :class:`Week` a row carries (``state_json`` as a string or an already parsed dict)."""
    d = json.loads(state_json) if isinstance(state_json, str) else state_json
    return week_from_json(d)


def prompt_dataset(rows: Sequence[Mapping[str, Any]]):
    """A ``datasets.Dataset`` of rows (conversational ``prompt`` column + state columns)."""
    from datasets import Dataset

    return Dataset.from_list([dict(r) for r in rows])
