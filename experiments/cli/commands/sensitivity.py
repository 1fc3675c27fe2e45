"""`wlf sensitivity`: global sensitivity of the exact week score to every rule of the book."""

from __future__ import annotations

import json
import os


def register(sub) -> None:
    """Add ``wlf sensitivity`` to the ``wlf`` subcommands."""
    p = sub.add_parser(
        "sensitivity",
        help="Sobol'/Morris sensitivity of the exact week score to the rule book, sharded over devices",
        description="Samples rule books around a preset with SALib (Sobol' with Saltelli's scheme, "
        "or Morris), solves every one exactly (optimal policy and the fixed agents) in compiled "
        "chunks sharded across all devices, and reports first-order and total Sobol' indices "
        "(or Morris mu*/sigma) per rule group, plus a policy-switch map from a one-at-a-time "
        "sweep of each group. Chunks are saved under --out, so an interrupted run resumes. "
        "Rule books evaluated = design + groups x --switch-points + 1 (the default).",
    )
    p.add_argument(
        "--preset",
        default="week_v2",
        help="rule book around which to sample (fixed-schedule presets)",
    )
    p.add_argument("--method", choices=("sobol", "morris"), default="sobol", help="SALib design")
    p.add_argument(
        "--samples",
        type=int,
        default=64,
        help="base samples N: Sobol' evaluates N(D+2) rule books (N a power of two), "
        "Morris N(D+1) (N trajectories); D = number of groups",
    )
    p.add_argument(
        "--groups",
        metavar="FILE",
        help="rule groups and ranges (TOML or JSON); default: the built-in catalogue",
    )
    p.add_argument(
        "--granularity",
        choices=("action", "event"),
        default="action",
        help="built-in catalogue: one group per (event, action) and kind, or per event",
    )
    p.add_argument("--list-groups", action="store_true", help="print the rule groups and exit")
    p.add_argument(
        "--switch-points",
        type=int,
        default=8,
        help="values per group in the one-at-a-time sweep of the policy-switch map",
    )
    p.add_argument(
        "--chunk",
        type=int,
        default=32,
        help="rule books per device per compiled call (about 15 MB of memory each on week_v2)",
    )
    p.add_argument(
        "--cpu-devices",
        type=int,
        default=os.cpu_count() or 1,
        help="on CPU, split the host into this many devices (one per core)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the design and the bootstrap CIs")
    p.add_argument(
        "--out",
        metavar="DIR",
        default="runs/sensitivity",
        help="directory for partial results (resume), result.json and figures",
    )
    p.add_argument("--fresh", action="store_true", help="discard partial results found in --out")
    p.add_argument("--json", metavar="PATH", help="also write the result as JSON here")
    p.add_argument(
        "--trained",
        metavar="DIR",
        help="a finished `wlf train` folder on the same preset: its greedy policy's exact "
        "score in every rule book of the design becomes one more output, 'trained'",
    )
    p.set_defaults(func=run)


def keep_freed_memory(top_pad_mb: int = 512) -> bool:
    """Ask glibc to keep freed memory inside the process (one arena, no mmap'd blocks, no trim).

    The solver's temporaries are large (about 15 MB per rule book), so by default every chunk
    maps them afresh and the kernel zero-fills each page: a third of the CPU time went to page
    faults.  With this, the second chunk on reuses the first one's pages.  Must run before JAX
    starts its threads (so it lives here, away from modules that import JAX or numpy); does
    nothing (returns False) where glibc's ``mallopt`` is unavailable.
    """
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX, M_ARENA_MAX = -1, -2, -4, -8
    ok = mallopt(M_ARENA_MAX, 1) and mallopt(M_MMAP_MAX, 0)
    ok = ok and mallopt(M_TRIM_THRESHOLD, 2**31 - 1) and mallopt(M_TOP_PAD, top_pad_mb << 20)
    return bool(ok)


