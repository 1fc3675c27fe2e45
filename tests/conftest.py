"""Shared, session-wide fixtures: exact solutions are computed once per test run."""

from __future__ import annotations

import os
import tempfile

import pytest

# Tests (and the `wlf` processes they start) keep their caches in a folder of their own, so a
# test never reads what a user's earlier run left in ~/.cache/wlf, nor leaves anything there.
os.environ["WLF_CACHE"] = tempfile.mkdtemp(prefix="wlf-test-cache-")


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


def pytest_sessionfinish(session, exitstatus):
    import shutil

    shutil.rmtree(os.environ["WLF_CACHE"], ignore_errors=True)
