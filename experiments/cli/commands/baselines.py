"""`wlf baselines`: the comparison table of all agents and the design properties."""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser(
        "baselines",
        help="exact and sampled comparison of all agents, and the design properties",
        description="For every agent (random, accept_all, decline_all, ignore_all, strategic, "
        "myopic, best_fixed_map, optimal): the exact expected return and week score, and "
        "statistics sampled over fresh weeks with 95% CIs; then the design properties of the "
        "rule book checked on exact values. A fixed-order rule book (week_v2) is solved on its "
        "compiled tables (seconds); a random order (seed_v1) by the host solver.",
    )
    p.add_argument("--preset", default="week_v2", help="rule book: week_v2 or seed_v1")
    p.add_argument(
        "--weeks",
        type=int,
        default=100_000,
        help="fresh weeks sampled per agent (0: exact values only)",
    )
    p.add_argument(
        "--host-solver",
        action="store_true",
        help="value a fixed-order rule book with the host solver instead of its compiled tables",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled weeks")
    p.add_argument(
        "--include-trained",
        metavar="DIR",
        action="append",
        default=[],
        help="add a policy trained by `wlf train` (repeatable)",
    )
    p.add_argument("--json", metavar="PATH", help="write the full result as JSON")
    p.set_defaults(func=run)


def print_table(res, console) -> None:
    from rich.table import Table

    sampled = res["weeks"] > 0
    title = f"agents on {res['preset']} (exact = {res.get('solver', 'solver')}"
    t = Table(title=title + (f", sampled = {res['weeks']:,} weeks)" if sampled else ")"))
    for col in (
        "agent",
        "exact score",
        "x opt",
        "exact return",
        "sampled score ± CI95",
        "early end (exact)",
        "Fri energy (exact)",
    ):
        t.add_column(col, justify="right" if col != "agent" else "left")
    opt = res["agents"]["optimal"]["exact_score"]
    for name, a in res["agents"].items():
        t.add_row(
            name,
            f"{a['exact_score']:.4f}",
            f"{a['exact_score'] / opt:.3f}",
            f"{a['exact_return']:.4f}",
            f"{a['mean_score']:.4f} ± {a['ci95_score']:.4f}" if sampled else "-",
            f"{a['exact_early_end_prob']:.3f}",
            f"{a['exact_energy_by_day'][-1]:.2f}",
        )
    console.print(t)
    p = Table(title="design properties (exact)")
    for col in ("property", "value", "required", "holds"):
        p.add_column(col)
    for name, v in res["properties"].items():
        p.add_row(name, f"{v['value']:.3f}", v["required"], "yes" if v["holds"] else "NO")
    console.print(p)
    console.print(
        f"{res.get('solver', 'solver')}: {res['states']:,} decision states in "
        f"{res['solve_s']:.1f} s; "
        f"{res['fixed_maps_searched']:,} fixed maps searched; total {res['wall_s']:.1f} s"
    )


def run(args) -> int:
    from rich.console import Console

    from experiments.compare import run_baselines

    if args.weeks < 0 or args.weeks == 1:
        raise ValueError("--weeks must be 0 (exact values only) or at least 2")
    extra = {}
    if args.include_trained:
        from experiments.train import load_trained

        for d in args.include_trained:
            name, act = load_trained(d)
            extra[name] = act
    console = Console(width=max(110, Console().width))
    with console.status("baselines") as status:
        res = run_baselines(
            args.preset,
            args.weeks,
            args.seed,
            extra,
            progress=lambda m: status.update(f"baselines: {m}"),
            host_solver=args.host_solver,
        )
    print_table(res, console)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0
