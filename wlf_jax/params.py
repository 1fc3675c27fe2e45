"""`EnvParams`: the whole rule book of a week as a pytree of arrays.

Energy, sprint health and trust are integer hundredths (0..100), so every threshold is exact.
Events are rows of the same tables (base and spawned alike); a step looks up the row of the
current event and the chosen action.  Static sizes live in :mod:`wlf_jax.events`.

Build params with :func:`make_params` (or a preset); it validates on the host and names the
field at fault.  Traced code assumes valid params.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from .events import N_ACTIONS, N_EVENTS, N_STAKEHOLDERS, N_STATUS, STATUS_NAMES, STATUS_VALUES

MAX_STEPS: int = 14
"""Schedule slots of a week; a week never has more decisions than this."""

N_DAYS: int = 5
N_COMPONENTS: int = 5
COMPONENT_NAMES: tuple[str, ...] = (
    "technical_resolution",
    "communication_quality",
    "boundary_setting",
    "energy_to_friday",
    "relationship_preservation",
)

E, A, S, K, T = N_EVENTS, N_ACTIONS, N_STAKEHOLDERS, N_STATUS, MAX_STEPS


def _array(shape: tuple[int, ...], kind: str):
    """An array field of shape ``shape`` and kind ``int`` (int32), ``float`` (float32) or
    ``bool``; :func:`make_params` and :func:`validate` read the schema from these declarations."""
    return struct.field(metadata={"shape": shape, "kind": kind})


@struct.dataclass
class EnvParams:
    """A rule book.  Integer fields are hundredths unless named otherwise.

    Outcomes: every (event, action) has a main and an alternative outcome; the alternative
    happens when the event's uniform draw is below ``alt_prob`` and adds the ``alt_*`` deltas
    to the main ones.
    """

    # start of the week
    start_energy: jax.Array = _array((), "int")
    start_sprint: jax.Array = _array((), "int")
    start_trust: jax.Array = _array((S,), "int")
    start_status: jax.Array = _array((K,), "int")
    # consequences of (event, action)
    energy_delta: jax.Array = _array((E, A), "int")
    sprint_delta: jax.Array = _array((E, A), "int")
    trust_delta: jax.Array = _array((E, A, S), "int")
    alt_prob: jax.Array = _array((E, A), "float")  # probability of the alternative outcome
    alt_energy_delta: jax.Array = _array((E, A), "int")  # added on the alternative outcome
    alt_sprint_delta: jax.Array = _array((E, A), "int")
    alt_trust_delta: jax.Array = _array((E, A, S), "int")
    status_set: jax.Array = _array(
        (E, A, 2, K), "int"
    )  # new value of each status variable, -1 = unchanged
    spawn: jax.Array = _array(
        (E, A, 2), "int"
    )  # event spawned by (main, alternative) outcome, -1 = none
    template_quality: jax.Array = _array(
        (E, A), "float"
    )  # in [0, 1], used when no message quality is given
    boundary_credit: jax.Array = _array(
        (E, A), "int"
    )  # hundredths of boundary_setting earned by the choice
    # schedule
    slot_event: jax.Array = _array((T,), "int")  # event of each slot, -1 = empty slot
    slot_shuffle: jax.Array = _array(
        (T,), "bool"
    )  # slots whose events are permuted among themselves at reset
    slot_day: jax.Array = _array((T,), "int")  # day (0 = Monday) of each slot
    day_by_count: jax.Array = _array(
        (), "bool"
    )  # day = count_day[handled events] instead of slot_day
    count_day: jax.Array = _array((T + 1,), "int")
    recovery: jax.Array = _array((N_DAYS - 1,), "int")  # energy restored overnight after day d
    sleep_debt_penalty: jax.Array = _array((), "int")  # recovery lost the night after sleep debt
    early_end_energy: jax.Array = _array(
        (), "int"
    )  # the week ends when energy <= this after a step
    float64_arithmetic: jax.Array = _array(
        (), "bool"
    )  # reproduce the original's float64 drift (seed_v1)
    # reward
    shaped_reward: jax.Array = _array(
        (), "bool"
    )  # potential-based rubric shaping (else the seed formula)
    reward_coef: jax.Array = _array((4,), "float")  # seed formula: energy, sprint, |trust|, quality
    bonus_thresholds: jax.Array = _array((4,), "int")  # sprint, energy high, energy low, david
    bonus_values: jax.Array = _array(
        (8,), "float"
    )  # sprint, staging, leave, appraisal, energy high,
    #                    energy low, david, no on-call
    # rubric
    rubric_weights: jax.Array = _array((N_COMPONENTS,), "float")
    tech_weights: jax.Array = _array(
        (2,), "float"
    )  # staging fixed, sprint >= tech_sprint_threshold
    tech_sprint_threshold: jax.Array = _array((), "int")
    energy_thresholds: jax.Array = _array((3,), "int")  # descending
    energy_scores: jax.Array = _array(
        (4,), "float"
    )  # score at/above each threshold, last = below all
    relationship_weights: jax.Array = _array((S,), "float")
    name: str = struct.field(pytree_node=False, default="custom")


_SPEC: dict[str, tuple[tuple[int, ...], str]] = {
    f.name: (f.metadata["shape"], f.metadata["kind"])
    for f in dataclasses.fields(EnvParams)
    if "shape" in f.metadata
}
"""Field name -> (shape, kind), read off the field declarations above (the one schema)."""
_DTYPES = {"int": np.int32, "float": np.float32, "bool": np.bool_}


class InvalidParamsError(ValueError):
    """Raised on the host when a rule book is malformed; the message names the field."""


def field_names() -> tuple[str, ...]:
    """Names of the array fields of :class:`EnvParams`, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(EnvParams) if f.name != "name")


