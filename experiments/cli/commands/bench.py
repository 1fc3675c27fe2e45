"""`wlf bench`: the week's throughput against plain Python and gymnax's own environments."""

from __future__ import annotations

import json
import os
import sys


def register(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="throughput of the JAX simulator vs plain Python and gymnax peers",
        description="Measures, in one run: plain Python; every form of the week (general: the "
        "rule book as an argument; static: the rule book fixed when the program is built; "
        "compiled: every reachable state an id) playing random-policy weeks; the week and "
        "gymnax's CartPole-v1 and Catch-bsuite in one gymnax training-loop harness (auto-reset "
        "step, random actions, a key split per environment per step). The batch is sharded over "
        "one CPU device per core; the fastest form is also timed on one device at each batch "
        "size, and the best row wins. Rates are medians of --repeats runs; compile time is "
        "excluded.",
    )
    p.add_argument("--preset", default="week_v2", help="rule book (week_v2 or seed_v1)")
    p.add_argument(
        "--batches",
        default="1000,10000,100000",
        help="comma-separated numbers of parallel weeks for the fastest form",
    )
    p.add_argument(
        "--envs", type=int, default=10_000, help="environments in the form and peer rows"
    )
    p.add_argument(
        "--steps", type=int, default=100, help="steps per timed run of the gymnax harness"
    )
    p.add_argument("--repeats", type=int, default=5, help="timed runs per row (median)")
    p.add_argument(
        "--devices",
        type=int,
        default=None,
        help="CPU devices to shard the batch over (default: one per core)",
    )
    p.add_argument(
        "--no-peers", action="store_true", help="skip the gymnax CartPole-v1/Catch-bsuite rows"
    )
    p.add_argument(
        "--python-seconds",
        type=float,
        default=2.0,
        help="how long to time the plain-Python implementation",
    )
    p.add_argument("--json", metavar="PATH", help="write the result as JSON")
    p.set_defaults(func=run)


def use_cpu_devices(n: int | None) -> int:
    """Ask JAX for ``n`` host CPU devices (default: one per core).  Only possible before JAX
    starts; afterwards the devices it has are used."""
    n = n or os.cpu_count() or 1
    if n < 1:
        raise ValueError("--devices must be at least 1")
    if "jax" not in sys.modules:
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_force_host_platform_device_count" not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n}".strip()
    return n


def run(args) -> int:
    try:
        batches = tuple(int(b) for b in args.batches.split(","))
    except ValueError:
        raise ValueError(
            f"--batches must be comma-separated integers, got {args.batches!r}"
        ) from None
    if any(b <= 0 for b in batches) or args.envs <= 0 or args.steps <= 0 or args.repeats <= 0:
        raise ValueError("--batches, --envs, --steps and --repeats must be positive")
    use_cpu_devices(args.devices)

    from rich.console import Console
    from rich.table import Table

    from experiments.bench import PEERS, run_bench

    console = Console()
    with console.status("benchmarking") as status:
        res = run_bench(
            args.preset,
            batches,
            args.python_seconds,
            progress=lambda m: status.update(f"benchmarking: {m}"),
            n_envs=args.envs,
            n_steps=args.steps,
            repeats=args.repeats,
            peers=() if args.no_peers else PEERS,
        )
    py = res["python_steps_per_s"]
    where = f"{res['device']} x{res['devices']}"
    forms = Table(title=f"wlf bench: forms of {res['preset']} ({where}, {args.envs:,} weeks)")
    for col in ("form", "weeks: steps/s", "x plain Python", "gymnax loop: steps/s", "compile s"):
        forms.add_column(col, justify="right")
    forms.add_row("plain Python", f"{py:,.0f}", "1", "-", "-")
    for f, rate in res["forms"].items():
        forms.add_row(
            f,
            f"{rate:,.0f}",
            f"{rate / py:,.0f}",
            f"{res['forms_gymnax_loop'][f]:,.0f}",
            f"{res['forms_compile_s'][f]:.2f}",
        )
    console.print(forms)
    for f, why in res["forms_skipped"].items():
        console.print(f"[dim]{f}: not measured ({why})[/dim]")
    if len(res["peers"]) > 1:
        peers = Table(title=f"gymnax loop, {args.envs:,} environments (same harness, same run)")
        for col in ("environment", "steps/s", "week / peer"):
            peers.add_column(col, justify="right")
        for name, rate in res["peers"].items():
            label = f"{name} ({res['peer_form']} form)" if name == res["preset"] else name
            ratio = res["peer_ratio"].get(name)
            peers.add_row(label, f"{rate:,.0f}", "-" if ratio is None else f"{ratio:.2f}")
        console.print(peers)
    batch = Table(title=f"weeks in parallel ({res['fastest_form']} form)")
    for col in ("batch", "devices", "steps/s", "x plain Python", "compile s"):
        batch.add_column(col, justify="right")
    for r in res["by_batch"]:
        batch.add_row(
            f"{r['batch']:,}",
            str(r.get("devices", res["devices"])),
            f"{r['steps_per_s']:,.0f}",
            f"{r['ratio']:,.0f}",
            f"{r['compile_s']:.2f}",
        )
    console.print(batch)
    console.print(
        f"best: {res['jax_steps_per_s']:,.0f} steps/s = {res['ratio']:,.0f}x plain Python "
        f"({res['fastest_form']} form, {res['best_batch']:,} weeks on "
        f"{res['device']} x{res['best_devices']} of {res['devices']}); "
        f"{res['state_bytes']} bytes per week state; "
        f"jax {res['versions']['jax']}, gymnax {res['versions']['gymnax']}"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0
