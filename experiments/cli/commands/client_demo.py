"""`wlf client-demo`: play a week against a running `wlf serve` with a scripted writer."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "client-demo",
        help="play a week against a running `wlf serve` (or benchmark it with --bench N)",
        description="Connect to a running `wlf serve` with the OpenEnv client and play one week "
        "with a scripted writer, printing each message, reply, decoded action, quality and "
        "reward, then the rubric. With --bench N, N clients play N weeks at once and the run "
        "prints requests per second and p50/p99 latency.",
    )
    p.add_argument("--url", default="http://127.0.0.1:8000", help="server URL")
    p.add_argument("--seed", type=int, default=0, help="which week (first seed with --bench)")
    p.add_argument("--preset", default="week_v2", help="rule book: week_v2 or seed_v1")
    p.add_argument(
        "--persona",
        default="strategic",
        help="scripted writer: strategic, people_pleaser or stonewaller",
    )
    p.add_argument(
        "--bench", type=int, default=0, metavar="N", help="benchmark with N concurrent clients"
    )
    p.add_argument("--json", default=None, metavar="PATH", help="write the result as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    import dataclasses
    import json

    from llm_bridge.serve.client import PERSONAS, bench, demo_week, format_bench

    if args.persona not in PERSONAS:
        raise ValueError(f"unknown persona {args.persona!r}; known: {', '.join(PERSONAS)}")
    try:
        if args.bench:
            result = bench(args.url, args.bench, args.preset, args.seed)
            print(format_bench(result))
        else:
            result = dataclasses.asdict(demo_week(args.url, args.seed, args.preset, args.persona))
            result.pop("latencies", None)
    except (ConnectionError, OSError) as exc:
        raise ValueError(
            f"cannot reach {args.url} ({exc}); start the server with `wlf serve`"
        ) from exc
    except RuntimeError as exc:  # the server's JSON error, e.g. an unknown preset
        raise ValueError(str(exc)) from exc
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return 0