def _fail(field: str, why: str) -> None:
    raise InvalidParamsError(f"EnvParams.{field}: {why}")


def _check_range(field: str, arr: np.ndarray, lo: float, hi: float, allow: tuple = ()) -> None:
    bad = ~((arr >= lo) & (arr <= hi))
    for v in allow:
        bad &= arr != v
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        _fail(field, f"value {arr[idx]!r} at index {idx} outside [{lo}, {hi}]")


def validate(params: EnvParams, batched: bool = False) -> EnvParams:
    """Check shapes, dtypes and ranges of every field on the host.

    With ``batched=True`` every field may carry the same leading batch dimensions (a stack of
    rule books for a sweep).  Returns ``params`` unchanged; raises :class:`InvalidParamsError`
    naming the offending field.
    """
    lead: tuple[int, ...] | None = None
    for name, (shape, kind) in _SPEC.items():
        raw = getattr(params, name)
        try:
            arr = np.asarray(raw)
        except Exception as exc:  # pragma: no cover - exotic inputs
            _fail(name, f"cannot be read as an array ({exc})")
        if arr.dtype == object:
            _fail(name, "is not numeric")
        n = len(shape)
        trailing = arr.shape[arr.ndim - n :] if n else ()
        if arr.ndim < n or trailing != shape or (not batched and arr.ndim != n):
            _fail(name, f"expected shape {('...',) if batched else ()}{shape}, got {arr.shape}")
        this_lead = arr.shape[: arr.ndim - n]
        if lead is None:
            lead = this_lead
        elif this_lead != lead:
            _fail(name, f"batch dimensions {this_lead} differ from other fields' {lead}")
        if kind != "bool" and np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
            _fail(name, "contains NaN or infinity")
        if kind == "int" and not np.issubdtype(arr.dtype, np.integer):
            if not np.issubdtype(arr.dtype, np.number) or not np.all(arr == np.round(arr)):
                _fail(name, f"must hold integers (hundredths), got dtype {arr.dtype}")
    p = {name: np.asarray(getattr(params, name)) for name in _SPEC}
    _check_range("alt_prob", p["alt_prob"], 0.0, 1.0)
    _check_range("template_quality", p["template_quality"], 0.0, 1.0)
    for f in ("start_energy", "start_sprint", "start_trust", "early_end_energy"):
        _check_range(f, p[f], 0, 100)
    for f in ("tech_sprint_threshold", "energy_thresholds", "bonus_thresholds"):
        _check_range(f, p[f], 0, 101)
    for f in (
        "energy_delta",
        "sprint_delta",
        "trust_delta",
        "alt_energy_delta",
        "alt_sprint_delta",
        "alt_trust_delta",
        "boundary_credit",
        "recovery",
        "sleep_debt_penalty",
    ):
        _check_range(f, p[f], -100, 100)
    _check_range("spawn", p["spawn"], 0, E - 1, allow=(-1,))
    _check_range("slot_event", p["slot_event"], 0, E - 1, allow=(-1,))
    _check_range("slot_day", p["slot_day"], 0, N_DAYS - 1)
    _check_range("count_day", p["count_day"], 0, N_DAYS - 1)
    for k, status in enumerate(STATUS_NAMES):
        top = len(STATUS_VALUES[status]) - 1
        _check_range("start_status", p["start_status"][..., k], 0, top)
        _check_range("status_set", p["status_set"][..., k], 0, top, allow=(-1,))
    for f in ("rubric_weights", "tech_weights", "energy_scores", "relationship_weights"):
        _check_range(f, p[f], 0.0, 1.0)
    if not batched:
        events = p["slot_event"][p["slot_event"] >= 0]
        if len(set(events.tolist())) != len(events):
            _fail("slot_event", "an event is scheduled in more than one slot")
        spawned = set(p["spawn"][p["spawn"] >= 0].tolist())
        missing = spawned - set(events.tolist())
        if missing:
            _fail("spawn", f"spawns events {sorted(missing)} that have no slot in slot_event")
        if abs(float(p["rubric_weights"].sum()) - 1.0) > 1e-5:
            _fail("rubric_weights", f"must sum to 1, got {float(p['rubric_weights'].sum())}")
        if not np.all(np.diff(p["energy_thresholds"]) <= 0):
            _fail("energy_thresholds", "must be in descending order")
    return params


