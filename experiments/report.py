"""`wlf report`: every figure from the JSON results saved in a folder.

Reads what is present (``baselines_<preset>.json``, ``train_*/result.json`` + curves,
``llm_*.json``, ``sensitivity*.json``) and writes PNGs; missing inputs are skipped, not errors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from experiments import plots

RADAR_AGENTS = (
    "optimal",
    "strategic",
    "myopic",
    "accept_all",
    "decline_all",
    "ignore_all",
    "random",
)


def _load(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _trained_agents(src: Path, preset: str) -> dict[str, dict[str, Any]]:
    """Trained policies' exact evaluations saved by `wlf train` for this preset."""
    out = {}
    for res in sorted(src.glob("train_*/result.json")):
        r = _load(res)
        if not r or r.get("preset") != preset or "exact_eval" not in r:
            continue
        out[r["algo"]] = r
    return out


def baseline_figures(src: Path, dst: Path) -> list[Path]:
    """Radar, energy by day, decision heatmap and score bars for each baselines file."""
    made = []
    for path in sorted(src.glob("baselines_*.json")):
        res = _load(path)
        if not res:
            continue
        preset = res["preset"]
        agents = res["agents"]
        trained = _trained_agents(src, preset)
        radar = {k: agents[k]["exact_components"] for k in RADAR_AGENTS if k in agents}
        radar.update({k: r["exact_eval"]["components"] for k, r in trained.items()})
        llm = _load(src / "llm_weeks.json") or {}
        llm_agents = llm.get("agents", {}) if llm.get("preset") == preset else {}
        # the best LLM writer's rubric (sampled) beside the structured agents' (exact)
        if llm_agents:
            best = max(llm_agents, key=lambda n: llm_agents[n]["mean_score"])
            radar[best] = llm_agents[best]["components"]
        made.append(
            plots.rubric_radar(
                radar,
                dst / f"radar_{preset}.png",
                f"Rubric by agent on {preset} (exact expectations)",
            )
        )
        energy = {
            k: {
                "energy_by_day": agents[k]["exact_energy_by_day"],
                "early_end": agents[k]["exact_early_end_prob"],
            }
            for k in ("optimal", "strategic", "myopic", "accept_all", "ignore_all", "random")
            if k in agents
        }
        energy.update(
            {
                k: {
                    "energy_by_day": r["exact_eval"]["energy_by_day"],
                    "early_end": r["exact_eval"]["early_end_prob"],
                }
                for k, r in trained.items()
            }
        )
        made.append(
            plots.energy_by_day(
                energy,
                dst / f"energy_{preset}.png",
                f"Energy Monday → Friday on {preset} (exact expectations)",
            )
        )
        heat = {
            k: agents[k]["exact_action_freq"]
            for k in ("random", "myopic", "strategic", "optimal")
            if k in agents
        }
        for k, r in trained.items():
            if "initial_action_freq" in r["exact_eval"]:
                heat[f"{k} (before)"] = r["exact_eval"]["initial_action_freq"]
            heat[f"{k} (trained)"] = r["exact_eval"]["action_freq"]
        made.append(
            plots.decision_heatmap(
                heat, dst / f"decisions_{preset}.png", f"What each agent decides on {preset}"
            )
        )
        rows = {k: (a["exact_score"], a.get("ci95_score", 0.0)) for k, a in agents.items()}
        rows.update({k: (r["exact_eval"]["exact_score"], 0.0) for k, r in trained.items()})
        for name, a in llm_agents.items():
            rows[name] = (a["mean_score"], a["ci95_score"])
        made.append(
            plots.agent_scores(
                rows,
                agents["optimal"]["exact_score"],
                dst / f"scores_{preset}.png",
                f"Week score by agent on {preset}",
            )
        )
    return made


def learning_curve_figures(src: Path, dst: Path) -> list[Path]:
    """One learning-curve figure per preset, all algorithms overlaid."""
    by_preset: dict[str, dict[str, Any]] = {}
    for res in sorted(src.glob("train_*/result.json")):
        r = _load(res)
        curve = _load(res.parent / "curve.json")
        if not r or not curve:
            continue
        by_preset.setdefault(r["preset"], {})[r["algo"]] = {
            "steps": curve["env_steps"],
            "scores": curve["scores"],
            "optimal": r["optimal_score"],
        }
    return [
        plots.learning_curves(
            runs, dst / f"learning_{preset}.png", f"Learning on {preset}: greedy-policy week score"
        )
        for preset, runs in by_preset.items()
    ]


def llm_stage_figures(src: Path, dst: Path) -> list[Path]:
    """The language model's stages (base, warm-up, GRPO) beside the structured agents, redrawn
    from every ``*/stages.json`` (``wlf grpo --experiment --model NAME``) as
    ``llm_stages_<folder>.png``."""
    from experiments.llm_stages import plot_stages

    made = []
    for path in sorted(src.glob("*/stages.json")):
        res = _load(path)
        if res and res.get("stages"):
            dst.mkdir(parents=True, exist_ok=True)
            made.append(plot_stages(res, dst / f"llm_stages_{path.parent.name}.png"))
    return made


