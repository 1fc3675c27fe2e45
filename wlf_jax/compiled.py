"""The compiled form of a rule book: every reachable state an integer id, a step a gather.

For a rule book whose event order is fixed (``week_v2``), everything random about a week is one
uniform draw per event, and everything else follows from the decisions.  So the states a week
can reach form a finite graph.  :func:`compile_rules` enumerates it once, breadth first, with the
general dynamics (:func:`wlf_jax.dynamics.transition`, batched) and merges states that agree on
everything the future and the observation read.  It stores per state id:

* the event waiting for a decision, and the alternative-outcome probability of each action;
* the next id and the reward of each (action, outcome);
* the observation, whether the week is over, its score and whether it ended early.

:class:`CompiledWeek` is a gymnax 1.0 environment over these tables.  Its state is the id alone;
a step draws one uniform, reads ``alt = uniform < alt_prob[id, action]`` and gathers the next id,
reward and observation.  It is the same environment as :class:`WorkWeek` with the same rule book
and template message quality: every event is decided once, so a uniform drawn per step has the
law of the per-event uniforms ``WorkWeek`` draws at reset, and replaying a scenario's draws
(:meth:`CompiledWeek.step_with_uniform`) plays exactly ``WorkWeek``'s week
(``tests/test_compiled.py`` checks every reachable state and action, and V* against the host
solver, :func:`optimal_values`).  Free-text message quality changes the communication score continuously, so it stays with ``WorkWeek``.

``week_v2``: 151,807 decision states plus the finished weeks; building the tables takes a few
seconds and is cached per rule book in the process (:func:`compiled_for`).  The tables also give
exact state ids to tabular learners and value iteration on the device (:func:`optimal_values`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from . import dynamics
from .env import WorkWeek, observe
from .events import N_ACTIONS, N_EVENTS
from .params import MAX_STEPS, N_DAYS, EnvParams
from .reward import components, rubric_total
from .state import EnvState, Scenario

# The bits of a packed next id: the id (24 bits), the main outcome's index into ``alt_table``
# (6 bits; N_EVENTS * N_ACTIONS <= 64) and, in bit 31, whether that state ends the week.
ID_BITS = 24
ID_MASK = (1 << ID_BITS) - 1
ALT_SHIFT, ALT_MASK = ID_BITS, 63
assert N_EVENTS * N_ACTIONS <= ALT_MASK + 1


class UnsupportedRulesError(ValueError):
    """The rule book cannot be compiled (its event order is random)."""


@struct.dataclass
class CompiledRules:
    """A rule book as state-transition tables (``N`` state ids).

    ``packed`` holds what a step reads in one 16-byte row per (id, action), so a step is one
    gather of a quarter of a cache line: the two next ids (bit 31 set when that state ends the
    week; the main one carries in bits 24-29 the index of its (event, action) in ``alt_table``)
    and the two rewards, as int32 bit patterns.  ``alt_prob``, ``next_id`` and ``reward`` are
    views of it, flat and indexed by ``id * 3 + action`` and ``(id * 3 + action) * 2 + alt``.
    """

    event: jax.Array  # (N,) int32: the event waiting for a decision, -1 once the week is over
    obs: jax.Array  # (N, OBS_SIZE) float32
    done: jax.Array  # (N,) bool
    score: jax.Array  # (N,) float32: the rubric of the state (the week's score once over)
    early_end: jax.Array  # (N,) bool
    components: jax.Array  # (N, N_COMPONENTS) float32: the rubric's components of the state
    day_energy: jax.Array  # (N * 3 * 2, N_DAYS) int8: the energy each day closed by the
    #   transition ended on (hundredths; -1 = the day did not close then), as energy_by_day
    initial: jax.Array  # () int32: Monday morning
    packed: jax.Array  # (N * 3, 4) int32: next id main (+ alt index, done bit) and alt (+ done
    #   bit), reward main/alt
    alt_table: jax.Array  # (E * 3,) float32: the alternative-outcome probability of (event, action)
    layers: tuple[int, ...] = struct.field(pytree_node=False, default=())  # first id of each
    #   layer (decisions made), then N: a transition always leads to a later layer, or absorbs
    name: str = struct.field(pytree_node=False, default="custom")

    @property
    def n_states(self) -> int:
        return int(self.event.shape[0])

    @property
    def alt_prob(self) -> jax.Array:
        """(N * 3,) float32: the alternative-outcome probability of (id, action)."""
        return self.alt_table[(self.packed[:, 0] >> ALT_SHIFT) & ALT_MASK]

    @property
    def next_id(self) -> jax.Array:
        """(N * 3 * 2,) int32: the next id of (id, action, outcome)."""
        return (self.packed[:, 0:2] & ID_MASK).reshape(-1)

    @property
    def reward(self) -> jax.Array:
        """(N * 3 * 2,) float32: the reward of (id, action, outcome)."""
        return jax.lax.bitcast_convert_type(self.packed[:, 2:4], jnp.float32).reshape(-1)


def table_step(rules: CompiledRules, state_id, action, uniform):
    """One decision read off the tables: ``(next id, reward, week over, alternative outcome)``.
    The alternative outcome happens when ``uniform < alt_prob``; ``action`` in 0..2."""
    row = rules.packed[state_id * N_ACTIONS + action]  # the one gather of a step
    alt = uniform < rules.alt_table[(row[0] >> ALT_SHIFT) & ALT_MASK]  # a table of E * 3 floats
    flagged = jnp.where(alt, row[1], row[0])
    reward = jax.lax.bitcast_convert_type(jnp.where(alt, row[3], row[2]), jnp.float32)
    return flagged & ID_MASK, reward, flagged < 0, alt


@struct.dataclass
class CompiledState:
    """A week in the compiled form: its state id.  (Chance is drawn at each step: every event is
    decided once, so one uniform per step has the law of one uniform per event drawn at reset.)"""

    id: jax.Array  # () int32


def _key_columns(s: EnvState) -> np.ndarray:
    """(n, columns) int32: what two states must share to be the same state id.

    Everything the dynamics, the reward and the observation read: all of ``EnvState`` except
    the uniform draws (chance, held apart), ``energy_by_day`` (only written) and which action
    each past event got (only whether it was handled is read)."""
    cols = [
        s.energy[:, None],
        s.sprint[:, None],
        s.trust,
        s.drift,
        s.status,
        s.pending,
        s.actions >= 0,
        s.slot[:, None],
        s.count[:, None],
        s.day[:, None],
        np.asarray(s.quality_sum, np.float32).view(np.int32)[:, None],
        s.boundary[:, None],
        s.done[:, None],
        s.early_end[:, None],
    ]
    return np.ascontiguousarray(np.concatenate([np.asarray(c, np.int32) for c in cols], axis=1))


@functools.lru_cache(maxsize=1)
def _expand_fn():
    """Jitted: every (action, outcome) successor of a batch of states, with its reward."""

    actions = jnp.repeat(jnp.arange(N_ACTIONS), 2)  # (6,): column a * 2 + alt
    alts = jnp.tile(jnp.arange(2), N_ACTIONS)

    def successor(state: EnvState, a, alt, params: EnvParams):
        # a uniform of 0 takes the alternative outcome whenever it is possible, 1 never
        forced = state.replace(uniforms=jnp.full_like(state.uniforms, 1.0 - alt))
        nxt, reward, _ = dynamics.transition(forced, a, -1.0, params)
        # the days this decision closes, with the energy each ended on (-1: not closed here)
        days = jnp.arange(N_DAYS)
        closed = (days >= state.day) & ((days < nxt.day) | nxt.done)
        day_energy = jnp.where(closed, nxt.energy_by_day, -1).astype(jnp.int8)
        return nxt.replace(uniforms=state.uniforms), reward, day_energy

    def successors(state: EnvState, params: EnvParams):
        # vmapped: (n, 6, ...) -- one traced transition, so the program compiles quickly
        return jax.vmap(successor, in_axes=(None, 0, 0, None))(state, actions, alts, params)

    return jax.jit(jax.vmap(successors, in_axes=(0, None)))


@functools.lru_cache(maxsize=1)
def _describe_fn():
    """Jitted: observation and score of a batch of states."""

    def one(state: EnvState, params: EnvParams):
        return observe(state, params), rubric_total(state, params), components(state, params)

    return jax.jit(jax.vmap(one, in_axes=(0, None)))


def _rows(tree, idx):
    """Rows ``idx`` (an index array or a slice) of every leaf of a host batch."""
    return jax.tree_util.tree_map(lambda x: x[idx], tree)


def _padded(tree, n: int, size: int):
    """``tree`` (leading axis ``n``) padded to ``size`` rows by repeating the last row."""
    return jax.tree_util.tree_map(
        lambda x: np.concatenate([x, np.repeat(x[-1:], size - n, axis=0)]), tree
    )


def _in_chunks(fn, states, params: EnvParams, chunk: int = 1 << 14):
    """``fn`` over a host batch of states in fixed-size chunks (one compilation)."""
    n = int(states.count.shape[0])
    outs = []
    for i in range(0, n, chunk):
        part = _rows(states, slice(i, i + chunk))
        m = int(part.count.shape[0])
        out = fn(_padded(part, m, chunk), params)
        outs.append(_rows(jax.device_get(out), slice(0, m)))
    return jax.tree_util.tree_map(lambda *xs: np.concatenate(xs), *outs)


def fixed_order(params: EnvParams) -> bool:
    """Whether the rule book's event order is fixed (then it has a compiled form)."""
    slot_event = np.asarray(params.slot_event)
    return not bool(np.any(np.asarray(params.slot_shuffle) & (slot_event >= 0)))


