"""Shared, session-wide fixtures: exact solutions are computed once per test run."""

from __future__ import annotations

import pytest


def solved(preset: str):
    """The solved ExactSolver of a preset: the process-wide one (``agents.exact.solver_for``),
    so it is solved once per test run and shared with the product code under test."""
    from agents.exact import solver_for

    return solver_for(preset).solve()


@pytest.fixture(scope="session")
def solver_week_v2():
    return solved("week_v2")


@pytest.fixture(scope="session")
def solver_seed_v1():
    return solved("seed_v1")
