"""`wlf bench`: JAX throughput vs the plain-Python implementation, side by side."""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="throughput of the JAX simulator vs plain Python",
        description="Plays random-policy weeks through jit(vmap(scan)) at several batch sizes "
        "and through the plain-Python implementation in the same run; prints steps/s, the "
        "ratio to plain Python and bytes per week state. Compile time is excluded from rates.",
    )
    p.add_argument("--preset", default="week_v2", help="rule book (week_v2 or seed_v1)")
    p.add_argument(
        "--batches",
        default="1000,10000,100000,1000000",
        help="comma-separated numbers of parallel weeks",
    )
    p.add_argument(
        "--python-seconds",
        type=float,
        default=2.0,
        help="how long to time the plain-Python implementation",
    )
    p.add_argument("--json", metavar="PATH", help="write the result as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from experiments.bench import run_bench

    try:
        batches = tuple(int(b) for b in args.batches.split(","))
    except ValueError:
        raise ValueError(
            f"--batches must be comma-separated integers, got {args.batches!r}"
        ) from None
    if any(b <= 0 for b in batches):
        raise ValueError("--batches must be positive")
    console = Console()
    with console.status("benchmarking") as status:
        res = run_bench(
            args.preset,
            batches,
            args.python_seconds,
            progress=lambda m: status.update(f"benchmarking: {m}"),
        )
    table = Table(title=f"wlf bench ({res['preset']}, {res['device']} x{res['device_count']})")
    for col in ("batch", "steps/s", "x plain Python", "compile s"):
        table.add_column(col, justify="right")
    table.add_row("plain Python", f"{res['python_steps_per_s']:,.0f}", "1", "-")
    for r in res["by_batch"]:
        table.add_row(
            f"{r['batch']:,}",
            f"{r['steps_per_s']:,.0f}",
            f"{r['ratio']:,.0f}",
            f"{r['compile_s']:.2f}",
        )
    console.print(table)
    console.print(
        f"best: {res['jax_steps_per_s']:,.0f} steps/s = {res['ratio']:,.0f}x plain "
        f"Python; {res['state_bytes']} bytes per week state"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0