def _use_cpu_cores(n: int) -> None:
    """Expose ``n`` CPU devices (must run before JAX starts its backends)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if n > 1 and "xla_force_host_platform_device_count" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n}".strip()


def print_groups(groups, console) -> None:
    """Table of rule groups: name, mode, range and the entries they move."""
    from rich.table import Table

    t = Table(title=f"{len(groups)} rule groups")
    for col in ("group", "mode", "range", "entries"):
        t.add_column(col)
    for g in groups:
        entries = ", ".join(
            f"{x.field}[{','.join(':' if i is None else str(i) for i in x.index)}]"
            for x in g.targets
        )
        t.add_row(g.name, g.mode, f"[{g.low:g}, {g.high:g}]", entries)
    console.print(t)


def print_summary(res, console, top: int = 12) -> None:
    """The ``top`` groups per output, the largest policy switches and the run's throughput."""
    from rich.table import Table

    first = "ST" if res["method"] == "sobol" else "mu_star"
    for name, o in res["outputs"].items():
        t = Table(
            title=f"{name}: default {o['default']:.4f}, mean {o['mean']:.4f} ± {o['std']:.4f} (sd)"
        )
        keys = sorted(o[first], key=lambda k: -(o[first][k] or 0.0))[:top]
        cols = (
            ("S1", "S1_conf", "ST", "ST_conf")
            if res["method"] == "sobol"
            else ("mu_star", "mu_star_conf", "sigma")
        )
        t.add_column("group")
        for c in cols:
            t.add_column(c, justify="right")
        for k in keys:
            t.add_row(k, *(f"{o[c][k]:.3f}" if o[c][k] is not None else "-" for c in cols))
        console.print(t)
    flips = sorted(
        ((v, e, g) for e, d in res["policy_switch"].items() for g, v in d.items() if v > 0),
        reverse=True,
    )
    if flips:
        t = Table(title="largest policy switches (one group at a time)")
        for c in ("event", "default action", "group", "fraction"):
            t.add_column(c)
        for v, e, g in flips[:top]:
            t.add_row(e, res["default_actions"].get(e, "-"), g, f"{v:.2f}")
        console.print(t)
    console.print(
        f"{res['rule_books']:,} rule books solved exactly in {res['eval_s']:.1f} s, compile "
        f"included ({res['rule_books_per_s']:.1f} rule books/s; {res['eval_cpu_s']:.0f} s of "
        f"CPU time) on {res['devices']} device(s); "
        f"tree: {res['tree']['decision_nodes']:,} decision nodes, "
        f"{res['tree']['leaves']:,} leaves; total {res['wall_s']:.1f} s"
    )
    if res.get("trained_s") is not None:
        o = res["outputs"]["trained"]
        console.print(
            f"trained policy {o['policy']}: scored exactly in {res['design_rule_books'] + 1:,} "
            f"rule books (every chance pattern played) in {res['trained_s']:.1f} s"
        )


def run(args) -> int:
    """Parse-free body of ``wlf sensitivity``: run the sweep, save figures and JSON, print."""
    from pathlib import Path

    keep_freed_memory()
    _use_cpu_cores(args.cpu_devices)
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from experiments import sensitivity as S

    if args.switch_points < 2:
        raise ValueError("--switch-points must be at least 2")
    if args.chunk < 1:
        raise ValueError("--chunk must be positive")
    console = Console(width=max(110, Console().width))
    config = S.SweepConfig(
        preset=args.preset,
        method=args.method,
        samples=args.samples,
        seed=args.seed,
        groups_file=args.groups,
        granularity=args.granularity,
        switch_points=args.switch_points,
        chunk=args.chunk,
        out=args.out,
        fresh=args.fresh,
        trained=args.trained,
    )
    if args.list_groups:
        from wlf_jax import presets

        print_groups(S.sweep_groups(config, presets.get(args.preset)), console)
        return 0
    S.maybe_initialize_distributed()
    S.use_compilation_cache(Path(args.out) / ".xla_cache")
    columns = (
        TextColumn("sensitivity"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rule books"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("solve", total=None)

        def progress(done: int, total: int) -> None:
            """Advance the bar to ``done`` of ``total`` rule books."""
            bar.update(task, completed=done, total=total)

        res = S.run_sensitivity(config, progress)
    import jax

    if jax.process_index() != 0:  # multi-host: one process reports
        return 0
    out = Path(args.out)
    res["figures"] = S.save_figures(res, out)
    text = json.dumps(res, indent=1)
    (out / "result.json").write_text(text)
    if args.json:
        Path(args.json).write_text(text)
    print_summary(res, console)
    console.print(f"figures: {', '.join(res['figures'])}; result: {out / 'result.json'}")
    return 0
