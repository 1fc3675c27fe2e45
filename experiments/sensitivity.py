"""Global sensitivity of the week score to the rule book: which consequence rules decide the week.

A *rule group* is a named set of entries of :class:`~wlf_jax.params.EnvParams` moved together by
one factor: scaled (``scale``), shifted (``shift``) or set (``set``) within an interval.  SALib
draws designs over the groups (Sobol' with Saltelli's scheme, or Morris elementary effects);
every sampled rule book is solved *exactly* by :mod:`agents.exact_jax` -- the optimal policy's
expected week score and every fixed agent's -- in chunks of stacked rule books, sharded across
all devices with :mod:`jax.sharding`.  A one-at-a-time sweep of each group from the default
rule book gives the policy-switch map: how often the optimal action of each event (where it
first arrives) differs from the default's.

Pipeline (each step a small function, used by ``wlf sensitivity``)::

    groups = default_groups(params)            # or load_groups(path, params)
    X = sample_design(groups, "sobol", 128, seed)
    fields = apply_groups(base_fields(params), groups, X)     # valid, stacked rule books
    out = Evaluator(structure, action_maps).run(fields)       # exact scores, sharded
    sobol_indices(groups, out["optimal"], seed)
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from wlf_jax.events import ACTION_NAMES, EVENT_IDS, STAKEHOLDERS, action_index, event_index
from wlf_jax.params import COMPONENT_NAMES, EnvParams, InvalidParamsError, field_names, validate

# ---------------------------------------------------------------------------------------------
# Rule groups
# ---------------------------------------------------------------------------------------------

PERTURBABLE: dict[str, tuple[float, float, str]] = {
    "start_energy": (0, 100, "int"),
    "start_sprint": (0, 100, "int"),
    "start_trust": (0, 100, "int"),
    "energy_delta": (-100, 100, "int"),
    "sprint_delta": (-100, 100, "int"),
    "trust_delta": (-100, 100, "int"),
    "alt_prob": (0.0, 1.0, "float"),
    "alt_energy_delta": (-100, 100, "int"),
    "alt_sprint_delta": (-100, 100, "int"),
    "alt_trust_delta": (-100, 100, "int"),
    "template_quality": (0.0, 1.0, "float"),
    "boundary_credit": (-100, 100, "int"),
    "recovery": (-100, 100, "int"),
    "sleep_debt_penalty": (-100, 100, "int"),
    "early_end_energy": (0, 100, "int"),
    "rubric_weights": (0.0, 1.0, "float"),
    "tech_weights": (0.0, 1.0, "float"),
    "tech_sprint_threshold": (0, 101, "int"),
    "energy_thresholds": (0, 101, "int"),
    "energy_scores": (0.0, 1.0, "float"),
    "relationship_weights": (0.0, 1.0, "float"),
}
"""Fields a group may move, with the interval sampled values are clipped to and their kind
(``int`` = hundredths, rounded to integers).  The other fields (schedule, spawn table, status
changes, the seed reward) shape the week itself and are not swept."""

MODES = ("scale", "shift", "set")


class GroupFileError(ValueError):
    """A rule-group file is malformed; the message names the file, the group and the problem."""


@dataclass(frozen=True)
class Target:
    """Entries of one field: ``index`` selects along the leading axes (a partial index selects
    whole rows, e.g. ``(event, action)`` of ``trust_delta`` = all five stakeholders)."""

    field: str
    index: tuple[int | None, ...] = ()  # None = the whole axis

    def np_index(self) -> tuple:
        """The index as a numpy index (None -> ``slice(None)``)."""
        return tuple(slice(None) if i is None else i for i in self.index)


@dataclass(frozen=True)
class RuleGroup:
    """A named factor of the design: every target entry is scaled by, shifted by or set to the
    sampled value ``x`` in ``[low, high]`` (hundredths for integer fields)."""

    name: str
    targets: tuple[Target, ...]
    mode: str
    low: float
    high: float
    doc: str = ""

    def as_dict(self) -> dict:
        """JSON-able description."""
        return {"name": self.name, "mode": self.mode, "range": [self.low, self.high],
                "targets": [{"field": t.field, "index": list(t.index)} for t in self.targets],
                "doc": self.doc}


def _nonzero(params: EnvParams, targets: Sequence[Target]) -> bool:
    return any(np.any(np.asarray(getattr(params, t.field))[t.np_index()] != 0) for t in targets)


def _scheduled_events(params: EnvParams) -> list[int]:
    se = np.asarray(params.slot_event)
    return [int(e) for e in se[se >= 0]]


def default_groups(params: EnvParams, granularity: str = "action") -> list[RuleGroup]:
    """The built-in catalogue of rule groups of ``params``, with default ranges.

    ``granularity="action"``: one group per scheduled (event, action) and kind -- ``energy``,
    ``sprint``, ``trust`` (main and alternative outcome together, scaled by [0.5, 1.5]) and
    ``chance`` (its alternative-outcome probability, which is also the spawn probability where
    the alternative spawns an event; scaled by [0.5, 1.5], clipped to [0, 1]).
    ``granularity="event"``: the same kinds per event (all three actions together).
    Both add per-event ``quality`` (template message quality, x[0.75, 1.25]) and ``boundary``
    (boundary credit, x[0.5, 1.5]); overnight ``recovery`` and the ``sleep_debt_penalty``
    (x[0.5, 1.5]); the early-end energy and start values (shift by +-5 / +-10 hundredths); the
    rubric's five weights (x[0.5, 1.5], renormalised to sum 1), its sprint and energy thresholds
    (shift +-10 hundredths), the middle energy-band scores and the staging and client-trust
    weights (x[0.5, 1.5]).  Groups whose entries are all zero are left out: scaling cannot move
    them.
    """
    if granularity not in ("action", "event"):
        raise ValueError(f"granularity must be 'action' or 'event', got {granularity!r}")
    groups: list[RuleGroup] = []

    def add(name, targets, mode, low, high, doc, need_nonzero=True):
        targets = tuple(targets)
        if not need_nonzero or _nonzero(params, targets):
            groups.append(RuleGroup(name, targets, mode, float(low), float(high), doc))

    kinds = {
        "energy": ("energy_delta", "alt_energy_delta"),
        "sprint": ("sprint_delta", "alt_sprint_delta"),
        "trust": ("trust_delta", "alt_trust_delta"),
        "chance": ("alt_prob",),
    }
    for e in _scheduled_events(params):
        ev = EVENT_IDS[e]
        units = [((e, a), f"{ev}/{ACTION_NAMES[e][a]}") for a in range(3)] \
            if granularity == "action" else [((e,), ev)]
        for index, prefix in units:
            for kind, fields in kinds.items():
                add(f"{prefix}/{kind}", [Target(f, index) for f in fields], "scale", 0.5, 1.5,
                    f"{kind} consequence of {prefix}")
        add(f"{ev}/quality", [Target("template_quality", (e,))], "scale", 0.75, 1.25,
            f"template message quality of {ev}'s actions")
        add(f"{ev}/boundary", [Target("boundary_credit", (e,))], "scale", 0.5, 1.5,
            f"boundary credit of {ev}'s actions")
    add("night/recovery", [Target("recovery")], "scale", 0.5, 1.5, "energy restored overnight")
    add("night/sleep_debt_penalty", [Target("sleep_debt_penalty")], "scale", 0.5, 1.5,
        "recovery lost after a late night")
    add("week/early_end_energy", [Target("early_end_energy")], "shift", -5, 5,
        "energy at or below which the week ends early", need_nonzero=False)
    for f, label in (("start_energy", "energy"), ("start_sprint", "sprint"), ("start_trust", "trust")):
        add(f"start/{label}", [Target(f)], "shift", -10, 10, f"Monday-morning {label}",
            need_nonzero=False)
    for k, comp in enumerate(COMPONENT_NAMES):
        add(f"rubric/weight/{comp}", [Target("rubric_weights", (k,))], "scale", 0.5, 1.5,
            f"rubric weight of {comp} (weights renormalised to sum 1)")
    add("rubric/tech_sprint_threshold", [Target("tech_sprint_threshold")], "shift", -10, 10,
        "sprint health needed for the technical score", need_nonzero=False)
    add("rubric/energy_thresholds", [Target("energy_thresholds")], "shift", -10, 10,
        "Friday-energy band thresholds", need_nonzero=False)
    add("rubric/energy_band_scores", [Target("energy_scores", (1,)), Target("energy_scores", (2,))],
        "scale", 0.5, 1.5, "scores of the middle Friday-energy bands")
    add("rubric/staging_weight", [Target("tech_weights", (0,))], "scale", 0.5, 1.5,
        "weight of the staging fix in the technical score")
    add("rubric/client_trust_weight", [Target("relationship_weights", (0,))], "scale", 0.5, 1.5,
        "weight of the client's trust in relationship preservation")
    return groups


# -- group files ------------------------------------------------------------------------------

def _fail(source: str, where: str, why: str):
    raise GroupFileError(f"{source}: {where}: {why}")


def _index_of(source: str, where: str, spec: dict, params: EnvParams) -> tuple[int, ...]:
    """The entry index a target spec selects (``event`` / ``action`` / ``stakeholder`` names
    or integers, or an explicit ``index`` list)."""
    field = spec["field"]
    shape = np.shape(getattr(params, field))
    if "index" in spec:
        if any(k in spec for k in ("event", "action", "stakeholder")):
            _fail(source, where, "give either 'index' or event/action/stakeholder, not both")
        idx = spec["index"]
        if not isinstance(idx, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in idx):
            _fail(source, where, f"'index' must be a list of integers, got {idx!r}")
    else:
        idx = []
        if "event" in spec:
            ev = spec["event"]
            try:
                idx.append(ev if isinstance(ev, int) else event_index(str(ev)))
            except KeyError as exc:
                _fail(source, where, str(exc.args[0]))
            if "action" in spec:
                act = spec["action"]
                try:
                    idx.append(act if isinstance(act, int) else action_index(EVENT_IDS[idx[0]], str(act)))
                except (KeyError, ValueError, IndexError) as exc:
                    _fail(source, where, f"unknown action {act!r} of event {ev!r} ({exc})")
        elif "action" in spec:
            _fail(source, where, "'action' needs an 'event'")
        if "stakeholder" in spec:
            if field not in ("trust_delta", "alt_trust_delta", "start_trust", "relationship_weights"):
                _fail(source, where, f"field {field!r} has no stakeholder axis")
            who = spec["stakeholder"]
            if who not in STAKEHOLDERS:
                _fail(source, where, f"unknown stakeholder {who!r}; known: {', '.join(STAKEHOLDERS)}")
            pad = len(shape) - 1 - len(idx)
            if pad < 0:
                _fail(source, where, f"too many indices for field {field!r} of shape {shape}")
            idx = idx + [None] * pad + [STAKEHOLDERS.index(who)]
    if len(idx) > len(shape):
        _fail(source, where, f"index {idx} has more axes than field {field!r} of shape {shape}")
    for axis, i in enumerate(idx):
        if isinstance(i, int) and not -shape[axis] <= i < shape[axis]:
            _fail(source, where, f"index {i} out of range for axis {axis} of field {field!r} "
                                 f"(size {shape[axis]})")
    return tuple(idx)


def _range(source: str, where: str, spec: dict) -> tuple[str, float, float]:
    modes = [m for m in MODES if m in spec]
    if len(modes) != 1:
        _fail(source, where, f"give exactly one of {', '.join(MODES)} as [low, high]"
                             + (f" (got {', '.join(modes)})" if modes else ""))
    mode = modes[0]
    rng = spec[mode]
    ok = (isinstance(rng, list) and len(rng) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in rng))
    if not ok:
        _fail(source, where, f"{mode} must be a list [low, high] of two numbers, got {rng!r}")
    low, high = float(rng[0]), float(rng[1])
    if not (math.isfinite(low) and math.isfinite(high)):
        _fail(source, where, f"{mode} bounds must be finite, got {rng!r}")
    if not low < high:
        _fail(source, where, f"{mode} needs low < high, got {rng!r}")
    return mode, low, high


def parse_groups(data: Any, params: EnvParams, source: str = "groups") -> list[RuleGroup]:
    """Rule groups from a parsed group file (see ``docs`` of :func:`load_groups`)."""
    if not isinstance(data, dict):
        _fail(source, "top level", "must be a table/object with a 'group' list")
    unknown = set(data) - {"defaults", "granularity", "group"}
    if unknown:
        _fail(source, "top level", f"unknown keys {sorted(unknown)}; allowed: defaults, granularity, group")
    defaults = data.get("defaults", False)
    if not isinstance(defaults, bool):
        _fail(source, "defaults", f"must be true or false, got {defaults!r}")
    granularity = data.get("granularity", "action")
    if granularity not in ("action", "event"):
        _fail(source, "granularity", f"must be 'action' or 'event', got {granularity!r}")
    raw = data.get("group", [])
    if not isinstance(raw, list) or not raw and not defaults:
        _fail(source, "group", "must be a non-empty list of groups (or set defaults = true)")
    builtin = {g.name: g for g in default_groups(params, granularity)}
    catalogue = {name: g for name, g in builtin.items()} if defaults else {}
    seen: set[str] = set()
    for i, spec in enumerate(raw):
        where = f"group #{i + 1}"
        if not isinstance(spec, dict):
            _fail(source, where, "must be a table/object")
        name = spec.get("name")
        if not isinstance(name, str) or not name.strip():
            _fail(source, where, "needs a non-empty string 'name'")
        where = f"group #{i + 1} ({name!r})"
        if name in seen:
            _fail(source, where, "duplicate group name")
        seen.add(name)
        extra = set(spec) - {"name", "targets", "doc", *MODES}
        if extra:
            _fail(source, where, f"unknown keys {sorted(extra)}; allowed: name, targets, doc, "
                                 + ", ".join(MODES))
        mode, low, high = _range(source, where, spec)
        if "targets" not in spec:
            if name not in builtin:
                _fail(source, where, "has no 'targets' and is not a built-in group name "
                                     "(see `wlf sensitivity --list-groups`)")
            targets = builtin[name].targets
            doc = spec.get("doc", builtin[name].doc)
        else:
            tlist = spec["targets"]
            if not isinstance(tlist, list) or not tlist:
                _fail(source, where, "'targets' must be a non-empty list")
            targets = []
            for j, t in enumerate(tlist):
                tw = f"{where}, target #{j + 1}"
                if not isinstance(t, dict) or "field" not in t:
                    _fail(source, tw, "must be a table/object with a 'field'")
                bad = set(t) - {"field", "event", "action", "stakeholder", "index"}
                if bad:
                    _fail(source, tw, f"unknown keys {sorted(bad)}")
                field = t["field"]
                if field not in PERTURBABLE:
                    why = ("is structural (it shapes the week) and cannot be swept"
                           if field in field_names() else "is not a field of EnvParams")
                    _fail(source, tw, f"field {field!r} {why}; sweepable fields: "
                                      + ", ".join(PERTURBABLE))
                targets.append(Target(field, _index_of(source, tw, t, params)))
            doc = spec.get("doc", "")
        catalogue[name] = RuleGroup(name, tuple(targets), mode, low, high, str(doc))
    return list(catalogue.values())


def load_groups(path: str | os.PathLike, params: EnvParams) -> list[RuleGroup]:
    """Rule groups from a TOML or JSON file.

    Format (TOML; JSON has the same keys)::

        defaults = false          # true: start from the built-in catalogue (override / add)
        granularity = "action"    # built-in catalogue: "action" or "event"

        [[group]]                 # a built-in group with another range
        name = "E6_oncall/yes_people_pleaser/energy"
        scale = [0.25, 2.0]

        [[group]]                 # a new group: any entries of sweepable fields
        name = "late_night_costs"
        shift = [-10, 10]         # or scale = [lo, hi] or set = [lo, hi]; hundredths for ints
        targets = [
          { field = "energy_delta", event = "E7_standup", action = "attend_sacrifice" },
          { field = "sleep_debt_penalty" },
          { field = "trust_delta", event = "E7_standup", stakeholder = "david_chen" },
        ]

    Raises :class:`GroupFileError` naming the file, the group and the problem.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise GroupFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise GroupFileError(f"{path}: invalid JSON: {exc}") from None
    elif path.suffix.lower() == ".toml":
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise GroupFileError(f"{path}: invalid TOML: {exc}") from None
    else:
        raise GroupFileError(f"{path}: unknown file type {path.suffix!r}; use .toml or .json")
    return parse_groups(data, params, str(path))