def make_params(name: str = "custom", **fields: Any) -> EnvParams:
    """Build and validate an :class:`EnvParams` from numpy-compatible values.

    Every field of the rule book must be given; values are cast to the field's dtype after the
    checks (so a float 0.5 in an integer field is reported, not truncated).
    """
    missing = [f for f in _SPEC if f not in fields]
    if missing:
        raise InvalidParamsError(f"EnvParams: missing fields {missing}")
    unknown = [f for f in fields if f not in _SPEC]
    if unknown:
        raise InvalidParamsError(f"EnvParams: unknown fields {unknown}")
    raw = EnvParams(name=name, **{k: np.asarray(v) for k, v in fields.items()})
    validate(raw)
    return EnvParams(
        name=name,
        **{k: jnp.asarray(np.asarray(v).astype(_DTYPES[_SPEC[k][1]])) for k, v in fields.items()},
    )


def replace(params: EnvParams, name: str | None = None, **changes: Any) -> EnvParams:
    """A validated copy of ``params`` with some fields replaced."""
    fields = {k: np.asarray(getattr(params, k)) for k in _SPEC}
    fields.update(changes)
    return make_params(name=params.name if name is None else name, **fields)


def keep_events(params: EnvParams, kept, name: str | None = None, **changes: Any) -> EnvParams:
    """The rule book with only the events ``kept`` (indices): the others are never scheduled
    and never spawned. A small week for exhaustive checks and quick exact solves; ``changes``
    replace further fields (e.g. ``start_energy``)."""
    kept = sorted({int(e) for e in kept})
    slot_event = np.asarray(params.slot_event)
    spawn = np.asarray(params.spawn)
    return replace(
        params,
        name=name,
        slot_event=np.where(np.isin(slot_event, kept), slot_event, -1),
        spawn=np.where(np.isin(spawn, kept), spawn, -1),
        **changes,
    )


def to_python(params: EnvParams) -> dict[str, Any]:
    """The rule book as nested Python lists / numbers (for the plain-Python implementation)."""

    def plain(arr: np.ndarray):
        if (
            arr.dtype.kind == "f"
        ):  # shortest decimal that round-trips the float32 (0.3, not 0.30000001)
            flat = [
                float(np.format_float_positional(x, unique=True))
                for x in arr.astype(np.float32).flat
            ]
            return np.array(flat, dtype=object).reshape(arr.shape).tolist()
        return arr.tolist()

    return {k: plain(np.asarray(getattr(params, k))) for k in _SPEC} | {"name": params.name}
