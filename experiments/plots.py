"""Figures from saved results (PNG, matplotlib Agg).  Every function takes plain JSON-like data,
writes one file and returns its path; agents keep one colour across all figures."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from wlf_jax.events import ACTION_NAMES, DAYS, EVENT_IDS  # noqa: E402
from wlf_jax.params import COMPONENT_NAMES  # noqa: E402

AGENT_COLOURS = {
    "optimal": "#1b9e77",
    "best_fixed_map": "#66a61e",
    "strategic": "#7570b3",
    "myopic": "#e6ab02",
    "random": "#999999",
    "accept_all": "#d95f02",
    "decline_all": "#e7298a",
    "ignore_all": "#a6761d",
    "ppo": "#1f78b4",
    "q": "#6a3d9a",
    "dqn": "#b15928",
    "llm": "#fb9a99",
    "scripted": "#cab2d6",
}
_EXTRA = ["#1f78b4", "#6a3d9a", "#b15928", "#fb9a99", "#cab2d6", "#ff7f00"]


def colour(agent: str) -> str:
    """A stable colour for an agent name (trained agents 'ppo@...' share their algorithm's)."""
    base = agent.split("@")[0].split(":")[0]
    if base in AGENT_COLOURS:
        return AGENT_COLOURS[base]
    return _EXTRA[sum(map(ord, agent)) % len(_EXTRA)]


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path


def rubric_radar(agents: dict[str, dict[str, float]], path: Path, title: str) -> Path:
    """Radar of the five rubric components (exact expectations), one polygon per agent."""
    names = list(COMPONENT_NAMES)
    angles = np.linspace(0, 2 * np.pi, len(names), endpoint=False).tolist()
    fig = plt.figure(figsize=(7.5, 7))
    ax = fig.add_subplot(111, polar=True)
    for agent, comps in agents.items():
        vals = [comps[n] for n in names]
        ax.plot(angles + angles[:1], vals + vals[:1], color=colour(agent), lw=2, label=agent)
        ax.fill(angles + angles[:1], vals + vals[:1], color=colour(agent), alpha=0.06)
    ax.set_xticks(angles)
    ax.set_xticklabels([n.replace("_", "\n") for n in names], fontsize=9)
    ax.set_ylim(0, 1)
    ax.set_yticks([0.25, 0.5, 0.75, 1.0])
    ax.set_title(title, pad=24, fontsize=12)
    ax.legend(loc="upper right", bbox_to_anchor=(1.38, 1.12), fontsize=8, frameon=False)
    return _save(fig, path)


def energy_by_day(agents: dict[str, dict[str, Any]], path: Path, title: str) -> Path:
    """Expected energy at the end of each day per agent, with the early-end rate in the legend."""
    fig, ax = plt.subplots(figsize=(8, 4.6))
    x = np.arange(len(DAYS))
    for agent, a in agents.items():
        label = f"{agent} (ends early {100 * a['early_end']:.1f}%)"
        ax.plot(x, a["energy_by_day"], marker="o", color=colour(agent), lw=2, label=label)
    for thr, txt in ((0.70, "full energy score"), (0.30, "burnt out")):
        ax.axhline(thr, color="black", lw=0.8, ls=":")
        ax.text(len(DAYS) - 0.95, thr + 0.01, txt, fontsize=8)
    ax.set_xticks(x, DAYS)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("energy at the end of the day (0-1)")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower left", ncol=2, frameon=False)
    ax.grid(alpha=0.25)
    return _save(fig, path)


def decision_heatmap(agents: dict[str, dict[str, Sequence[float]]], path: Path, title: str) -> Path:
    """Event × action probability per agent (one panel per agent), events in catalogue order."""
    n = len(agents)
    events = [e for e in EVENT_IDS if any(e in f for f in agents.values())]
    fig, axes = plt.subplots(1, n, figsize=(2.3 * n + 2.2, 0.42 * len(events) + 1.6), squeeze=False)
    for k, (ax, (agent, freq)) in enumerate(zip(axes[0], agents.items())):
        m = np.full((len(events), 3), np.nan)
        for i, e in enumerate(events):
            if e in freq:
                m[i] = freq[e]
        im = ax.imshow(m, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_title(agent, fontsize=9, color=colour(agent))
        ax.set_xticks(range(3), ["1", "2", "3"])
        ax.set_yticks(range(len(events)))
        ax.set_yticklabels(events if k == 0 else [], fontsize=8)
        for i in range(len(events)):
            for j in range(3):
                if not np.isnan(m[i, j]) and m[i, j] >= 0.05:
                    ax.text(
                        j,
                        i,
                        f"{m[i, j]:.2f}"[1:] if m[i, j] < 1 else "1",
                        ha="center",
                        va="center",
                        fontsize=6.5,
                        color="white" if m[i, j] < 0.6 else "black",
                    )
    fig.colorbar(im, ax=axes[0].tolist(), fraction=0.02, label="P(action | event occurs)")
    fig.suptitle(
        title + "   (1/2/3 = the event's actions; blank = event never occurs)", fontsize=10
    )
    legend = "; ".join(
        f"{e.split('_')[0]}: " + "/".join(ACTION_NAMES[EVENT_IDS.index(e)]) for e in events
    )
    fig.text(0.01, -0.02, legend, fontsize=6, wrap=True, va="top")
    return _save(fig, path)


def learning_curves(runs: dict[str, dict[str, Any]], path: Path, title: str) -> Path:
    """Week score vs environment steps: one thin line per seed, mean with a 95% band, the
    optimum as a dashed line.  ``runs[algo] = {"steps": [...], "scores": [[seed0...], ...],
    "optimal": float}``."""
    fig, ax = plt.subplots(figsize=(8, 4.6))
    optimal = None
    for algo, r in runs.items():
        steps = np.asarray(r["steps"], float)
        scores = np.asarray(r["scores"], float)  # (seeds, points)
        for s in scores:
            ax.plot(steps, s, color=colour(algo), lw=0.6, alpha=0.35)
        mean = scores.mean(0)
        ci = 1.96 * scores.std(0, ddof=1) / np.sqrt(len(scores)) if len(scores) > 1 else 0 * mean
        ax.plot(steps, mean, color=colour(algo), lw=2.2, label=f"{algo} ({len(scores)} seeds)")
        ax.fill_between(steps, mean - ci, mean + ci, color=colour(algo), alpha=0.2)
        optimal = r.get("optimal", optimal)
    if optimal is not None:
        ax.axhline(optimal, color="black", ls="--", lw=1.2, label=f"optimal {optimal:.3f}")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("week score of the greedy policy")
    ax.set_title(title)
    ax.grid(alpha=0.25)
    ax.legend(fontsize=8, frameon=False)
    return _save(fig, path)


def agent_scores(
    rows: dict[str, tuple[float, float]], optimal: float, path: Path, title: str
) -> Path:
    """Horizontal bars of exact week scores (with sampled CI where given) against the optimum."""
    names = list(rows)
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(names) + 1.2))
    vals = [rows[n][0] for n in names]
    errs = [rows[n][1] for n in names]
    ax.barh(names, vals, xerr=errs, color=[colour(n) for n in names])
    ax.axvline(optimal, color="black", ls="--", lw=1)
    for i, (v, e) in enumerate(zip(vals, errs)):
        ax.text(v + e + 0.012, i, f"{v:.3f} ({v / optimal:.2f}×)", va="center", fontsize=8)
    ax.set_xlim(0, 1.15)
    ax.set_xlabel("week score (final rubric): exact expectation; sampled ± 95% CI where shown")
    ax.invert_yaxis()
    ax.set_title(title)
    return _save(fig, path)
