"""`wlf report`: figures from saved JSON results."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "report",
        help="make every figure from saved results",
        description="Reads the JSON results in a folder (baselines_<preset>.json, train_*/, "
        "llm_*, sensitivity*) and writes PNG figures: learning curves, rubric radar, energy "
        "Monday→Friday, decision heatmaps, score bars; sensitivity and LLM figures are copied.",
    )
    p.add_argument("--from", dest="src", default="wlf_out", help="results folder (default wlf_out)")
    p.add_argument("--out", default=None, help="figures folder (default FROM/figures)")
    p.add_argument(
        "--markdown",
        action="store_true",
        help="print the results as Markdown tables instead of drawing figures",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from experiments.report import make_report, markdown_tables

    if args.markdown:
        print(markdown_tables(args.src))
        return 0
    made = make_report(args.src, args.out)
    for path in made:
        print(path)
    print(f"{len(made)} figures")
    return 0