# ---------------------------------------------------------------------------------------------
# Designs
# ---------------------------------------------------------------------------------------------

def salib_problem(groups: Sequence[RuleGroup]) -> dict:
    """The SALib problem dict of ``groups``."""
    return {"num_vars": len(groups), "names": [g.name for g in groups],
            "bounds": [[g.low, g.high] for g in groups]}


def design_size(method: str, samples: int, n_groups: int) -> int:
    """Rule books of a design: Sobol' (first and total order) N(D+2); Morris N(D+1)."""
    return samples * (n_groups + 2) if method == "sobol" else samples * (n_groups + 1)


def sample_design(groups: Sequence[RuleGroup], method: str, samples: int, seed: int) -> np.ndarray:
    """(rule books, D) factor values drawn by SALib: Sobol' sequences in Saltelli's scheme
    (first and total order, ``samples`` a power of two) or Morris trajectories (4 levels)."""
    problem = salib_problem(groups)
    if method == "sobol":
        if samples < 2 or samples & (samples - 1):
            raise ValueError(f"Sobol' designs need --samples to be a power of two, got {samples}")
        from SALib.sample import sobol

        return sobol.sample(problem, samples, calc_second_order=False, scramble=True, seed=seed)
    if method == "morris":
        if samples < 2:
            raise ValueError(f"Morris designs need at least 2 trajectories, got {samples}")
        from SALib.sample import morris

        return morris.sample(problem, samples, num_levels=4, seed=seed)
    raise ValueError(f"unknown method {method!r}; use sobol or morris")


