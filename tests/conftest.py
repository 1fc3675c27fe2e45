"""Shared, session-wide fixtures: exact solutions are computed once per test run."""

from __future__ import annotations

import os
import tempfile

import pytest

from experiments.cli.main import use_compilation_cache

# pytest-xdist's workers share the cores: torch and numpy's BLAS in each worker (and in the
# `wlf` processes it starts) take its share of them (OMP_NUM_THREADS, which they and
# llm_bridge.writers.cpu_threads read) rather than every core, so two workers' thread pools
# do not spin against each other (test_grpo.py: 126 s of test time -> 52 s with two workers
# on two cores). XLA keeps its default.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
if _WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _WORKERS)))

# Tests (and the `wlf` processes they start) keep their caches in a folder of their own, so a
# test never reads what a user's earlier run left in ~/.cache/wlf, nor leaves anything there.
# The folder is made once per test run and shared by pytest-xdist's workers (they inherit the
# environment of the process that starts them): a rule book one worker has solved or compiled,
# and a program JAX has compiled, is read from disk by the other worker and by every `wlf`
# process (every write is a whole file renamed into place). Only that first process removes it.
_OWN_CACHE = "WLF_TEST_CACHE" not in os.environ
if _OWN_CACHE:
    os.environ["WLF_TEST_CACHE"] = tempfile.mkdtemp(prefix="wlf-test-cache-")
os.environ["WLF_CACHE"] = os.environ["WLF_TEST_CACHE"]
use_compilation_cache()  # JAX's compiled programs under $WLF_CACHE/jax, as the `wlf` command keeps them


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

    if _OWN_CACHE:
        shutil.rmtree(os.environ["WLF_TEST_CACHE"], ignore_errors=True)
