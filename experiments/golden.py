"""Replay golden files of the original environment and report every mismatch.

Two formats are understood: trajectories (``cases`` with ``order``/``actions``/``steps``) replayed
through the JAX simulator, and text rules (decoder/judge outputs on strings) checked against
``llm_bridge``'s compatibility decoder and judge.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from wlf_jax import presets
from wlf_jax.events import N_EVENTS, STAKEHOLDERS, STATUS_VALUES, action_index, event_index
from wlf_jax.params import COMPONENT_NAMES, MAX_STEPS
from wlf_jax.rollout import replay_scenario
from wlf_jax.state import Scenario

TOL_REWARD = 1e-6
TOL_STATE = 1e-6
TOL_COMPONENT = 1e-5


def load(path: str | Path) -> dict[str, Any]:
    """Read a golden file; raises ``ValueError`` with the path on unreadable content."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read golden file {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("cases", data.get("rows")), list):
        raise ValueError(f"{path}: not a golden file (no 'cases' or 'rows' list)")
    return data


def _replay_batch(cases: list[dict]):
    """Replay every case at once (``vmap`` over cases, ``scan`` over steps)."""
    params = presets.seed_v1()
    n = len(cases)
    slot_event = np.full((n, MAX_STEPS), -1, np.int32)
    uniforms = np.full((n, N_EVENTS), 0.5, np.float32)
    actions = np.zeros((n, MAX_STEPS), np.int32)
    quality = np.full((n, MAX_STEPS), -1.0, np.float32)
    leave = event_index("E4_leave")
    for i, c in enumerate(cases):
        for t, ev in enumerate(c["order"]):
            slot_event[i, t] = event_index(ev)
            actions[i, t] = action_index(ev, c["actions"][ev])
            if t < len(c.get("message_quality", [])):
                quality[i, t] = c["message_quality"][t]
        uniforms[i, leave] = c.get("leave_uniform", 0.5)

    def one(slot_event, uniforms, actions, quality):
        return replay_scenario(
            Scenario(slot_event, uniforms),
            params,
            choose=lambda s, x: x,
            xs=(actions, quality),
            record=lambda s, nxt, r, info: (
                r,
                nxt.energy,
                nxt.sprint,
                nxt.trust,
                nxt.day,
                nxt.done,
                info["components"],
                info["score"],
            ),
        )

    final, per_step = jax.jit(jax.vmap(one))(
        jnp.asarray(slot_event), jnp.asarray(uniforms), jnp.asarray(actions), jnp.asarray(quality)
    )
    return jax.tree_util.tree_map(np.asarray, (final, per_step))


def check_trajectories(data: dict[str, Any]) -> tuple[int, list[str]]:
    """Replay trajectory cases through the JAX simulator; returns (cases, mismatch messages)."""
    cases = data["cases"]
    final, (rew, energy, sprint, trust, day, done, comps, score) = _replay_batch(cases)
    out: list[str] = []

    def diff(i, what, got, want, tol):
        if tol == 0:
            ok = got == want
        else:
            ok = abs(float(got) - float(want)) <= tol
        if not ok:
            out.append(f"case {i}: {what}: got {got!r}, want {want!r}")

    for i, c in enumerate(cases):
        steps = c["steps"]
        total = 0.0
        for t, s in enumerate(steps):
            total += float(rew[i, t])
            diff(i, f"step {t} reward", round(float(rew[i, t]), 6), s["reward"], TOL_REWARD)
            diff(i, f"step {t} energy", energy[i, t] / 100, s["energy"], TOL_STATE)
            diff(i, f"step {t} sprint_health", sprint[i, t] / 100, s["sprint_health"], TOL_STATE)
            for k, who in enumerate(STAKEHOLDERS):
                diff(
                    i,
                    f"step {t} trust {who}",
                    trust[i, t, k] / 100,
                    s["relationships"][who],
                    TOL_STATE,
                )
            diff(i, f"step {t} day", int(day[i, t]), int(s["day"]), 0)
            diff(i, f"step {t} done", bool(done[i, t]), bool(s["done"]), 0)
        if len(steps) < MAX_STEPS and len(steps) < len(c["order"]):
            # the original stopped early: the simulator must have stopped at the same step
            diff(i, "week length", bool(done[i, len(steps) - 1]), True, 0)
        last = len(steps) - 1
        diff(i, "total_reward", total, c["total_reward"], 1e-5)
        for k, name in enumerate(COMPONENT_NAMES):
            diff(
                i,
                f"component {name}",
                float(comps[i, last, k]),
                c["components"][name],
                TOL_COMPONENT,
            )
        diff(i, "rubric_total", float(score[i, last]), c["rubric_total"], TOL_COMPONENT)
        f = c.get("final", {})
        status = final.status[i]
        if f:
            diff(i, "final staging_fixed", bool(status[0] == 1), f["staging_fixed"], 0)
            diff(
                i,
                "final leave_status",
                STATUS_VALUES["leave"][int(status[1])],
                f["leave_status"],
                0,
            )
            diff(i, "final appraisal_done", bool(status[2] == 1), f["appraisal_done"], 0)
            diff(i, "final oncall_accepted", bool(status[3] == 1), f["oncall_accepted"], 0)
    return len(cases), out


def check_file(path: str | Path) -> tuple[int, list[str]]:
    """Check a golden file of either format; returns (cases, mismatch messages)."""
    data = load(path)
    if "cases" in data:
        return check_trajectories(data)
    from llm_bridge.golden_text import check_text_rules

    return check_text_rules(data)


def main(path: str) -> int:
    """Print each mismatch and ``N cases, M mismatches``; return the exit status."""
    n, mismatches = check_file(path)
    for m in mismatches:
        print(m)
    print(f"{n} cases, {len(mismatches)} mismatches")
    return 1 if mismatches else 0
