"""JAX: node states, scores and backward induction over the tree of histories (:mod:`.tree`).

Rule books carry their batch on the LAST axis inside this module (rows of nodes x contiguous
rule books vectorise well on CPU; a leading batch axis, as plain ``jax.vmap`` lays it out, leaves
the 5 stakeholders as the minor axis).  ``arrays`` is ``tree.arrays`` as JAX arrays (constants by
default).  :func:`solve` is the entry point; the formulation is in :mod:`.tree`.

Longer than 400 lines on purpose: forward pass, backward induction and the policy maps share
the node-state layout described above and are only correct together.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from agents.exact.tree import (
    Level,
    Structure,
    Tree,
    UnsupportedPresetError,
    build_tree,
    structure_of,
    tree_size,
)
from wlf_jax.events import FIXED, N_ACTIONS, N_EVENTS, STAGING, STATUS_NAMES
from wlf_jax.params import EnvParams

SLEEP_DEBT = STATUS_NAMES.index("sleep_debt")
SMALL = jnp.int16
"""Integer type of node states: hundredths stay within [-200, 300] and boundary sums within
+-100 per decision, so 16 bits are exact and halve the memory traffic of the tree."""
TIE_TOLERANCE = 1e-6
"""Actions whose Q is within this of the best count as optimal; the lowest index wins (like the
host solver, which rounds Q to 12 decimals in float64; float32 needs a looser tolerance)."""

__all__ = ["UnsupportedPresetError", "build_tree", "structure_of", "tree_size", "solve"]


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