def make_report(src: str | Path, dst: str | Path | None = None) -> list[Path]:
    """Write every figure the results in ``src`` allow into ``dst`` (default ``src/figures``)."""
    src = Path(src)
    if not src.is_dir():
        raise FileNotFoundError(f"no results folder {src}")
    dst = Path(dst) if dst else src / "figures"
    made = (
        baseline_figures(src, dst) + learning_curve_figures(src, dst) + llm_stage_figures(src, dst)
    )
    for extra in ("sensitivity", "llm"):
        for png in sorted(src.glob(f"{extra}*/*.png")) + sorted(src.glob(f"{extra}*.png")):
            if png.name == "stages.png":  # redrawn from stages.json above
                continue
            target = dst / png.name
            if png.resolve() != target.resolve():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(png.read_bytes())
                made.append(target)
    return made


def markdown_tables(src: str | Path) -> str:
    """Markdown tables of the saved results in ``src`` (what the README shows)."""
    src = Path(src)
    out = []
    for path in sorted(src.glob("baselines_*.json")):
        res = _load(path)
        if not res:
            continue
        opt = res["agents"]["optimal"]["exact_score"]
        out += [
            f"**{res['preset']}** — exact values from the solver ({res['states']:,} states, "
            f"solved in {res['solve_s']:.1f} s), sampled over {res['weeks']:,} weeks per agent:",
            "",
            "| agent | exact week score | × optimal | exact return | sampled score ± 95% CI | ends early | Friday energy |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for name, a in res["agents"].items():
            out.append(
                f"| {name} | {a['exact_score']:.4f} | {a['exact_score'] / opt:.3f} | "
                f"{a['exact_return']:.4f} | {a['mean_score']:.4f} ± {a['ci95_score']:.4f} | "
                f"{100 * a['exact_early_end_prob']:.1f}% | {a['exact_energy_by_day'][-1]:.2f} |"
            )
        out += ["", "| design property | value | required | holds |", "| --- | --- | --- | --- |"]
        for name, p in res["properties"].items():
            value = f"{p['value']:.3f}"
            if "ignore_all_ratio" in p:
                value += f" (ignore-all {p['ignore_all_ratio']:.3f})"
            out.append(
                f"| {name} | {value} | {p['required']} | {'yes' if p['holds'] else '**no**'} |"
            )
        out.append("")
    bench = _load(src / "bench.json")
    if bench:
        out += bench_markdown(bench)
    runs = []
    for res in sorted(src.glob("train_*/result.json")):
        r = _load(res)
        if r:
            runs.append(r)
    if runs:
        out += [
            "| algorithm | preset | seeds | env steps | wall s (compile s) | exact score (mean ± 95% CI) | × optimal |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in runs:
            out.append(
                f"| {r['algo']} | {r['preset']} | {r['seeds']} | {r['env_steps']:,} | "
                f"{r['wall_s']:.1f} ({r['compile_s']:.1f}) | {r['final_score_mean']:.4f} ± "
                f"{r['final_score_ci95']:.4f} | {r['ratio_to_optimal']:.3f} |"
            )
        out.append("")
    llm = _load(src / "llm_weeks.json")
    if llm:
        out += [
            f"| writer ({llm['preset']}) | weeks | week score ± 95% CI | judged quality |",
            "| --- | --- | --- | --- |",
        ]
        for name, a in llm["agents"].items():
            out.append(
                f"| {name} | {a['weeks']} | {a['mean_score']:.3f} ± {a['ci95_score']:.3f} | "
                f"{a.get('mean_quality', float('nan')):.3f} |"
            )
        out.append("")
    return "\n".join(out)


def bench_markdown(bench: dict[str, Any]) -> list[str]:
    """The throughput tables of a ``wlf bench --json`` result (older results: by batch only)."""
    devices = bench.get("devices", bench.get("device_count", 1))
    py = bench["python_steps_per_s"]
    out = [
        f"Random-policy weeks on {bench['preset']} ({bench['device']} × {devices}); "
        f"plain Python: {py:,.0f} steps/s; {bench['state_bytes']} bytes per week state.",
        "",
    ]
    if "forms" in bench:
        out += [
            "| form | weeks: steps/s | × plain Python | gymnax loop: steps/s |",
            "| --- | --- | --- | --- |",
        ]
        for f, rate in bench["forms"].items():
            loop = bench.get("forms_gymnax_loop", {}).get(f)
            out.append(
                f"| {f} | {rate:,.0f} | {rate / py:,.0f} | "
                + ("-" if loop is None else f"{loop:,.0f}")
                + " |"
            )
        out.append("")
    if len(bench.get("peers", {})) > 1:
        out += [
            "| gymnax loop (same harness, same run) | steps/s | week / peer |",
            "| --- | --- | --- |",
        ]
        for name, rate in bench["peers"].items():
            ratio = bench.get("peer_ratio", {}).get(name)
            label = f"{name} ({bench['peer_form']} form)" if name == bench["preset"] else name
            out.append(
                f"| {label} | {rate:,.0f} | " + ("-" if ratio is None else f"{ratio:.2f}") + " |"
            )
        out.append("")
    out += [
        "| weeks in parallel | devices | steps/s | × plain Python | compile s |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in bench["by_batch"]:  # results before 2026-12-06 have no per-row device count
        out.append(
            f"| {r['batch']:,} | {r.get('devices', devices)} | {r['steps_per_s']:,.0f} | "
            f"{r['ratio']:,.0f} | {r['compile_s']:.1f} |"
        )
    out.append("")
    return out
