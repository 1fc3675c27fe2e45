"""A vmappable exact solver: fixed-shape backward induction over the tree of histories.

The host solver (:class:`agents.exact.ExactSolver`) walks the decision graph with Python
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

In JAX, per rule book:

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
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from wlf_jax.events import FIXED, N_ACTIONS, N_EVENTS, STAGING, STATUS_NAMES
from wlf_jax.params import N_DAYS, EnvParams

SLEEP_DEBT = STATUS_NAMES.index("sleep_debt")
SMALL = jnp.int16
"""Integer type of node states: hundredths stay within [-200, 300] and boundary sums within
+-100 per decision, so 16 bits are exact and halve the memory traffic of the tree."""
TIE_TOLERANCE = 1e-6
"""Actions whose Q is within this of the best count as optimal; the lowest index wins (like the
host solver, which rounds Q to 12 decimals in float64; float32 needs a looser tolerance)."""


class UnsupportedPresetError(ValueError):
    """The rule book has a structure this solver does not handle (use the host solver)."""


# ---------------------------------------------------------------------------------------------
# Structure: what the shape of the tree depends on
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# JAX: node states, scores, backward induction.  Rule books carry their batch on the LAST axis
# inside this section (rows of nodes x contiguous rule books vectorise well on CPU; a leading
# batch axis, as plain ``jax.vmap`` lays it out, leaves the 5 stakeholders as the minor axis).
# ``arrays`` is ``tree.arrays`` as JAX arrays (constants by default).
# ---------------------------------------------------------------------------------------------

NodeStates = dict[str, jnp.ndarray]
"""Node states, arrays of shape (nodes..., B) (``trust``: (nodes..., S, B)): ``energy``,
``sprint``, ``trust``, ``staging``, ``sleep_debt``, ``quality_sum``, ``boundary``, ``early_end``.
Only the statuses the week score (staging) and the dynamics (sleep debt) read are kept; the
number of decisions is structural (``Level.count``)."""


def batch_last(params: EnvParams) -> tuple[EnvParams, bool]:
    """``params`` with a trailing batch axis on every field, and whether it was batched.

    Accepts one rule book or a stack with one leading batch axis.
    """
    batched = jnp.ndim(params.start_energy) == 1
    if batched:
        return jax.tree_util.tree_map(lambda x: jnp.moveaxis(jnp.asarray(x), 0, -1), params), True
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x)[..., None], params), False


def initial_node(rules: EnvParams) -> NodeStates:
    """The Monday-morning state as one node: shapes (1, B)."""
    b = rules.start_energy.shape[-1]
    return {
        "energy": rules.start_energy.astype(SMALL)[None],
        "sprint": rules.start_sprint.astype(SMALL)[None],
        "trust": rules.start_trust.astype(SMALL)[None],
        "staging": rules.start_status[STAGING].astype(SMALL)[None],
        "sleep_debt": rules.start_status[SLEEP_DEBT].astype(SMALL)[None],
        "quality_sum": jnp.zeros((1, b), jnp.float32),
        "boundary": jnp.zeros((1, b), SMALL),
        "early_end": jnp.zeros((1, b), bool),
    }


def _overnight(energy, sleep, early, day: np.ndarray, next_day: np.ndarray, rules: EnvParams):
    """Energy after the nights between each node's ``day`` and its child's ``next_day``.

    :func:`wlf_jax.dynamics.transition` goes night by night: night ``d`` adds ``recovery[d]``
    (less the sleep-debt penalty on the first night) and clamps to [0, 100].  Clamped additions
    compose into one: ``clip(energy + total gain, low, high)``, where ``low`` / ``high`` are the
    clamp bounds pushed through the later nights, so each child needs one clip whatever the
    number of nights.  A week that just ended early has no nights.  ``day`` / ``next_day`` are
    static arrays of the child shape; only a few (day, next day) pairs occur, selected with
    static masks.
    """
    recovery = rules.recovery.astype(SMALL)
    pairs = sorted(set(zip(day.ravel().tolist(), next_day.ravel().tolist())))
    several = any(d1 - d0 > 1 for d0, d1 in pairs)  # only then can the bounds differ from [0, 100]

    def composed(d0: int, d1: int):
        gain, low, high = (
            jnp.zeros_like(recovery[0]),
            jnp.zeros_like(recovery[0]),
            jnp.full_like(recovery[0], 100),
        )
        for d in range(d0, d1):
            gain = gain + recovery[d]
            if d > d0:
                low, high = (
                    jnp.clip(low + recovery[d], 0, 100),
                    jnp.clip(high + recovery[d], 0, 100),
                )
        return gain, low, high

    gain, low, high = composed(*pairs[0])
    for d0, d1 in pairs[1:]:
        mask = jnp.asarray((day == d0) & (next_day == d1))[..., None]
        g, lo, hi = composed(d0, d1)
        gain = jnp.where(mask, g, gain)
        if several:
            low, high = jnp.where(mask, lo, low), jnp.where(mask, hi, high)
    if not several:
        low, high = 0, 100
    penalty = jnp.where(sleep == 1, rules.sleep_debt_penalty.astype(SMALL), 0)
    nights = jnp.asarray(next_day > day)[..., None] & ~early
    return jnp.where(nights, jnp.clip(energy + gain - penalty, low, high), energy)


def child_states(
    nodes: NodeStates,
    event: int,
    actions,
    outcomes,
    day: np.ndarray,
    next_day: np.ndarray,
    rules: EnvParams,
) -> NodeStates:
    """States after (action, outcome) choices of ``event``.

    ``nodes`` (shape P + (B,)) broadcast against the static ``actions`` / ``outcomes`` (numpy,
    shape A'): a dense block of children is ``nodes`` (n, 1, B) with columns (1, C); a run of
    single children is rows (k, B) with scalar columns.  ``day`` / ``next_day`` (numpy, the
    child shape) are the days from the tree (see :func:`_overnight`).

    The arithmetic of :func:`wlf_jax.dynamics.transition` for integer rule books (deltas
    clamped to [0, 100], early end on energy, overnight recovery less the sleep-debt penalty)
    with days and spawns taken from the tree; message quality is the template quality.
    """
    e, a, o = event, actions, outcomes
    alt = jnp.asarray(np.asarray(o) == 1)[..., None]  # A' + (1,)
    d_energy = (rules.energy_delta[e, a] + jnp.where(alt, rules.alt_energy_delta[e, a], 0)).astype(
        SMALL
    )
    d_sprint = (rules.sprint_delta[e, a] + jnp.where(alt, rules.alt_sprint_delta[e, a], 0)).astype(
        SMALL
    )
    d_trust = (
        rules.trust_delta[e, a] + jnp.where(alt[..., None], rules.alt_trust_delta[e, a], 0)
    ).astype(SMALL)
    energy = jnp.clip(nodes["energy"] + d_energy, 0, 100)
    sprint = jnp.clip(nodes["sprint"] + d_sprint, 0, 100)
    trust = jnp.clip(nodes["trust"] + d_trust, 0, 100)
    set_staging = rules.status_set[e, a, o, STAGING].astype(SMALL)
    staging = jnp.where(set_staging >= 0, set_staging, nodes["staging"])
    set_sleep = rules.status_set[e, a, o, SLEEP_DEBT].astype(SMALL)
    sleep = jnp.where(set_sleep >= 0, set_sleep, nodes["sleep_debt"])
    early = energy <= rules.early_end_energy.astype(SMALL)
    # written unlike _overnight's mask on purpose: XLA would share one (n, C, B) mask between
    # the two, and the shared array costs a third more time than computing it twice
    slept = jnp.asarray(next_day > day)[..., None]
    return {
        "energy": _overnight(energy, sleep, early, day, next_day, rules),
        "sprint": sprint,
        "trust": trust,
        "staging": staging,
        "sleep_debt": jnp.where(slept, jnp.where(early, sleep, jnp.zeros_like(sleep)), sleep),
        "quality_sum": nodes["quality_sum"] + rules.template_quality[e, a],
        "boundary": nodes["boundary"] + rules.boundary_credit[e, a].astype(SMALL),
        "early_end": early,
    }


def node_score(nodes: NodeStates, count, rules: EnvParams) -> jnp.ndarray:
    """The week score of node states (shape (nodes..., B)); ``count`` (nodes...) float32
    decisions made (broadcastable).

    The same formula as :func:`wlf_jax.reward.rubric_total` for integer rule books (a test
    compares them): weighted technical resolution, mean message quality, clipped boundary
    credit, energy band, clipped weighted trust.
    """
    r = rules
    technical = r.tech_weights[0] * (nodes["staging"] == FIXED) + r.tech_weights[1] * (
        nodes["sprint"] >= r.tech_sprint_threshold
    )
    communication = nodes["quality_sum"] / jnp.maximum(count, 1.0)[..., None]
    boundary = jnp.clip(nodes["boundary"] / 100.0, 0.0, 1.0)
    energy = nodes["energy"]
    th, es = r.energy_thresholds, r.energy_scores
    energy_band = jnp.where(
        energy >= th[0],
        es[0],
        jnp.where(energy >= th[1], es[1], jnp.where(energy >= th[2], es[2], es[3])),
    )
    trust = nodes["trust"].astype(jnp.float32)
    weighted = sum(r.relationship_weights[s] * trust[..., s, :] for s in range(trust.shape[-2]))
    relationship = jnp.clip(weighted / 100.0, 0.0, 1.0)
    w = r.rubric_weights
    return (
        w[0] * technical
        + w[1] * communication
        + w[2] * boundary
        + w[3] * energy_band
        + w[4] * relationship
    ).astype(jnp.float32)


def level_nodes(
    stored: list[NodeStates], init: NodeStates, tree: Tree, i: int, rules: EnvParams, arrays: dict
) -> NodeStates:
    """The states of level ``i``'s decision nodes (n, ..., B), each recomputed from its
    parent's stored state and the (action, outcome) that created it, one run at a time.

    Only decision nodes are stored (``week_v2``: 173k) -- the dense child blocks (580k) are
    scored where they are computed and never written out, which keeps memory traffic low.
    """
    level = tree.levels[i]
    parts = []
    for r, (src, col, rows_np) in enumerate(level.sources):
        rows = arrays[f"L{i}.r{r}.rows"]
        if src < 0:
            parts.append({k: v[rows] for k, v in init.items()})
            continue
        parent = tree.levels[src]
        nodes = {k: v[rows] for k, v in stored[src].items()}
        parts.append(
            child_states(
                nodes,
                parent.event,
                parent.actions[col],
                parent.outcomes[col],
                parent.day[rows_np],
                parent.next_day[rows_np, col],
                rules,
            )
        )
    if len(parts) == 1:
        return parts[0]
    return {k: jnp.concatenate([p[k] for p in parts]) for k in parts[0]}


def child_probabilities(level: Level, rules: EnvParams) -> jnp.ndarray:
    """(C, B) probability of each child column given its action."""
    p_alt = rules.alt_prob[level.event, level.actions].astype(jnp.float32)
    return jnp.where(jnp.asarray(level.outcomes == 1)[:, None], p_alt, 1.0 - p_alt)


def forward(rules: EnvParams, tree: Tree, arrays: dict) -> list[tuple[jnp.ndarray, jnp.ndarray]]:
    """Per level: ``(score, terminal)`` of every child, shapes (n, C, B): the week score of the
    child state and whether the week is over there (leaf or early end)."""
    init = initial_node(rules)
    stored: list[NodeStates] = []
    out = []
    for i, level in enumerate(tree.levels):
        nodes = level_nodes(stored, init, tree, i, rules, arrays)
        stored.append({k: v for k, v in nodes.items() if k != "early_end"})
        children = child_states(
            {k: v[:, None] for k, v in nodes.items()},
            level.event,
            level.actions[None],
            level.outcomes[None],
            np.broadcast_to(level.day[:, None], level.next_day.shape),
            level.next_day,
            rules,
        )
        terminal = children["early_end"] | arrays[f"L{i}.leaf"][..., None]
        # stored once: without the barrier XLA may fuse (and so recompute) the whole child
        # transition into each consumer of the scores
        out.append(
            jax.lax.optimization_barrier(
                (node_score(children, arrays[f"L{i}.count"], rules), terminal)
            )
        )
    return out


def _child_values(values: jnp.ndarray, tree: Tree, i: int, leaves, arrays: dict) -> jnp.ndarray:
    """(n, C, B) value of every child: its score if the week is over there, else its node's."""
    score, terminal = leaves[i]
    if (tree.levels[i].child_node < 0).all():  # the week ends after this event whatever happens
        return score
    return jnp.where(terminal, score, values[arrays[f"L{i}.child"]])


def _expectation(child: jnp.ndarray, p: jnp.ndarray, level: Level, action: int) -> jnp.ndarray:
    """(n, B) expected child value of ``action``: sum over its outcome columns."""
    cols = np.flatnonzero(level.actions == action)
    return sum(p[c] * child[:, c] for c in cols)


def backward(rules: EnvParams, tree: Tree, leaves, arrays: dict) -> tuple[jnp.ndarray, list[tuple]]:
    """Optimal values of all decision nodes (n_nodes, B) and Q* per level (a tuple of A arrays
    (n, B) each; kept apart because reductions over a size-3 axis vectorise poorly on CPU)."""
    b = rules.start_energy.shape[-1]
    values = jnp.zeros((tree.n_nodes, b), jnp.float32)
    qs: list[tuple] = [None] * len(tree.levels)
    for i in reversed(range(len(tree.levels))):
        level = tree.levels[i]
        child = _child_values(values, tree, i, leaves, arrays)
        p = child_probabilities(level, rules)
        q = tuple(_expectation(child, p, level, a) for a in range(N_ACTIONS))
        qs[i] = q
        values = values.at[level.offset : level.offset + level.n].set(
            functools.reduce(jnp.maximum, q)
        )
    return values, qs


@functools.lru_cache(maxsize=64)
def map_subtree(tree: Tree, action_map: tuple[int, ...]) -> tuple:
    """The part of the tree a state-independent map can reach (host, cached).

    Per level with reachable nodes: ``(level index, local node indices (k,), its action's
    child columns (kc,), compact positions of those nodes (k,), compact positions of their
    children (k, kc), 0 for leaves)``.  A fixed map reaches at most one node per chance
    pattern, so this is tiny (``week_v2``: at most 2**7 leaves).
    """
    position = {0: 0}
    rows = []
    for i, level in enumerate(tree.levels):
        local = np.array(
            sorted(
                g - level.offset for g in position if level.offset <= g < level.offset + level.n
            ),
            np.int64,
        )
        if not len(local):
            continue
        cols = np.flatnonzero(level.actions == action_map[level.event])
        children = level.child_node[local][:, cols]
        for g in children[children >= 0]:
            position[int(g)] = len(position)
        child_pos = np.array([[position.get(int(g), 0) for g in row] for row in children], np.int64)
        node_pos = np.array([position[int(level.offset + j)] for j in local], np.int64)
        rows.append((i, local, cols, node_pos, child_pos.reshape(children.shape)))
    return tuple(rows)


def policy_values(rules: EnvParams, tree: Tree, leaves, action_maps: np.ndarray) -> jnp.ndarray:
    """Exact expected week score of each state-independent map (M, E) (host array). (M, B)

    Backward induction restricted to the nodes each map reaches (:func:`map_subtree`), reusing
    the children's scores of the full tree.
    """
    b = rules.start_energy.shape[-1]
    out = []
    for amap in np.asarray(action_maps, np.int64):
        rows = map_subtree(tree, tuple(int(x) for x in amap))
        size = 1 + sum(len(r[1]) for r in rows)
        values = jnp.zeros((size, b), jnp.float32)
        for i, local, cols, node_pos, child_pos in reversed(rows):
            score, terminal = leaves[i]
            sel = (local[:, None], cols[None, :])
            child = jnp.where(terminal[sel], score[sel], values[child_pos])  # (k, kc, B)
            p = child_probabilities(tree.levels[i], rules)[cols]  # (kc, B)
            values = values.at[node_pos].set(jnp.sum(child * p[None], axis=1))
        out.append(values[0])
    return jnp.stack(out)


def greedy_actions(q: tuple) -> jnp.ndarray:
    """Lowest-index action whose Q is within :data:`TIE_TOLERANCE` of the best; ``q`` is a
    tuple of A arrays of equal shape."""
    best = functools.reduce(jnp.maximum, q)
    act = jnp.full(best.shape, len(q) - 1, jnp.int32)
    for a in reversed(range(len(q) - 1)):
        act = jnp.where(q[a] >= best - TIE_TOLERANCE, a, act)
    return act


def first_argmax(x: jnp.ndarray) -> jnp.ndarray:
    """``argmax`` over axis 0 (first index on ties) with plain reductions (fast on CPU)."""
    iota = jnp.arange(x.shape[0], dtype=jnp.int32).reshape((-1,) + (1,) * (x.ndim - 1))
    return jnp.min(jnp.where(x == jnp.max(x, axis=0), iota, x.shape[0]), axis=0)


def arrival_actions(rules: EnvParams, tree: Tree, qs: list[tuple], arrays: dict) -> jnp.ndarray:
    """(E, B) the optimal action of each event at the state where it first arrives, -1 = never.

    "Where it first arrives": the decision node of that event with the highest probability of
    being reached under the optimal policy from Monday (ties: the lower node index).  Events the
    optimal policy never reaches (e.g. spawned events it avoids) use the node most likely under
    a uniformly random policy instead, so every scheduled event gets an action.
    """
    b = rules.start_energy.shape[-1]
    acts, reach = [], []  # reach[i]: (2, n, B) probability of each node: optimal, uniform policy
    for i, (level, q) in enumerate(zip(tree.levels, qs)):
        parts = []
        for r, (src, col, rows_np) in enumerate(level.sources):
            if src < 0:
                parts.append(jnp.ones((2, len(rows_np), b), jnp.float32))
                continue
            rows = arrays[f"L{i}.r{r}.rows"]
            parent = tree.levels[src]
            p = child_probabilities(parent, rules)[col]  # (B,)
            follows = acts[src][rows] == parent.actions[col]
            weight = jnp.stack(
                [jnp.where(follows, p, 0.0), jnp.broadcast_to(p / N_ACTIONS, follows.shape)]
            )
            parts.append(reach[src][:, rows] * weight)
        reach.append(jnp.concatenate(parts, axis=1))
        acts.append(greedy_actions(q))  # (n, B)
    out = []
    for e in range(N_EVENTS):
        li = tree.level_of_event[e]
        if li < 0:
            out.append(jnp.full((b,), -1, jnp.int32))
            continue
        opt, any_ = reach[li][0], reach[li][1]
        node = jnp.where(jnp.max(opt, axis=0) > 0, first_argmax(opt), first_argmax(any_))  # (B,)
        iota = jnp.arange(opt.shape[0], dtype=jnp.int32)[:, None]
        out.append(jnp.max(jnp.where(iota == node, acts[li], -1), axis=0))
    return jnp.stack(out)


def solve(
    params: EnvParams,
    tree: Tree | None = None,
    action_maps: Any = None,
    arrays: dict | None = None,
    arrival: bool = True,
) -> dict[str, jnp.ndarray]:
    """Solve rule books exactly: ``params`` is one rule book or a stack (leading batch axis).

    Pure JAX for a given (static) ``tree`` and ``action_maps``: jit it, vmap it, or pass a
    stack directly (faster: the batch becomes the minor axis).  ``arrays``: ``tree.arrays`` as
    JAX arrays (default: embedded constants).  Returns, with the batch axis first when batched:

    * ``optimal_score`` — V*, the optimal expected week score;
    * ``optimal_return`` — V* - Φ(Monday), equal to the host solver's ``value()``;
    * ``q_monday`` (A,) — Q* (expected score) of the first decision's actions;
    * ``arrival_actions`` (E,) — see :func:`arrival_actions` (unless ``arrival=False``);
    * ``map_scores`` (M,) — with ``action_maps`` (M, E): each fixed map's exact expected score.
    """
    if tree is None:
        tree = build_tree(structure_of(params))
    if arrays is None:
        arrays = {k: jnp.asarray(v) for k, v in tree.arrays.items()}
    rules, batched = batch_last(params)
    leaves = forward(rules, tree, arrays)
    values, qs = backward(rules, tree, leaves, arrays)
    phi0 = node_score(initial_node(rules), jnp.zeros((1,), jnp.float32), rules)[0]
    out = {
        "optimal_score": values[0],
        "optimal_return": values[0] - phi0,
        "q_monday": jnp.stack([q[0] for q in qs[0]], axis=-1),
    }
    if arrival:
        out["arrival_actions"] = arrival_actions(rules, tree, qs, arrays).T
    if action_maps is not None:
        out["map_scores"] = policy_values(rules, tree, leaves, action_maps).T
    if not batched:
        out = {k: v[0] for k, v in out.items()}
    return out


def make_solver(structure: Structure, action_maps: Any = None, arrival: bool = True):
    """A jitted ``solve_batch(params) -> dict`` for rule books of ``structure`` (one rule book
    or a stack with a leading batch axis)."""
    tree = build_tree(structure)
    maps = None if action_maps is None else np.asarray(action_maps, np.int32)
    return jax.jit(lambda p: solve(p, tree, maps, arrival=arrival))


def solve_one(
    params: EnvParams, action_maps: Any = None, arrival: bool = True
) -> dict[str, np.ndarray]:
    """Convenience: solve one rule book (or a stack); numpy results."""
    return solve_one_structure(params, structure_of(params), action_maps, arrival)


def solve_one_structure(
    params: EnvParams, structure: Structure, action_maps: Any = None, arrival: bool = False
) -> dict[str, np.ndarray]:
    """Like :func:`solve_one` with an explicit structure (e.g. with extra chance pairs)."""
    return jax.tree_util.tree_map(np.asarray, make_solver(structure, action_maps, arrival)(params))