def compile_rules(params: EnvParams, progress=None, return_states: bool = False):
    """Enumerate every state reachable under ``params`` (template message quality) and tabulate
    the dynamics over them.  Raises :class:`UnsupportedRulesError` for a random event order.

    Returns the :class:`CompiledRules`; with ``return_states``, ``(rules, states)`` where
    ``states`` is the ``EnvState`` of every id (host arrays, leading axis N), for checks."""
    slot_event = np.asarray(params.slot_event)
    if not fixed_order(params):
        raise UnsupportedRulesError(
            f"rule book {params.name!r} shuffles its event order; the compiled form needs a "
            "fixed order (use WorkWeek)"
        )
    say = progress or (lambda _msg: None)
    t0 = time.perf_counter()
    scenario = Scenario(
        slot_event=jnp.asarray(slot_event, jnp.int32), uniforms=jnp.zeros((N_EVENTS,))
    )
    start = jax.tree_util.tree_map(
        lambda x: np.asarray(x)[None], dynamics.initial_state(scenario, params)
    )
    # Every decision adds one to ``count``, so a successor is never a state of an earlier layer:
    # ids are assigned layer by layer, deduplicating within the layer only.  Finished weeks are
    # not expanded: they absorb (next id = own id, reward 0).
    states: list[EnvState] = [start]  # one host batch per layer, in id order
    layers = [0]
    next_id: list[np.ndarray] = []  # per layer: (n, 6)
    reward: list[np.ndarray] = []
    day_energy: list[np.ndarray] = []  # per layer: (n, 6, N_DAYS)
    expand = _expand_fn()
    first = 0  # id of the layer's first state
    for layer in range(MAX_STEPS + 1):
        batch = states[layer]
        n = int(batch.count.shape[0])
        say(f"compiling {params.name}: layer {layer}, {first + n:,} states")
        done = np.asarray(batch.done)
        live = np.flatnonzero(~done)
        nid = np.repeat((first + np.arange(n))[:, None], 6, axis=1)
        rew = np.zeros((n, 6), np.float32)
        days = np.full((n, 6, N_DAYS), -1, np.int8)
        if len(live):
            part = _rows(batch, live)
            succ, r, d = _in_chunks(expand, part, params)
            flat = jax.tree_util.tree_map(lambda x: x.reshape((-1,) + x.shape[2:]), succ)
            keys = _key_columns(flat)
            rows = keys.view(np.dtype((np.void, keys.dtype.itemsize * keys.shape[1]))).ravel()
            _, firsts, inverse = np.unique(rows, return_index=True, return_inverse=True)
            order = np.argsort(firsts)  # new ids in order of first appearance
            rank = np.empty_like(order)
            rank[order] = np.arange(len(order))
            nid[live] = (first + n + rank[inverse.ravel()]).reshape(-1, 6)
            rew[live] = r
            days[live] = d
            states.append(_rows(flat, firsts[order]))
        next_id.append(nid)
        reward.append(rew)
        day_energy.append(days)
        first += n
        layers.append(first)
        if len(states) == layer + 1:
            break
    every = jax.tree_util.tree_map(lambda *xs: np.concatenate(xs), *states)
    obs, score, comps = _in_chunks(_describe_fn(), every, params)
    event = np.where(every.done, -1, slot_event[np.clip(every.slot, 0, len(slot_event) - 1)])
    n_all = len(event)
    if n_all > ID_MASK + 1:
        raise UnsupportedRulesError(
            f"rule book {params.name!r} reaches {n_all:,} states; the compiled form holds at most "
            f"{ID_MASK + 1:,} (use WorkWeek)"
        )
    # (id, action) -> index of its (event, action) in alt_table (a finished week's is event 0's:
    # it absorbs whatever the draw)
    alt_index = np.clip(event, 0, N_EVENTS - 1)[:, None] * N_ACTIONS + np.arange(N_ACTIONS)
    nid_all = np.concatenate(next_id).reshape(-1, 2).astype(np.int64)  # (N * 3, 2)
    rew_all = np.concatenate(reward).astype(np.float32).reshape(-1, 2)
    done_all = np.asarray(every.done, bool)
    flagged = nid_all | (done_all[nid_all].astype(np.int64) << 31)
    flagged[:, 0] |= alt_index.reshape(-1).astype(np.int64) << ALT_SHIFT
    packed = np.concatenate(
        [flagged.astype(np.uint32).view(np.int32), rew_all.view(np.int32)], axis=1
    )
    rules = CompiledRules(
        event=jnp.asarray(event, jnp.int32),
        obs=jnp.asarray(obs, jnp.float32),
        done=jnp.asarray(every.done, bool),
        score=jnp.asarray(score, jnp.float32),
        early_end=jnp.asarray(every.early_end, bool),
        components=jnp.asarray(comps, jnp.float32),
        day_energy=jnp.asarray(np.concatenate(day_energy).reshape(-1, N_DAYS), jnp.int8),
        initial=jnp.int32(0),
        packed=jnp.asarray(packed),
        alt_table=jnp.asarray(np.asarray(params.alt_prob, np.float32).reshape(-1)),
        layers=tuple(layers),
        name=params.name,
    )
    say(f"compiled {params.name}: {rules.n_states:,} states in {time.perf_counter() - t0:.1f} s")
    return (rules, every) if return_states else rules


