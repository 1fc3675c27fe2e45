"""Designs over rule groups and the rule books they describe.

SALib draws the factor values (Sobol' sequences in Saltelli's scheme, or Morris trajectories);
:func:`one_at_a_time` sweeps each group alone for the policy-switch map.  :func:`apply_groups`
turns rows of factor values into stacked, valid rule books, and :func:`stack_params` validates
them as one batched :class:`~wlf_jax.params.EnvParams`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from wlf_jax.params import EnvParams, InvalidParamsError, field_names, validate

from .groups import PERTURBABLE, RuleGroup


def salib_problem(groups: Sequence[RuleGroup]) -> dict:
    """The SALib problem dict of ``groups``."""
    return {
        "num_vars": len(groups),
        "names": [g.name for g in groups],
        "bounds": [[g.low, g.high] for g in groups],
    }


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
    return np.array(
        [1.0 if g.mode == "scale" else 0.0 if g.mode == "shift" else np.nan for g in groups]
    )


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


# -- rule books from factor values -------------------------------------------------------------


def base_fields(params: EnvParams) -> dict[str, np.ndarray]:
    """The fields of one rule book as numpy arrays."""
    return {f: np.asarray(getattr(params, f)) for f in field_names()}


def apply_groups(
    base: dict[str, np.ndarray], groups: Sequence[RuleGroup], X: np.ndarray
) -> dict[str, np.ndarray]:
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
            new = (
                view * xb
                if grp.mode == "scale"
                else view + xb
                if grp.mode == "shift"
                else np.broadcast_to(xb, view.shape)
            )
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
        raise InvalidParamsError(
            "EnvParams.rubric_weights: a sampled rule book's weights do not sum to 1"
        )
    return params


def slice_fields(
    fields: dict[str, np.ndarray], start: int, stop: int, pad_to: int
) -> dict[str, np.ndarray]:
    """Rows ``start:stop`` of stacked fields, padded to ``pad_to`` rows by repeating the last."""
    out = {}
    for f, v in fields.items():
        part = v[start:stop]
        if len(part) < pad_to:
            part = np.concatenate([part, np.repeat(part[-1:], pad_to - len(part), axis=0)])
        out[f] = np.ascontiguousarray(part)
    return out
