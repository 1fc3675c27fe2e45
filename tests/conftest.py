"""Shared, session-wide fixtures: exact solutions are computed once per test run."""

from __future__ import annotations

import functools

import pytest


@functools.lru_cache(maxsize=None)
def solved(preset: str):
    """The solved ExactSolver of a preset (cached for the whole session)."""
    from agents.exact import ExactSolver
    from wlf_jax import presets

    return ExactSolver(presets.get(preset)).solve()


@pytest.fixture(scope="session")
def solver_week_v2():
    return solved("week_v2")


@pytest.fixture(scope="session")
def solver_seed_v1():
    return solved("seed_v1")
