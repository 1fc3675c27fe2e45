"""Rule groups: the named factors of a sensitivity design, and the files that define them.

A *rule group* moves a set of entries of :class:`~wlf_jax.params.EnvParams` together: scaled
(``scale``), shifted (``shift``) or set (``set``) within an interval.  :func:`default_groups`
is the built-in catalogue of a rule book; :func:`load_groups` reads a TOML or JSON group file
(built-in groups with other ranges, or new groups over any sweepable field).

Longer than 400 lines on purpose: most of it is the built-in catalogue of rule groups, which
reads best as one table.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wlf_jax.events import ACTION_NAMES, EVENT_IDS, STAKEHOLDERS, action_index, event_index
from wlf_jax.params import COMPONENT_NAMES, EnvParams, field_names

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
        return {
            "name": self.name,
            "mode": self.mode,
            "range": [self.low, self.high],
            "targets": [{"field": t.field, "index": list(t.index)} for t in self.targets],
            "doc": self.doc,
        }


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
        units = (
            [((e, a), f"{ev}/{ACTION_NAMES[e][a]}") for a in range(3)]
            if granularity == "action"
            else [((e,), ev)]
        )
        for index, prefix in units:
            for kind, fields in kinds.items():
                add(
                    f"{prefix}/{kind}",
                    [Target(f, index) for f in fields],
                    "scale",
                    0.5,
                    1.5,
                    f"{kind} consequence of {prefix}",
                )
        add(
            f"{ev}/quality",
            [Target("template_quality", (e,))],
            "scale",
            0.75,
            1.25,
            f"template message quality of {ev}'s actions",
        )
        add(
            f"{ev}/boundary",
            [Target("boundary_credit", (e,))],
            "scale",
            0.5,
            1.5,
            f"boundary credit of {ev}'s actions",
        )
    add("night/recovery", [Target("recovery")], "scale", 0.5, 1.5, "energy restored overnight")
    add(
        "night/sleep_debt_penalty",
        [Target("sleep_debt_penalty")],
        "scale",
        0.5,
        1.5,
        "recovery lost after a late night",
    )
    add(
        "week/early_end_energy",
        [Target("early_end_energy")],
        "shift",
        -5,
        5,
        "energy at or below which the week ends early",
        need_nonzero=False,
    )
    starts = (("start_energy", "energy"), ("start_sprint", "sprint"), ("start_trust", "trust"))
    for f, label in starts:
        add(
            f"start/{label}",
            [Target(f)],
            "shift",
            -10,
            10,
            f"Monday-morning {label}",
            need_nonzero=False,
        )
    for k, comp in enumerate(COMPONENT_NAMES):
        add(
            f"rubric/weight/{comp}",
            [Target("rubric_weights", (k,))],
            "scale",
            0.5,
            1.5,
            f"rubric weight of {comp} (weights renormalised to sum 1)",
        )
    add(
        "rubric/tech_sprint_threshold",
        [Target("tech_sprint_threshold")],
        "shift",
        -10,
        10,
        "sprint health needed for the technical score",
        need_nonzero=False,
    )
    add(
        "rubric/energy_thresholds",
        [Target("energy_thresholds")],
        "shift",
        -10,
        10,
        "Friday-energy band thresholds",
        need_nonzero=False,
    )
    add(
        "rubric/energy_band_scores",
        [Target("energy_scores", (1,)), Target("energy_scores", (2,))],
        "scale",
        0.5,
        1.5,
        "scores of the middle Friday-energy bands",
    )
    add(
        "rubric/staging_weight",
        [Target("tech_weights", (0,))],
        "scale",
        0.5,
        1.5,
        "weight of the staging fix in the technical score",
    )
    add(
        "rubric/client_trust_weight",
        [Target("relationship_weights", (0,))],
        "scale",
        0.5,
        1.5,
        "weight of the client's trust in relationship preservation",
    )
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
        integers = isinstance(idx, list) and all(
            isinstance(i, int) and not isinstance(i, bool) for i in idx
        )
        if not integers:
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
                    idx.append(
                        act if isinstance(act, int) else action_index(EVENT_IDS[idx[0]], str(act))
                    )
                except (KeyError, ValueError, IndexError) as exc:
                    _fail(source, where, f"unknown action {act!r} of event {ev!r} ({exc})")
        elif "action" in spec:
            _fail(source, where, "'action' needs an 'event'")
        if "stakeholder" in spec:
            if field not in (
                "trust_delta",
                "alt_trust_delta",
                "start_trust",
                "relationship_weights",
            ):
                _fail(source, where, f"field {field!r} has no stakeholder axis")
            who = spec["stakeholder"]
            if who not in STAKEHOLDERS:
                _fail(
                    source, where, f"unknown stakeholder {who!r}; known: {', '.join(STAKEHOLDERS)}"
                )
            pad = len(shape) - 1 - len(idx)
            if pad < 0:
                _fail(source, where, f"too many indices for field {field!r} of shape {shape}")
            idx = idx + [None] * pad + [STAKEHOLDERS.index(who)]
    if len(idx) > len(shape):
        _fail(source, where, f"index {idx} has more axes than field {field!r} of shape {shape}")
    for axis, i in enumerate(idx):
        if isinstance(i, int) and not -shape[axis] <= i < shape[axis]:
            _fail(
                source,
                where,
                f"index {i} out of range for axis {axis} of field {field!r} (size {shape[axis]})",
            )
    return tuple(idx)


def _range(source: str, where: str, spec: dict) -> tuple[str, float, float]:
    modes = [m for m in MODES if m in spec]
    if len(modes) != 1:
        _fail(
            source,
            where,
            f"give exactly one of {', '.join(MODES)} as [low, high]"
            + (f" (got {', '.join(modes)})" if modes else ""),
        )
    mode = modes[0]
    rng = spec[mode]
    ok = (
        isinstance(rng, list)
        and len(rng) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in rng)
    )
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
        _fail(
            source,
            "top level",
            f"unknown keys {sorted(unknown)}; allowed: defaults, granularity, group",
        )
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
            _fail(
                source,
                where,
                f"unknown keys {sorted(extra)}; allowed: name, targets, doc, " + ", ".join(MODES),
            )
        mode, low, high = _range(source, where, spec)
        if "targets" not in spec:
            if name not in builtin:
                _fail(
                    source,
                    where,
                    "has no 'targets' and is not a built-in group name "
                    "(see `wlf sensitivity --list-groups`)",
                )
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
                    why = (
                        "is structural (it shapes the week) and cannot be swept"
                        if field in field_names()
                        else "is not a field of EnvParams"
                    )
                    _fail(
                        source,
                        tw,
                        f"field {field!r} {why}; sweepable fields: " + ", ".join(PERTURBABLE),
                    )
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
