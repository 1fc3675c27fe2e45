"""Learner configurations of `wlf train`: which module each algorithm is, its tuned settings
per preset, ``Config`` to and from JSON, and the per-seed keys of a run."""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

import jax
import jax.numpy as jnp

ALGOS: dict[str, str] = {"q": "agents.tabular_q", "dqn": "agents.dqn", "ppo": "agents.ppo"}
"""Command-line name -> module of each learner."""

# Tuned settings per (algorithm, preset); anything not listed is the module's Config default.
TUNED: dict[tuple[str, str], dict[str, Any]] = {
    ("q", "week_v2"): {},
    ("q", "seed_v1"): {},
    ("dqn", "week_v2"): {},
    ("dqn", "seed_v1"): {},
    ("ppo", "week_v2"): {},
    ("ppo", "seed_v1"): {"budget_steps": 200_000},
}


def algo_module(algo: str):
    """The learner module of ``algo`` (q, dqn or ppo)."""
    if algo not in ALGOS:
        raise ValueError(f"unknown algorithm {algo!r}; known: {', '.join(ALGOS)}")
    return importlib.import_module(ALGOS[algo])


def default_config(algo: str, preset: str, budget_steps: int | None = None, **overrides):
    """The tuned configuration of ``algo`` on ``preset`` (a module ``Config``), optionally with
    another budget (environment steps per seed) and other fields overridden."""
    mod = algo_module(algo)
    fields = {**TUNED.get((algo, preset), {}), **overrides}
    if budget_steps is not None:
        if budget_steps <= 0:
            raise ValueError("budget_steps must be positive")
        fields["budget_steps"] = int(budget_steps)
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    known = {f.name for f in dataclasses.fields(mod.Config)}
    unknown = set(fields) - known
    if unknown:
        raise ValueError(f"{algo}: unknown settings {sorted(unknown)}")
    return mod.Config(**fields)


def config_to_dict(config) -> dict[str, Any]:
    """A JSON-ready dict of a ``Config`` (tuples become lists)."""
    return {
        k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()
    }


def config_from_dict(algo: str, data: dict[str, Any]):
    """Inverse of :func:`config_to_dict`."""
    mod = algo_module(algo)
    known = {f.name for f in dataclasses.fields(mod.Config)}
    return mod.Config(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known}
    )


def seed_keys(seeds: int, first_seed: int = 0) -> jnp.ndarray:
    """(seeds, 2) uint32 keys: seed ``i`` of a run uses ``PRNGKey(first_seed + i)``."""
    return jnp.stack([jax.random.PRNGKey(first_seed + i) for i in range(seeds)])
