"""`wlf train {q,dqn,ppo}`: train several seeds at once, checkpoint, evaluate exactly."""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train tabular Q-learning, a Q-network or PPO (several seeds at once)",
        description="Train a learner on a rule book: all seeds in one jitted, vmapped program, in "
        "chunks, with an atomic checkpoint after each chunk (--resume DIR continues a killed run "
        "and ends exactly where an uninterrupted run would). After training, the greedy policy "
        "saved after each chunk is valued exactly by the solver (the learning curve), and the "
        "final greedy policies are valued exactly and on fresh sampled weeks. Writes "
        "checkpoint.msgpack, snapshots/, result.json, curve.json, curve.csv and curve.png to "
        "--out, and prints a summary. wall_s counts training (compilation included), not the "
        "evaluation.",
    )
    p.add_argument(
        "algo",
        nargs="?",
        choices=["q", "dqn", "ppo"],
        help="q = tabular Q-learning, dqn = Q-network, ppo = PPO actor-critic",
    )
    p.add_argument("--preset", default="week_v2", help="rule book: week_v2 (default) or seed_v1")
    p.add_argument("--seeds", type=int, default=5, help="seeds trained together (default 5)")
    p.add_argument("--first-seed", type=int, default=0, help="seed i uses PRNGKey(first_seed + i)")
    p.add_argument(
        "--budget-steps",
        type=int,
        default=None,
        metavar="N",
        help="environment steps (decisions) per seed; default: the tuned budget",
    )
    p.add_argument("--out", metavar="DIR", help="run folder (default runs/train_<algo>_<preset>)")
    p.add_argument("--json", metavar="PATH", help="also write the result JSON here")
    p.add_argument(
        "--resume", metavar="DIR", help="continue the killed run in DIR from its last checkpoint"
    )
    p.add_argument(
        "--eval-weeks",
        type=int,
        default=100_000,
        help="fresh weeks sampled per seed for the final evaluation (default 100,000)",
    )
    p.add_argument(
        "--no-curve",
        action="store_true",
        help="skip the exact valuation of the per-chunk snapshots (the curve then "
        "shows the training weeks' scores)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a hyper-parameter of the learner's Config (repeatable), e.g. --set lr=1e-3",
    )
    p.set_defaults(func=run)


def _parse_overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def run(args) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from experiments.train import run_training, summary_text

    if args.resume is None and args.algo is None:
        raise ValueError("give an algorithm (q, dqn, ppo) or --resume DIR")
    console = Console()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("starting", total=1)

        def progress(phase: str, done: float, total: float) -> None:
            label = {"train": "training chunks", "compile": "compiling"}.get(phase, phase)
            bar.update(task, description=label, completed=done, total=max(total, 1))

        res = run_training(
            args.algo,
            preset=args.preset,
            seeds=args.seeds,
            budget_steps=args.budget_steps,
            out=args.out,
            resume=args.resume,
            first_seed=args.first_seed,
            eval_weeks=args.eval_weeks,
            exact_curve=not args.no_curve,
            progress=progress,
            overrides=_parse_overrides(args.set),
        )
    console.print(summary_text(res))
    if args.json:
        from pathlib import Path

        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0
