"""`wlf report` makes every figure from saved results (synthetic results of the real shape)."""

from __future__ import annotations

import json

import numpy as np

from experiments.report import make_report
from wlf_jax.events import EVENT_IDS
from wlf_jax.params import COMPONENT_NAMES


def _agent(score, rng):
    comps = {k: float(rng.uniform(0.2, 1)) for k in COMPONENT_NAMES}
    freq = {e: list(np.round(rng.dirichlet([1, 1, 1]), 3)) for e in EVENT_IDS[:7]}
    return {
        "exact_score": score,
        "exact_return": score - 0.36,
        "mean_score": score,
        "ci95_score": 0.001,
        "mean_return": score - 0.36,
        "components": comps,
        "exact_components": comps,
        "energy_by_day": [0.6, 0.7, 0.7, 0.8, 0.9],
        "exact_energy_by_day": [0.6, 0.7, 0.7, 0.8, 0.9],
        "early_end_rate": 0.0,
        "exact_early_end_prob": 0.0,
        "action_freq": freq,
        "exact_action_freq": freq,
    }


def test_report_writes_every_baseline_and_learning_figure(tmp_path):
    rng = np.random.default_rng(0)
    names = [
        "random",
        "accept_all",
        "decline_all",
        "ignore_all",
        "strategic",
        "myopic",
        "best_fixed_map",
        "optimal",
    ]
    res = {
        "preset": "week_v2",
        "agents": {n: _agent(0.4 + 0.05 * i, rng) for i, n in enumerate(names)},
    }
    (tmp_path / "baselines_week_v2.json").write_text(json.dumps(res))
    run = tmp_path / "train_ppo_week_v2"
    run.mkdir()
    (run / "result.json").write_text(
        json.dumps({"algo": "ppo", "preset": "week_v2", "optimal_score": 0.86})
    )
    (run / "curve.json").write_text(
        json.dumps({"env_steps": [0, 10, 20], "scores": [[0.5, 0.7, 0.85], [0.4, 0.8, 0.86]]})
    )
    made = make_report(tmp_path)
    names = sorted(p.name for p in made)
    assert names == [
        "decisions_week_v2.png",
        "energy_week_v2.png",
        "learning_week_v2.png",
        "radar_week_v2.png",
        "scores_week_v2.png",
    ]
    for p in made:
        assert p.stat().st_size > 10_000  # a real image, not an empty canvas


def test_report_on_a_missing_folder_is_a_clear_error(tmp_path):
    import pytest

    with pytest.raises(FileNotFoundError, match="no results folder"):
        make_report(tmp_path / "nope")
