"""`wlf play`: the interactive week in the terminal."""

from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser(
        "play",
        help="play the week yourself in the terminal",
        description="You are Arjun. Each event shows the day, your energy, sprint health and "
        "trust, the message and three actions: pick 1/2/3 or type the reply you would send "
        "(it is decoded to an action and judged; you confirm before it applies). The rubric "
        "is shown at the end. Works with piped input; q, Ctrl-D or Ctrl-C leave cleanly.",
    )
    p.add_argument("--preset", default="week_v2", help="rule book: week_v2 or seed_v1")
    p.add_argument("--seed", type=int, default=0, help="which week (order and luck)")
    p.add_argument("--no-color", action="store_true", help="plain text output")
    p.set_defaults(func=run)


def run(args) -> int:
    from experiments.play import play

    interactive = sys.stdin.isatty()
    read = input if interactive else _piped_reader()
    final = play(
        args.preset,
        args.seed,
        read=read,
        color=False if args.no_color or not sys.stdout.isatty() else None,
    )
    return 0 if final is not None else 0


def _piped_reader():
    """Read answers from piped stdin, echoing each prompt and answer like a terminal would."""

    def read(prompt: str) -> str:
        line = sys.stdin.readline()
        if not line:
            raise EOFError
        print(prompt + line.rstrip("\n"))
        return line

    return read