FORMAT_VERSION = 3
"""Part of every cached file's name (:func:`fingerprint`); an edit to the code of the dynamics
or of the tables already changes the name (:func:`keyed_path`), so this needs no bump for it."""


def cache_dir() -> Path | None:
    """Where compiled tables are kept between runs: ``$WLF_CACHE/compiled`` (default
    ``~/.cache/wlf/compiled``); ``WLF_CACHE=`` (empty) keeps nothing."""
    root = os.environ.get("WLF_CACHE", str(Path.home() / ".cache" / "wlf"))
    return Path(root) / "compiled" if root else None


def fingerprint(params: EnvParams) -> str:
    """A short hash of a rule book (and of the table format): the name of its cached files."""
    from .params import to_python

    text = json.dumps({"v": FORMAT_VERSION, "rules": to_python(params)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def keyed_path(params: EnvParams, kind: str, code_files: Sequence[str | Path]) -> Path | None:
    """Where a value computed from a rule book by some code is kept between processes:
    ``$WLF_CACHE/compiled/<name>-<fingerprint>-<hash of the code files>.<kind>``, so an edit to
    the rule book or to any of ``code_files``, or another JAX or NumPy (whose float32 sums and
    ties a cached value may depend on), never reads a stale value.  None when caching is off
    (``WLF_CACHE=``) or a code file cannot be read."""
    folder = cache_dir()
    if folder is None:
        return None
    code = hashlib.sha256(f"jax {jax.__version__} numpy {np.__version__}".encode())
    try:
        for f in code_files:
            code.update(Path(f).read_bytes())
    except OSError:
        return None
    return folder / f"{params.name}-{fingerprint(params)}-{code.hexdigest()[:16]}.{kind}"


def dynamics_code() -> list[Path]:
    """The files of the dynamics and of :func:`compile_rules` (every module of ``wlf_jax``):
    the code part of the key of the compiled tables and of every value computed from them."""
    return sorted(Path(__file__).parent.glob("*.py"))


def load_or_compile(params: EnvParams, progress=None) -> CompiledRules:
    """:func:`compile_rules`, read from the on-disk cache when this exact rule book was
    compiled before by this code (:func:`keyed_path` over :func:`dynamics_code`), and written
    there otherwise (atomically)."""
    path = keyed_path(params, "npz", dynamics_code())
    if path is not None and path.is_file():
        try:
            with np.load(path) as z:
                fields = {k: jnp.asarray(z[k]) for k in z.files if k != "layers"}
                layers = tuple(int(x) for x in z["layers"])
            return CompiledRules(**fields, layers=layers, name=params.name)
        except (OSError, ValueError, KeyError, TypeError):
            pass  # unreadable or from another layout: compile again and overwrite
    rules = compile_rules(params, progress)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            arrays = {
                k: np.asarray(v) for k, v in vars(rules).items() if k not in ("layers", "name")
            }
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
            np.savez(tmp, layers=np.asarray(rules.layers, np.int64), **arrays)
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only or full disk only costs the next run a recompilation
    return rules


@functools.lru_cache(maxsize=4)
def compiled_for(preset: str) -> CompiledRules:
    """The compiled tables of the preset called ``preset``, built once per process (and kept
    on disk between runs, :func:`load_or_compile`)."""
    from . import presets

    with jax.ensure_compile_time_eval():
        return load_or_compile(presets.get(preset))


class CompiledWeek(environment.Environment[CompiledState, CompiledRules]):
    """A fixed-order rule book as a gymnax 1.0 environment over its compiled tables.

    ``env.step(key, state, action, rules)`` has gymnax's contract; ``rules`` is a
    :class:`CompiledRules` (``compile_rules(params)`` or ``compiled_for(name)``).  ``info`` has
    ``event``, ``action``, ``alt_outcome``, ``score`` and ``early_end``.
    """

    def __init__(self, preset: str = "week_v2"):
        super().__init__()
        self.preset = preset

    @property
    def name(self) -> str:
        return f"CompiledWeek-{self.preset}"

    @property
    def num_actions(self) -> int:
        return N_ACTIONS

    def __hash__(self) -> int:
        return hash((type(self), self.preset))

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.preset == other.preset

    @property
    def default_params(self) -> CompiledRules:
        return compiled_for(self.preset)

    def action_space(self, params: CompiledRules | None = None) -> spaces.Discrete:
        return spaces.Discrete(N_ACTIONS)

    def observation_space(self, params: CompiledRules | None = None) -> spaces.Box:
        """The observation space of the same rule book in :class:`WorkWeek`."""
        from . import presets

        return WorkWeek().observation_space(presets.get(self.preset))

    def reset_env(self, key: jax.Array, params: CompiledRules):
        """Monday morning (the event order is fixed: nothing to draw)."""
        del key
        return params.obs[params.initial], CompiledState(id=params.initial)

    def step_env(self, key, state: CompiledState, action, params: CompiledRules):
        """One decision: ``(obs, state, reward, terminated, info)``; a finished week absorbs.
        The outcome is drawn from ``key``."""
        return self.step_with_uniform(state, action, jax.random.uniform(key), params)

    def step_with_uniform(self, state: CompiledState, action, uniform, params: CompiledRules):
        """:meth:`step_env` with the outcome's uniform draw given: the alternative outcome
        happens when ``uniform < alt_prob``.  Replaying ``scenario.uniforms[event]`` plays the
        week :class:`WorkWeek` plays from ``scenario``."""
        a = jnp.clip(jnp.asarray(action, jnp.int32), 0, N_ACTIONS - 1)
        nid, reward, done, alt = table_step(params, state.id, a, uniform)
        e = params.event[state.id]
        info = {
            "event": e,
            "action": a,
            "alt_outcome": alt & (e >= 0),
            "score": params.score[nid],
            "early_end": params.early_end[nid],
        }
        return params.obs[nid], CompiledState(id=nid), reward, done, info

    def is_terminated(self, state: CompiledState, params: CompiledRules) -> jax.Array:
        return params.done[state.id]

    def is_truncated(self, state: CompiledState, params: CompiledRules) -> jax.Array:
        return jnp.zeros((), bool)

    def get_obs(self, state: CompiledState, params: CompiledRules | None = None, key=None):
        params = self.default_params if params is None else params
        return params.obs[state.id]


@jax.jit
def optimal_values(rules: CompiledRules) -> tuple[jax.Array, jax.Array]:
    """Q* (N, 3) and V* (N,) by backward induction over the layers, on the device.

    Q*(id, a) is the expected sum of rewards from ``id`` after action ``a`` (0 once the week is
    over); V*(initial) is the optimal expected return of the week."""
    n = rules.n_states
    p_alt = rules.alt_prob.reshape(n, N_ACTIONS)
    nxt = rules.next_id.reshape(n, N_ACTIONS, 2)
    rew = rules.reward.reshape(n, N_ACTIONS, 2)
    v = jnp.zeros((n,), jnp.float32)
    q = jnp.zeros((n, N_ACTIONS), jnp.float32)
    for lo, hi in reversed(list(zip(rules.layers[:-1], rules.layers[1:]))):
        future = rew[lo:hi] + v[nxt[lo:hi]]  # (m, 3, 2)
        ql = (1.0 - p_alt[lo:hi]) * future[..., 0] + p_alt[lo:hi] * future[..., 1]
        ql = jnp.where(rules.done[lo:hi, None], 0.0, ql)
        q = q.at[lo:hi].set(ql)
        v = v.at[lo:hi].set(jnp.max(ql, axis=1))
    return q, v