def identity_row(groups: Sequence[RuleGroup]) -> np.ndarray:
    """(D,) factor values that leave the rule book unchanged (NaN = untouched, for ``set``)."""
    return np.array([1.0 if g.mode == "scale" else 0.0 if g.mode == "shift" else np.nan
                     for g in groups])


def one_at_a_time(groups: Sequence[RuleGroup], points: int) -> tuple[np.ndarray, np.ndarray]:
    """Each group swept over ``points`` evenly spaced values of its range, the others at the
    default: ``(X (D * points, D), group index of each row)``."""
    base = identity_row(groups)
    rows, owner = [], []
    for g, grp in enumerate(groups):
        for x in np.linspace(grp.low, grp.high, points):
            row = base.copy()
            row[g] = x
            rows.append(row)
            owner.append(g)
    return np.asarray(rows).reshape(-1, len(groups)), np.asarray(owner, np.int64)


# ---------------------------------------------------------------------------------------------
# Rule books from factor values
# ---------------------------------------------------------------------------------------------

def base_fields(params: EnvParams) -> dict[str, np.ndarray]:
    """The fields of one rule book as numpy arrays."""
    return {f: np.asarray(getattr(params, f)) for f in field_names()}


def apply_groups(base: dict[str, np.ndarray], groups: Sequence[RuleGroup], X: np.ndarray) -> dict[str, np.ndarray]:
    """Stacked valid rule books: row ``i`` of ``X`` applied to ``base``.  Fields (n, ...).

    Groups apply in order (a later group acts on what an earlier one left).  The result is made
    valid: integer fields rounded and clipped to their range, probabilities and weights clipped
    to [0, 1], rubric weights renormalised to sum 1, energy thresholds kept descending.
    """
    X = np.atleast_2d(np.asarray(X, np.float64))
    n = X.shape[0]
    touched = {t.field for g in groups for t in g.targets}
    out = {f: np.broadcast_to(v, (n,) + v.shape) for f, v in base.items()}
    work = {f: np.array(out[f], np.float64) for f in touched}
    for g, grp in enumerate(groups):
        x = X[:, g]
        for t in grp.targets:
            view = work[t.field][(slice(None),) + t.np_index()]
            xb = x.reshape((n,) + (1,) * (view.ndim - 1))
            new = view * xb if grp.mode == "scale" else view + xb if grp.mode == "shift" else \
                np.broadcast_to(xb, view.shape)
            work[t.field][(slice(None),) + t.np_index()] = np.where(np.isnan(xb), view, new)
    for f, v in work.items():
        lo, hi, kind = PERTURBABLE[f]
        v = np.clip(np.rint(v) if kind == "int" else v, lo, hi)
        if f == "rubric_weights":
            total = v.sum(-1, keepdims=True)
            v = np.where(total > 0, v / np.where(total > 0, total, 1.0), 1.0 / v.shape[-1])
        if f == "energy_thresholds":
            v = -np.sort(-v, axis=-1)
        out[f] = v.astype(base[f].dtype)
    return out


