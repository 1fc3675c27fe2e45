"""`wlf rulebook`: write the week_v2 rule book table (docs/rulebook.md)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "rulebook",
        help="print or write the week_v2 rule book as Markdown",
        description="Renders every number of week_v2 with its reason.",
    )
    p.add_argument("--out", metavar="PATH", help="write to this file instead of printing")
    p.set_defaults(func=run)


def run(args) -> int:
    from experiments.rulebook import render

    text = render()
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        print(text)
    return 0
