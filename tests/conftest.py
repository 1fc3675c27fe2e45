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

# The test run compiles with XLA's backend (LLVM) optimisation level 0, and so do the `wlf`
# processes it starts (they inherit XLA_FLAGS): almost every test compiles small programs and
# runs them briefly, so compiling is most of its time. Measured on the 2-core CPU, side by side
# (`pytest -n 2 --dist loadfile`, 534 tests): 520 s -> 437 s. The optimisation level changes how
# fast a program runs, not what it computes: the exact-parity, golden and equality tests pass
# unchanged. A run with another XLA_FLAGS keeps them and adds the level. `wlf` commands run by a
# user keep XLA's default.
TEST_XLA_FLAG = "--xla_backend_optimization_level=0"
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAG}".strip()


def xla_flags_without_devices() -> str:
    """This run's XLA_FLAGS (the test optimisation level) less any host device count, for a
    child process that chooses its own (``wlf bench --devices``)."""
    return " ".join(f for f in os.environ.get("XLA_FLAGS", "").split() if "device_count" not in f)


def xla_flags_with_devices(n: int) -> str:
    """This run's XLA_FLAGS with ``n`` host CPU devices (any count already there replaced), for
    a child process that needs several devices."""
    return f"{xla_flags_without_devices()} --xla_force_host_platform_device_count={n}".strip()


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
