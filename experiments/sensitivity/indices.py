"""Sensitivity indices from the exact scores: Sobol' and Morris (SALib), and the policy-switch
map (how often the optimal action of each event changes when one group moves)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from wlf_jax.events import EVENT_IDS

from .design import salib_problem
from .groups import RuleGroup


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

    res = sobol.analyze(
        salib_problem(groups),
        np.asarray(Y, np.float64),
        calc_second_order=False,
        num_resamples=200,
        conf_level=0.95,
        seed=seed,
    )
    return {
        k: {n: _clean(v) for n, v in zip(names, res[k])} for k in ("S1", "S1_conf", "ST", "ST_conf")
    }


def morris_indices(
    groups: Sequence[RuleGroup], X: np.ndarray, Y: np.ndarray, seed: int = 0
) -> dict[str, dict]:
    """Morris mu* (with 95% half-width), mu and sigma per group, from a Morris design."""
    names = [g.name for g in groups]
    from SALib.analyze import morris

    res = morris.analyze(
        salib_problem(groups),
        np.asarray(X, np.float64),
        np.asarray(Y, np.float64),
        num_resamples=200,
        conf_level=0.95,
        num_levels=4,
        seed=seed,
    )
    return {
        k: {n: _clean(v) for n, v in zip(names, res[k])}
        for k in ("mu_star", "mu_star_conf", "mu", "sigma")
    }


def policy_switch(
    arrival: np.ndarray, owner: np.ndarray, default_arrival: np.ndarray, groups: Sequence[RuleGroup]
) -> dict[str, dict[str, float]]:
    """{event: {group: fraction of that group's one-at-a-time rule books whose optimal action
    for the event differs from the default's}} over the events the default schedules."""
    out = {}
    for e, ev in enumerate(EVENT_IDS):
        if default_arrival[e] < 0:
            continue
        differs = arrival[:, e] != default_arrival[e]
        out[ev] = {g.name: float(differs[owner == k].mean()) for k, g in enumerate(groups)}
    return out
