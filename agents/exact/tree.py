"""A vmappable exact solver: the tree of histories that fixed-shape backward induction runs on.

The host solver (:class:`agents.exact.host.ExactSolver`) walks the decision graph with Python
dictionaries, so it is exact but cannot be ``vmap``-ped over rule books.  This module solves
the same problem with arrays whose shapes depend only on the *structure* of a rule book, so one
compiled call solves thousands of rule books at once.

Formulation
-----------
For a preset with a fixed schedule (no shuffled slots, like ``week_v2``) the *shape* of the
week does not depend on any number of the rule book: which event comes next depends only on
the schedule and on which spawned events are pending, and spawns follow from the (action,
outcome) choices.  So the tree of histories -- each node a sequence of (action, outcome)
choices -- is enumerated once on the host from the :class:`Structure` (schedule, spawn table,
which (event, action) pairs have a chance outcome).  Nodes are grouped by the slot of the event
they decide; the children of the ``n`` decision nodes of a slot form a dense ``(n, C)`` block
(``C`` = the event's (action, outcome) pairs).

In JAX (:mod:`agents.exact.induction`), per rule book:

1. *forward*: the states of a slot's decision nodes are gathered from the child blocks of
   earlier slots (static indices), and their children's states are computed with the table
   transition :func:`child_states` (the same arithmetic as :func:`wlf_jax.dynamics.transition`
   restricted to what the week score can depend on; a differential test checks it).  Every
   child gets its week score (:func:`wlf_jax.reward.rubric_total`) and an early-end flag.
2. *backward*: ``V(child) = score`` for leaves and early-ended weeks, else the value of the
   decision node it is; ``Q(node, a) = sum_o p(o | a) V(child(a, o))`` with ``p`` from
   ``params.alt_prob`` (so it varies with the rule book); ``V(node) = max_a Q``.

No merging of equal states is done: per-level deduplication is rule-book dependent (two
histories reach the same state only when their deltas happen to coincide), so it cannot give
fixed shapes, and the tree is small enough to enumerate (``week_v2``: 173,411 decision nodes,
406,560 leaves; see :func:`tree_size`).  Leaves and chance-free pass-throughs are never copied:
a decision node is gathered straight from the child block where its history was created.

The same tree gives, at the cost of a few more backward passes over scalars, the exact
expected score of any state-independent map (fixed agents) and the optimal action at the most
probable state where each event first arrives (the policy-switch map of the sensitivity
sweep).  Presets with a random event order (``seed_v1``) stay on the host solver.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from wlf_jax.events import N_ACTIONS, N_EVENTS
from wlf_jax.params import N_DAYS, EnvParams


class UnsupportedPresetError(ValueError):
    """The rule book has a structure this solver does not handle (use the host solver)."""


@dataclass(frozen=True)
class Structure:
    """The parameter-independent shape of a week (hashable, so trees are cached by it).

    ``chance[e][a]`` says whether (event, action) has an alternative outcome.  A pair whose
    ``alt_prob`` is 0 in some rule books can still be marked as chance: its alternative branch
    then simply has probability 0.
    """

    slot_event: tuple[int, ...]
    slot_day: tuple[int, ...]
    spawn: tuple[tuple[tuple[int, int], ...], ...]  # (E, A, 2)
    chance: tuple[tuple[bool, ...], ...]  # (E, A)


def structure_of(params: EnvParams, chance: np.ndarray | None = None) -> Structure:
    """The :class:`Structure` of ``params`` (unbatched, or batched: then every rule book of the
    batch must share schedule and spawn table; ``chance`` is the union over the batch).

    Raises :class:`UnsupportedPresetError` for rule books the tree solver does not cover:
    shuffled slots, count-based days, float64 arithmetic, or the seed reward (whose optimum is
    not the week score).
    """
    slot_event = np.asarray(params.slot_event)
    batched = slot_event.ndim > 1

    def one(field: str, rank: int) -> np.ndarray:
        arr = np.asarray(getattr(params, field))
        flat = arr.reshape((-1,) + arr.shape[arr.ndim - rank :]) if batched else arr[None]
        if batched and not (flat == flat[0]).all():
            raise UnsupportedPresetError(
                f"EnvParams.{field} differs within the batch; the tree "
                "solver needs one structure per batch"
            )
        return flat[0]

    if one("slot_shuffle", 1).any():
        raise UnsupportedPresetError(
            "shuffled slots (random event order): use agents.exact.ExactSolver"
        )
    if bool(one("day_by_count", 0)):
        raise UnsupportedPresetError("count-based days: use agents.exact.ExactSolver")
    if bool(one("float64_arithmetic", 0)):
        raise UnsupportedPresetError("float64 arithmetic: use agents.exact.ExactSolver")
    if not bool(one("shaped_reward", 0)):
        raise UnsupportedPresetError(
            "the seed reward is not the week score: use agents.exact.ExactSolver"
        )
    alt_prob = np.asarray(params.alt_prob).reshape(-1, N_EVENTS, N_ACTIONS)
    has_chance = (alt_prob > 0).any(axis=0)
    if chance is not None:
        has_chance = has_chance | np.asarray(chance, bool)
    spawn = one("spawn", 3)
    return Structure(
        slot_event=tuple(int(x) for x in one("slot_event", 1)),
        slot_day=tuple(int(x) for x in one("slot_day", 1)),
        spawn=tuple(tuple(tuple(int(x) for x in pair) for pair in row) for row in spawn),
        chance=tuple(tuple(bool(x) for x in row) for row in has_chance),
    )


# ---------------------------------------------------------------------------------------------
# The tree of histories (host, once per structure)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Level:
    """The decision nodes of one slot and the dense block of their children.

    ``sources``: where the ``n`` nodes come from, in order: runs ``(parent level, column,
    parent rows)`` -- the nodes created by that column of those parents; level -1 = the
    Monday-morning state.  Children are indexed ``(node, c)`` with ``c`` over the event's
    (action, outcome) combinations ``actions`` / ``outcomes``.
    """

    slot: int
    event: int
    n: int
    actions: np.ndarray  # (C,) action of each child column
    outcomes: np.ndarray  # (C,) 0 = main, 1 = alternative
    sources: tuple[tuple[int, int, np.ndarray], ...]
    day: np.ndarray  # (n,) day of each node
    count: np.ndarray  # (n,) decisions made before the node
    next_day: np.ndarray  # (n, C) day after the step, unless the week ends early
    child_node: np.ndarray  # (n, C) global index of the child decision node, -1 = leaf
    offset: int  # global index of this level's first node


@dataclass(frozen=True, eq=False)
class Tree:
    """All levels, in schedule order; decision nodes are numbered level by level."""

    levels: tuple[Level, ...]
    n_nodes: int
    n_leaves: int
    level_of_event: tuple[int, ...]  # (E,) level deciding each event, -1 = never scheduled
    arrays: dict = None  # index arrays and masks the JAX code reads (see tree_arrays)


def _spawnable(s: Structure) -> set[int]:
    return {e for row in s.spawn for pair in row for e in pair if e >= 0}


def _next_active(s: Structure, after: int, pending: frozenset, spawnable: set[int]) -> int | None:
    for t in range(after + 1, len(s.slot_event)):
        e = s.slot_event[t]
        if e >= 0 and (e not in spawnable or e in pending):
            return t
    return None


@functools.lru_cache(maxsize=8)
def build_tree(s: Structure) -> Tree:
    """Enumerate the tree of histories of structure ``s`` (host side, cached).

    A level's nodes are ordered by (source level, creating column, parent), so each run of
    nodes shares one (action, outcome) and the transition broadcasts one row of deltas.
    """
    spawnable = _spawnable(s)
    first = _next_active(s, -1, frozenset(), spawnable)
    if first is None:
        raise UnsupportedPresetError("the schedule has no event")
    # incoming[t]: nodes deciding slot t as (source level, parent row, column, pending, day, count)
    incoming: dict[int, list] = {first: [(-1, 0, 0, frozenset(), 0, 0)]}
    new_position: dict[int, np.ndarray] = {}  # slot -> new position of each incoming entry
    raw = []  # per level: (slot, event, entries, pairs, next_day, child (slot, old position))
    n_leaves = 0
    for t in range(len(s.slot_event)):
        entries = incoming.pop(t, None)
        if not entries:
            continue
        order = sorted(
            range(len(entries)), key=lambda i: (entries[i][0], entries[i][2], entries[i][1])
        )
        new_position[t] = np.argsort(order)
        entries = [entries[i] for i in order]
        e = s.slot_event[t]
        pairs = [(a, o) for a in range(N_ACTIONS) for o in (0, 1) if o == 0 or s.chance[e][a]]
        next_day = np.zeros((len(entries), len(pairs)), np.int32)
        child = np.full((len(entries), len(pairs), 2), -1, np.int64)
        for i, (_, _, _, pending, day, count) in enumerate(entries):
            for c, (a, o) in enumerate(pairs):
                spawned = s.spawn[e][a][o]
                nxt_pending = (pending | {spawned} if spawned >= 0 else pending) - {e}
                nxt = _next_active(s, t, nxt_pending, spawnable)
                if nxt is None:
                    next_day[i, c] = N_DAYS - 1
                    n_leaves += 1
                    continue
                next_day[i, c] = max(day, s.slot_day[nxt])
                bucket = incoming.setdefault(nxt, [])
                child[i, c] = (nxt, len(bucket))
                bucket.append((len(raw), i, c, nxt_pending, int(next_day[i, c]), count + 1))
        raw.append((t, e, entries, pairs, next_day, child))
    offsets, total = {}, 0
    for t, _, entries, *_ in raw:
        offsets[t] = total
        total += len(entries)
    levels = []
    level_of_event = [-1] * N_EVENTS
    for t, e, entries, pairs, next_day, child in raw:
        key = [(x[0], x[2]) for x in entries]
        sources = []
        start = 0
        while start < len(entries):  # runs of one (source level, column)
            stop = start
            while stop < len(entries) and key[stop] == key[start]:
                stop += 1
            rows = np.array([x[1] for x in entries[start:stop]], np.int32)
            sources.append((int(key[start][0]), int(key[start][1]), rows))
            start = stop
        child_node = np.full(child.shape[:2], -1, np.int64)
        for i, c in zip(*np.nonzero(child[..., 0] >= 0)):
            slot, pos = child[i, c]
            child_node[i, c] = offsets[int(slot)] + new_position[int(slot)][pos]
        level_of_event[e] = len(levels)
        levels.append(
            Level(
                slot=t,
                event=e,
                n=len(entries),
                actions=np.array([a for a, _ in pairs], np.int32),
                outcomes=np.array([o for _, o in pairs], np.int32),
                sources=tuple(sources),
                day=np.array([x[4] for x in entries], np.int32),
                count=np.array([x[5] for x in entries], np.int32),
                next_day=next_day,
                child_node=child_node.astype(np.int32),
                offset=offsets[t],
            )
        )
    levels, arrays = _with_arrays(levels)
    return Tree(tuple(levels), total, n_leaves, tuple(level_of_event), arrays)


def _with_arrays(levels: list[Level]) -> tuple[list[Level], dict[str, np.ndarray]]:
    """Collect every large index array the JAX code needs under a key: ``L{i}.*`` for the
    dense child block of level ``i``, ``L{i}.r{j}.rows`` for its ``j``-th source run.  They are
    embedded as constants: as jit arguments instead the program compiled no faster and ran
    ~15% slower (XLA cannot specialise the gathers)."""
    arrays: dict[str, np.ndarray] = {}
    for i, lv in enumerate(levels):
        arrays[f"L{i}.child"] = np.maximum(lv.child_node, 0).astype(np.int32)
        arrays[f"L{i}.leaf"] = lv.child_node < 0
        arrays[f"L{i}.count"] = (lv.count[:, None] + 1).astype(np.float32)
        for r, (_, _, rows) in enumerate(lv.sources):
            arrays[f"L{i}.r{r}.rows"] = rows
    return levels, arrays


def tree_size(params: EnvParams) -> dict[str, int]:
    """Decision nodes, leaves and levels of the tree of ``params``'s structure."""
    tree = build_tree(structure_of(params))
    return {
        "decision_nodes": tree.n_nodes,
        "leaves": tree.n_leaves,
        "levels": len(tree.levels),
        "children": sum(lv.n * len(lv.actions) for lv in tree.levels),
    }
