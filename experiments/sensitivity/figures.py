"""Figures of a sensitivity result: Sobol' bars, Morris mu*-sigma scatter, policy-switch
heatmap (matplotlib, imported when a figure is drawn)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def _top(values: dict[str, float | None], k: int) -> list[str]:
    return sorted(values, key=lambda n: -(values[n] or 0.0))[:k]


def plot_sobol(result: dict, path: str | os.PathLike, top: int = 20) -> None:
    """Bar chart of S1 and ST (95% CI error bars) of the ``top`` groups by ST, per output."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outs = result["outputs"]
    fig, axes = plt.subplots(
        1, len(outs), figsize=(4.2 * len(outs), 0.32 * top + 1.8), squeeze=False
    )
    for ax, (name, o) in zip(axes[0], outs.items()):
        keys = _top(o["ST"], top)[::-1]
        y = np.arange(len(keys))
        val = lambda d: np.array([d[k] or 0.0 for k in keys])  # noqa: E731
        ax.barh(
            y + 0.2, val(o["ST"]), 0.4, xerr=val(o["ST_conf"]), label="total (ST)", color="#c44e52"
        )
        ax.barh(
            y - 0.2,
            val(o["S1"]),
            0.4,
            xerr=val(o["S1_conf"]),
            label="first order (S1)",
            color="#4c72b0",
        )
        ax.set_yticks(y, keys, fontsize=7)
        ax.set_title(f"{name} (default {o['default']:.3f})", fontsize=9)
        ax.set_xlim(left=min(0.0, ax.get_xlim()[0]))
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.suptitle(
        f"Sobol' indices of the exact week score ({result['preset']}, "
        f"{result['rule_books']:,} rule books)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_morris(result: dict, path: str | os.PathLike, label: int = 8) -> None:
    """mu*-sigma scatter per output (a grid of panels), the ``label`` largest mu* named."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outs = result["outputs"]
    ncols = min(3, len(outs))
    nrows = -(-len(outs) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.0 * ncols, 4.8 * nrows), squeeze=False)
    for ax in axes.flat[len(outs) :]:
        ax.set_visible(False)
    for ax, (name, o) in zip(axes.flat, outs.items()):
        keys = list(o["mu_star"])
        mu = np.array([o["mu_star"][k] or 0.0 for k in keys])
        sd = np.array([o["sigma"][k] or 0.0 for k in keys])
        ax.scatter(mu, sd, s=12, color="#4c72b0")
        for rank, k in enumerate(_top(o["mu_star"], label)):
            i = keys.index(k)
            ax.annotate(
                k,
                (mu[i], sd[i]),
                fontsize=6,
                xytext=(4, 6 * (rank % 3) - 6),
                textcoords="offset points",
            )
        ax.set_xlabel("mu* (mean |elementary effect|)")
        ax.set_ylabel("sigma")
        ax.set_title(f"{name} (default {o['default']:.3f})", fontsize=9)
        ax.grid(alpha=0.3)
    fig.suptitle(
        f"Morris elementary effects of the exact week score ({result['preset']}, "
        f"{result['rule_books']:,} rule books)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_policy_switch(result: dict, path: str | os.PathLike, max_groups: int = 60) -> None:
    """Heatmap event x rule group of the policy-switch fractions (groups that switch anything,
    most switching first, at most ``max_groups``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sw = result["policy_switch"]
    events = list(sw)
    groups = [g["name"] for g in result["groups"]]
    total = {g: sum(sw[e][g] for e in events) for g in groups}
    cols = [g for g in sorted(groups, key=lambda g: -total[g]) if total[g] > 0][:max_groups]
    if not cols:
        cols = groups[: min(len(groups), 20)]
    M = np.array([[sw[e][g] for g in cols] for e in events])
    fig, ax = plt.subplots(figsize=(max(6.0, 0.28 * len(cols) + 3), 0.4 * len(events) + 2.8))
    im = ax.imshow(M, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_yticks(range(len(events)), events, fontsize=7)
    ax.set_xticks(range(len(cols)), cols, rotation=90, fontsize=6)
    fig.colorbar(im, ax=ax, label="fraction of rule books where the optimal action differs")
    ax.set_title(
        "Which rule changes flip the optimal action (one group at a time, "
        f"{result['switch_rule_books']:,} rule books)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def save_figures(result: dict, out_dir: str | os.PathLike) -> list[str]:
    """Write the run's figures as PNG into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    if result["method"] == "sobol":
        paths.append(out_dir / "sobol_indices.png")
        plot_sobol(result, paths[-1])
    else:
        paths.append(out_dir / "morris_mu_sigma.png")
        plot_morris(result, paths[-1])
    paths.append(out_dir / "policy_switch.png")
    plot_policy_switch(result, paths[-1])
    return [str(p) for p in paths]