def stack_params(fields: dict[str, np.ndarray], name: str = "sweep") -> EnvParams:
    """Validated stacked :class:`EnvParams` from ``fields`` (n, ...)."""
    params = EnvParams(name=name, **fields)
    validate(params, batched=True)
    w = fields["rubric_weights"].sum(-1)
    if np.any(np.abs(w - 1.0) > 1e-5):
        raise InvalidParamsError("EnvParams.rubric_weights: a sampled rule book's weights do not sum to 1")
    return params


def slice_fields(fields: dict[str, np.ndarray], start: int, stop: int, pad_to: int) -> dict[str, np.ndarray]:
    """Rows ``start:stop`` of stacked fields, padded to ``pad_to`` rows by repeating the last."""
    out = {}
    for f, v in fields.items():
        part = v[start:stop]
        if len(part) < pad_to:
            part = np.concatenate([part, np.repeat(part[-1:], pad_to - len(part), axis=0)])
        out[f] = np.ascontiguousarray(part)
    return out


# ---------------------------------------------------------------------------------------------
# Exact evaluation, sharded over devices
# ---------------------------------------------------------------------------------------------

def maybe_initialize_distributed() -> bool:
    """Join a multi-host run when one is configured (``JAX_COORDINATOR_ADDRESS`` or a cluster
    that :func:`jax.distributed.initialize` detects by itself, flagged by ``WLF_DISTRIBUTED=1``).
    Returns whether it initialised.  Call before any other JAX call."""
    import jax

    if os.environ.get("JAX_COORDINATOR_ADDRESS") or os.environ.get("WLF_DISTRIBUTED") == "1":
        jax.distributed.initialize()
        return True
    return False


