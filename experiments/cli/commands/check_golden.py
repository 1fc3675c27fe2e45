"""`wlf check-golden PATH`: replay a golden file and report every mismatch."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "check-golden",
        help="replay a golden file (trajectories or text rules) and report mismatches",
        description="Replay a golden file of the original environment. Trajectory files are "
        "replayed through the JAX simulator (seed_v1); text-rule files are checked against the "
        "keyword_v1 decoder and judge_v1. Prints each mismatch and 'N cases, M mismatches'; "
        "exits 1 on any mismatch.",
    )
    p.add_argument("path", help="golden JSON file")
    p.set_defaults(func=run)


def run(args) -> int:
    from experiments.golden import main

    return main(args.path)
