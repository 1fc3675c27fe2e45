"""`wlf demo`'s scheduling: the language step in a child process beside the JAX steps, joined
before the benchmark (which must time an otherwise idle machine); cheap stand-in steps."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from experiments.demo import BENCH_TITLE, LLM_TITLE, run_demo


def slow_language_step(out: str, quick: bool) -> dict:
    """Stands in for the language step in the child: slow, and leaves a file behind."""
    time.sleep(1.0)
    Path(out, "language_done").write_text(str(os.getpid()))
    return {"seconds": 1.0, "pid": os.getpid(), "quick": quick}


def failing_language_step(out: str, quick: bool) -> dict:
    raise RuntimeError("the model broke")


def _steps(out: Path, seen: list):
    def jax_step():
        seen.append(("jax", (out / "language_done").exists()))
        return {"pid": os.getpid()}

    def bench():
        seen.append(("bench", (out / "language_done").exists()))
        return {}

    def in_parent_language():  # what the child runs when not in parallel
        return slow_language_step(str(out), True)

    return [
        ("jax step", jax_step),
        (LLM_TITLE, in_parent_language),
        (BENCH_TITLE, bench),
        ("figures", lambda: {}),
    ]


def test_language_step_runs_in_a_child_and_the_bench_waits_for_it(tmp_path):
    seen: list = []
    summary = run_demo(
        tmp_path, quick=True, steps=_steps(tmp_path, seen), background=slow_language_step
    )
    steps = summary["steps"]
    assert list(steps) == ["jax step", LLM_TITLE, BENCH_TITLE, "figures"]  # in plan order
    assert steps[LLM_TITLE]["parallel"] is True and steps[LLM_TITLE]["quick"] is True
    assert steps[LLM_TITLE]["pid"] != os.getpid() == steps["jax step"]["pid"]
    # the JAX step did not wait for the 1 s language step; the benchmark did
    assert seen == [("jax", False), ("bench", True)]
    assert summary["parallel"] is True and (tmp_path / "summary.json").is_file()


def test_sequential_runs_every_step_in_this_process(tmp_path):
    seen: list = []
    summary = run_demo(tmp_path, quick=True, parallel=False, steps=_steps(tmp_path, seen))
    assert summary["steps"][LLM_TITLE]["pid"] == os.getpid()
    assert "parallel" not in summary["steps"][LLM_TITLE]
    assert seen == [("jax", False), ("bench", True)]


def test_a_failing_language_step_fails_the_demo(tmp_path):
    with pytest.raises(RuntimeError, match="the model broke"):
        run_demo(tmp_path, quick=True, steps=_steps(tmp_path, []), background=failing_language_step)
    assert "jax step" in (tmp_path / "summary.json").read_text()  # what finished is kept