def use_compilation_cache(directory: str | os.PathLike) -> None:
    """Keep compiled programs on disk, so a resumed or repeated sweep skips the compile."""
    import jax

    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def device_mesh(devices: Sequence | None = None):
    """A 1-D :class:`jax.sharding.Mesh` named ``rulebooks`` over ``devices`` (default: all
    devices of all processes)."""
    import jax
    from jax.sharding import Mesh

    return Mesh(np.asarray(jax.devices() if devices is None else list(devices)), ("rulebooks",))


_EVALUATORS: dict = {}


def cached_evaluator(structure, action_maps: np.ndarray, mesh=None) -> "Evaluator":
    """An :class:`Evaluator`, reused across calls with the same structure, maps and devices
    (so a process compiles each program once)."""
    mesh = device_mesh() if mesh is None else mesh
    key = (structure, np.asarray(action_maps, np.int32).tobytes(), tuple(d.id for d in mesh.devices.flat))
    if key not in _EVALUATORS:
        _EVALUATORS[key] = Evaluator(structure, action_maps, mesh)
    return _EVALUATORS[key]


class Evaluator:
    """Exact scores of stacked rule books of one structure, sharded along the batch axis.

    ``run(fields)`` takes stacked fields with a multiple of ``len(mesh.devices)`` rows and
    returns numpy ``optimal`` (n,), ``maps`` (n, M), ``arrival`` (n, E).  Each device solves its
    own slice (``shard_map``: no communication); the same code runs on one CPU, 8 GPUs or a
    multi-host slice (every process passes the same full chunk and gets it all back).
    """

    def __init__(self, structure, action_maps: np.ndarray, mesh=None):
        import jax
        from jax.sharding import NamedSharding, PartitionSpec

        from agents.exact_jax import build_tree, solve

        self.mesh = device_mesh() if mesh is None else mesh
        self.devices = int(self.mesh.devices.size)
        tree = build_tree(structure)
        maps = np.asarray(action_maps, np.int32)
        spec = PartitionSpec("rulebooks")
        self.sharding = NamedSharding(self.mesh, spec)

        def local(params):
            out = solve(params, tree, maps)
            return out["optimal_score"], out["map_scores"], out["arrival_actions"]

        shard_map = getattr(jax, "shard_map", None)
        if shard_map is None:  # older jax
            from jax.experimental.shard_map import shard_map
        mapped = shard_map(local, mesh=self.mesh, in_specs=(spec,), out_specs=(spec, spec, spec))
        self._fn = jax.jit(mapped, in_shardings=(self.sharding,), out_shardings=(self.sharding,) * 3)

    def _put(self, x: np.ndarray):
        import jax

        return jax.make_array_from_callback(x.shape, self.sharding, lambda idx: x[idx])

    @staticmethod
    def _get(x) -> np.ndarray:
        import jax

        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(x)

    def run(self, fields: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Solve every rule book of ``fields`` (rows a multiple of the device count)."""
        n = len(next(iter(fields.values())))
        if n % self.devices:
            raise ValueError(f"{n} rule books do not split over {self.devices} devices")
        params = EnvParams(name="sweep", **{f: self._put(v) for f, v in fields.items()})
        optimal, maps, arrival = self._fn(params)
        return {"optimal": self._get(optimal), "maps": self._get(maps), "arrival": self._get(arrival)}


class ChunkStore:
    """Per-chunk results on disk so an interrupted sweep resumes where it stopped.

    ``DIR/run.json`` holds the run's fingerprint; ``DIR/chunks/NNNNN.npz`` one chunk each,
    written atomically.  A directory holding another run is refused unless ``fresh``.
    """

    def __init__(self, directory: str | os.PathLike, fingerprint: dict, fresh: bool = False,
                 writer: bool = True):
        self.dir = Path(directory)
        self.chunks = self.dir / "chunks"
        self.writer = writer
        meta = self.dir / "run.json"
        digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()
        if meta.exists() and not fresh:
            old = json.loads(meta.read_text()).get("digest")
            if old != digest:
                raise ValueError(f"{self.dir} holds the partial results of a different sweep; "
                                 "use another --out or --fresh to discard them")
        elif writer:
            if self.chunks.exists():
                for p in self.chunks.glob("*.npz"):
                    p.unlink()
        if writer:
            self.chunks.mkdir(parents=True, exist_ok=True)
            _atomic_write(meta, json.dumps({"digest": digest, "fingerprint": fingerprint}, indent=1))

    def path(self, i: int) -> Path:
        """File of chunk ``i``."""
        return self.chunks / f"{i:05d}.npz"

    def load(self, i: int) -> dict[str, np.ndarray] | None:
        """Chunk ``i`` if it was saved, else None."""
        try:
            with np.load(self.path(i)) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError):
            return None

    def save(self, i: int, arrays: dict[str, np.ndarray]) -> None:
        """Write chunk ``i`` atomically."""
        if not self.writer:
            return
        tmp = self.path(i).with_suffix(".tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, self.path(i))


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _everyone_has(flag: bool) -> bool:
    """Whether every process has a chunk (the solve is collective across processes, so either
    all skip it or all compute it)."""
    import jax

    if jax.process_count() == 1:
        return flag
    from jax.experimental import multihost_utils

    return bool(np.all(multihost_utils.process_allgather(np.asarray(flag))))


def evaluate_design(base: dict[str, np.ndarray], groups: Sequence[RuleGroup], X: np.ndarray,
                    evaluator: Evaluator, chunk: int, store: ChunkStore | None = None,
                    progress: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
    """Exact results for every row of ``X``, ``chunk`` rule books per device per compiled call;
    chunks found in ``store`` are not recomputed."""
    chunk = max(1, chunk) * evaluator.devices
    parts = []
    for i, start in enumerate(range(0, len(X), chunk)):
        stop = min(start + chunk, len(X))
        got = store.load(i) if store is not None else None
        if got is not None and len(got["optimal"]) != stop - start:
            got = None
        if not _everyone_has(got is not None):
            fields = slice_fields(apply_groups(base, groups, X[start:stop]), 0, stop - start, chunk)
            stack_params(fields)  # host-side validation of every sampled rule book
            res = evaluator.run(fields)
            got = {k: v[: stop - start] for k, v in res.items()}
            if store is not None:
                store.save(i, got)
        parts.append(got)
        if progress:
            progress(stop - start)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


# ---------------------------------------------------------------------------------------------
# Analysis
# ---------------------------------------------------------------------------------------------

def _clean(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def sobol_indices(groups: Sequence[RuleGroup], Y: np.ndarray, seed: int = 0) -> dict[str, dict]:
    """First-order and total Sobol' indices with 95% bootstrap half-widths, per group.

    ``Y``: outputs of a :func:`sample_design` Sobol' design, in design order.  A constant
    output has all indices 0.
    """
    names = [g.name for g in groups]
    if np.ptp(Y) == 0:
        zero = {n: 0.0 for n in names}
        return {"S1": zero, "S1_conf": zero, "ST": zero, "ST_conf": zero}
    from SALib.analyze import sobol

    res = sobol.analyze(salib_problem(groups), np.asarray(Y, np.float64), calc_second_order=False,
                        num_resamples=200, conf_level=0.95, seed=seed)
    return {k: {n: _clean(v) for n, v in zip(names, res[k])} for k in ("S1", "S1_conf", "ST", "ST_conf")}


def morris_indices(groups: Sequence[RuleGroup], X: np.ndarray, Y: np.ndarray, seed: int = 0) -> dict[str, dict]:
    """Morris mu* (with 95% half-width), mu and sigma per group, from a Morris design."""
    names = [g.name for g in groups]
    from SALib.analyze import morris

    res = morris.analyze(salib_problem(groups), np.asarray(X, np.float64), np.asarray(Y, np.float64),
                         num_resamples=200, conf_level=0.95, num_levels=4, seed=seed)
    return {k: {n: _clean(v) for n, v in zip(names, res[k])}
            for k in ("mu_star", "mu_star_conf", "mu", "sigma")}


def policy_switch(arrival: np.ndarray, owner: np.ndarray, default_arrival: np.ndarray,
                  groups: Sequence[RuleGroup]) -> dict[str, dict[str, float]]:
    """{event: {group: fraction of that group's one-at-a-time rule books whose optimal action
    for the event differs from the default's}} over the events the default schedules."""
    out = {}
    for e, ev in enumerate(EVENT_IDS):
        if default_arrival[e] < 0:
            continue
        differs = arrival[:, e] != default_arrival[e]
        out[ev] = {g.name: float(differs[owner == k].mean()) for k, g in enumerate(groups)}
    return out


# ---------------------------------------------------------------------------------------------
# The whole sweep
# ---------------------------------------------------------------------------------------------

@dataclass
class SweepConfig:
    """Settings of one sensitivity run (see ``wlf sensitivity --help``)."""

    preset: str = "week_v2"
    method: str = "sobol"
    samples: int = 64
    seed: int = 0
    groups_file: str | None = None
    granularity: str = "action"
    switch_points: int = 8
    chunk: int = 32  # rule books per device per compiled call
    out: str | None = None
    fresh: bool = False
    trained: str | None = None  # a finished `wlf train` folder: also score its greedy policy


def possible_chance(params: EnvParams, groups: Sequence[RuleGroup]) -> np.ndarray:
    """(E, A) pairs that can have an alternative outcome in some rule book of the sweep: those
    of the default, plus those a ``shift`` or ``set`` group moves the probability of (scaling
    keeps a zero probability zero)."""
    alt_prob = np.asarray(params.alt_prob)
    chance = alt_prob > 0
    for g in groups:
        for t in g.targets:
            if t.field == "alt_prob" and g.mode != "scale":
                chance[t.np_index()] = True
    return chance


def sweep_groups(config: SweepConfig, params: EnvParams) -> list[RuleGroup]:
    """The rule groups of a run: from the file if given, else the built-in catalogue."""
    if config.groups_file:
        return load_groups(config.groups_file, params)
    return default_groups(params, config.granularity)


def _same_preset(meta: dict, run_dir, params: EnvParams) -> None:
    if meta["preset"] != params.name:
        raise ValueError(f"--trained {run_dir} was trained on {meta['preset']!r}; this sweep is "
                         f"around {params.name!r}")


def check_trained(run_dir: str | os.PathLike, params: EnvParams) -> None:
    """Refuse a ``--trained`` folder that is missing, unfinished or from another preset
    (checked before the sweep starts, not after it)."""
    from experiments.train import read_finished_run

    _same_preset(read_finished_run(run_dir)[0], run_dir, params)


def trained_scores(run_dir: str | os.PathLike, params: EnvParams, groups: Sequence[RuleGroup],
                   X: np.ndarray, chance: np.ndarray, chunk: int = 256,
                   tick: Callable[[int], None] | None = None) -> tuple[str, np.ndarray]:
    """``(name, scores (n,))``: the exact expected week score of the greedy policy trained in
    ``run_dir`` (``wlf train``; its representative seed) in each rule book ``X`` describes.

    Uses :func:`agents.exact_policy.make_policy_scorer` (every chance pattern played by the
    network, weighted exactly), ``chunk`` rule books per compiled call on the default device.
    ``chance`` (E, A): pairs that may have an alternative outcome in the sweep.
    """
    from agents.exact_policy import fixed_schedule, greedy_obs_policy, make_policy_scorer
    from experiments.train import load_policy_params, trained_name

    meta, trainer, policy_params, idx = load_policy_params(run_dir)
    _same_preset(meta, run_dir, params)
    chance_events = np.asarray(chance).any(axis=1)
    scorer = make_policy_scorer(greedy_obs_policy(trainer.greedy), fixed_schedule(params), chance_events)
    # every rule book plays 2**K weeks (K chance events): keep a call near 32k weeks
    chunk = max(1, min(chunk, 32_768 // 2 ** int(chance_events.sum())))
    fields = apply_groups(base_fields(params), groups, X)
    out = np.zeros(len(X))
    for start in range(0, len(X), chunk):
        stop = min(len(X), start + chunk)
        part = stack_params(slice_fields(fields, start, stop, chunk))
        out[start:stop] = np.asarray(scorer(policy_params, part))[:stop - start]
        if tick:
            tick(stop - start)
    return trained_name(meta, idx), out


def run_sensitivity(config: SweepConfig, progress: Callable[[int, int], None] | None = None,
                    mesh=None, params: EnvParams | None = None,
                    groups: Sequence[RuleGroup] | None = None) -> dict[str, Any]:
    """Run a sensitivity analysis end to end and return the JSON-able result.

    Evaluates, exactly, the default rule book, the design (``config.method``) and the
    one-at-a-time sweep for the policy-switch map; ``progress(done, total)`` is called after
    every chunk.  With ``config.out`` every chunk is saved there and a rerun resumes.
    ``params`` / ``groups`` replace the preset / the configured groups (tests, notebooks).
    """
    import jax

    from agents.exact_jax import UnsupportedPresetError, build_tree, structure_of
    from agents.fixed import FIXED_MAP_NAMES, action_map
    from wlf_jax import presets

    t0 = time.perf_counter()
    params = presets.get(config.preset) if params is None else params
    groups = list(sweep_groups(config, params) if groups is None else groups)
    if not groups:
        raise ValueError("no rule groups to sweep")
    if config.trained:
        check_trained(config.trained, params)
    names = ["optimal", *FIXED_MAP_NAMES]
    maps = np.stack([action_map(n) for n in FIXED_MAP_NAMES])
    try:
        structure = structure_of(params, possible_chance(params, groups))
    except UnsupportedPresetError as exc:
        raise ValueError(f"rule book {params.name!r} cannot be swept by the vectorised exact "
                         f"solver ({exc}); sensitivity sweeps need a fixed-schedule preset such "
                         "as week_v2") from None
    tree = build_tree(structure)
    X_design = sample_design(groups, config.method, config.samples, config.seed)
    X_oat, owner = one_at_a_time(groups, config.switch_points)
    X = np.concatenate([identity_row(groups)[None], X_design, X_oat])
    evaluator = cached_evaluator(structure, maps, mesh)
    store = None
    if config.out:
        fingerprint = {"preset": params.name, "method": config.method, "samples": config.samples,
                       "seed": config.seed, "switch_points": config.switch_points,
                       "chunk": config.chunk, "devices": evaluator.devices,
                       "groups": [g.as_dict() for g in groups], "rows": len(X),
                       "default": {k: v.tolist() for k, v in base_fields(params).items()}}
        store = ChunkStore(Path(config.out), fingerprint, config.fresh, writer=jax.process_index() == 0)
    done = [0]
    n_trained = 1 + len(X_design) if config.trained else 0  # the default and the design

    def tick(k: int) -> None:
        done[0] += k
        if progress:
            progress(done[0], len(X) + n_trained)

    t_eval, cpu_eval = time.perf_counter(), time.process_time()
    res = evaluate_design(base_fields(params), groups, X, evaluator, config.chunk, store, tick)
    eval_s, eval_cpu_s = time.perf_counter() - t_eval, time.process_time() - cpu_eval
    scores = np.concatenate([res["optimal"][:, None], res["maps"]], axis=1)  # (n, 1 + M)
    n_design = len(X_design)
    trained_name, trained_s = None, None
    if config.trained:
        t_trained = time.perf_counter()
        chance = possible_chance(params, groups)
        trained_name, y = trained_scores(config.trained, params, groups, X[:n_trained], chance, tick=tick)
        trained_s = time.perf_counter() - t_trained
        names.append("trained")
        pad = np.full(len(X), np.nan)
        pad[:n_trained] = y
        scores = np.concatenate([scores, pad[:, None]], axis=1)
    design_scores = scores[1:1 + n_design]
    outputs = {}
    for j, name in enumerate(names):
        y = design_scores[:, j]
        if config.method == "sobol":
            outputs[name] = sobol_indices(groups, y, config.seed)
        else:
            outputs[name] = morris_indices(groups, X_design, y, config.seed)
        outputs[name]["default"] = float(scores[0, j])
        outputs[name]["mean"] = float(y.mean())
        outputs[name]["std"] = float(y.std())
        if name == "trained":
            outputs[name]["policy"] = trained_name
    default_arrival = res["arrival"][0]
    switch = policy_switch(res["arrival"][1 + n_design:], owner, default_arrival, groups)
    from wlf_jax.events import ACTION_NAMES as AN

    wall = time.perf_counter() - t0
    return {
        "preset": params.name,
        "method": config.method,
        "samples": config.samples,
        "rule_books": int(len(X)),
        "design_rule_books": int(n_design),
        "switch_rule_books": int(len(X_oat)),
        "wall_s": wall,
        "eval_s": eval_s,
        "eval_cpu_s": eval_cpu_s,
        "rule_books_per_s": len(X) / eval_s if eval_s > 0 else None,
        "trained_s": trained_s,
        "devices": evaluator.devices,
        "processes": jax.process_count(),
        "seed": config.seed,
        "tree": {"decision_nodes": tree.n_nodes, "leaves": tree.n_leaves,
                 "levels": len(tree.levels)},
        "groups": [g.as_dict() for g in groups],
        "outputs": outputs,
        "policy_switch": switch,
        "default_actions": {EVENT_IDS[e]: AN[e][int(a)] for e, a in enumerate(default_arrival) if a >= 0},
    }


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------

def _top(values: dict[str, float | None], k: int) -> list[str]:
    return sorted(values, key=lambda n: -(values[n] or 0.0))[:k]


def plot_sobol(result: dict, path: str | os.PathLike, top: int = 20) -> None:
    """Bar chart of S1 and ST (95% CI error bars) of the ``top`` groups by ST, per output."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outs = result["outputs"]
    fig, axes = plt.subplots(1, len(outs), figsize=(4.2 * len(outs), 0.32 * top + 1.8), squeeze=False)
    for ax, (name, o) in zip(axes[0], outs.items()):
        keys = _top(o["ST"], top)[::-1]
        y = np.arange(len(keys))
        val = lambda d: np.array([d[k] or 0.0 for k in keys])  # noqa: E731
        ax.barh(y + 0.2, val(o["ST"]), 0.4, xerr=val(o["ST_conf"]), label="total (ST)", color="#c44e52")
        ax.barh(y - 0.2, val(o["S1"]), 0.4, xerr=val(o["S1_conf"]), label="first order (S1)", color="#4c72b0")
        ax.set_yticks(y, keys, fontsize=7)
        ax.set_title(f"{name} (default {o['default']:.3f})", fontsize=9)
        ax.set_xlim(left=min(0.0, ax.get_xlim()[0]))
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"Sobol' indices of the exact week score ({result['preset']}, "
                 f"{result['rule_books']:,} rule books)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_morris(result: dict, path: str | os.PathLike, label: int = 8) -> None:
    """mu*-sigma scatter per output (a grid of panels), the ``label`` largest mu* named."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outs = result["outputs"]
    ncols = min(3, len(outs))
    nrows = -(-len(outs) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.0 * ncols, 4.8 * nrows), squeeze=False)
    for ax in axes.flat[len(outs):]:
        ax.set_visible(False)
    for ax, (name, o) in zip(axes.flat, outs.items()):
        keys = list(o["mu_star"])
        mu = np.array([o["mu_star"][k] or 0.0 for k in keys])
        sd = np.array([o["sigma"][k] or 0.0 for k in keys])
        ax.scatter(mu, sd, s=12, color="#4c72b0")
        for rank, k in enumerate(_top(o["mu_star"], label)):
            i = keys.index(k)
            ax.annotate(k, (mu[i], sd[i]), fontsize=6, xytext=(4, 6 * (rank % 3) - 6),
                        textcoords="offset points")
        ax.set_xlabel("mu* (mean |elementary effect|)")
        ax.set_ylabel("sigma")
        ax.set_title(f"{name} (default {o['default']:.3f})", fontsize=9)
        ax.grid(alpha=0.3)
    fig.suptitle(f"Morris elementary effects of the exact week score ({result['preset']}, "
                 f"{result['rule_books']:,} rule books)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_policy_switch(result: dict, path: str | os.PathLike, max_groups: int = 60) -> None:
    """Heatmap event x rule group of the policy-switch fractions (groups that switch anything,
    most switching first, at most ``max_groups``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sw = result["policy_switch"]
    events = list(sw)
    groups = [g["name"] for g in result["groups"]]
    total = {g: sum(sw[e][g] for e in events) for g in groups}
    cols = [g for g in sorted(groups, key=lambda g: -total[g]) if total[g] > 0][:max_groups]
    if not cols:
        cols = groups[: min(len(groups), 20)]
    M = np.array([[sw[e][g] for g in cols] for e in events])
    fig, ax = plt.subplots(figsize=(max(6.0, 0.28 * len(cols) + 3), 0.4 * len(events) + 2.8))
    im = ax.imshow(M, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_yticks(range(len(events)), events, fontsize=7)
    ax.set_xticks(range(len(cols)), cols, rotation=90, fontsize=6)
    fig.colorbar(im, ax=ax, label="fraction of rule books where the optimal action differs")
    ax.set_title("Which rule changes flip the optimal action (one group at a time, "
                 f"{result['switch_rule_books']:,} rule books)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def save_figures(result: dict, out_dir: str | os.PathLike) -> list[str]:
    """Write the run's figures as PNG into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    if result["method"] == "sobol":
        paths.append(out_dir / "sobol_indices.png")
        plot_sobol(result, paths[-1])
    else:
        paths.append(out_dir / "morris_mu_sigma.png")
        plot_morris(result, paths[-1])
    paths.append(out_dir / "policy_switch.png")
    plot_policy_switch(result, paths[-1])
    return [str(p) for p in paths]


__all__ = [
    "GroupFileError", "RuleGroup", "Target", "SweepConfig", "Evaluator", "ChunkStore",
    "default_groups", "load_groups", "parse_groups", "sample_design", "apply_groups",
    "one_at_a_time", "identity_row", "sobol_indices", "morris_indices", "policy_switch",
    "run_sensitivity", "save_figures",
]
