"""`wlf decode-eval --file F.jsonl [--decoder NAME] [--json PATH] [--bench]`."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "decode-eval",
        help="accuracy of a free-text decoder on a labelled reply file",
        description='Decode every labelled reply of a JSONL file (lines {"event": id, '
        '"action": name|index, "text": str}) and print per-event accuracy, the keyword_v1 '
        "baseline beside it, a confusion table per event and the first errors.",
    )
    p.add_argument("--file", required=True, help="labelled JSONL file")
    p.add_argument(
        "--decoder", default="default", help="decoder: default (= hybrid_v2), hybrid_v2, keyword_v1"
    )
    p.add_argument(
        "--baseline", default="keyword_v1", help="decoder shown beside it ('none' to skip)"
    )
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    p.add_argument("--errors", type=int, default=10, help="how many errors to print")
    p.add_argument("--bench", action="store_true", help="also measure decoder throughput (msgs/s)")
    p.set_defaults(func=run)


def run(args) -> int:
    import json
    from pathlib import Path

    from llm_bridge.decode_eval import benchmark_file, evaluate_file, format_report

    baseline = None if args.baseline in ("none", "") else args.baseline
    result = evaluate_file(args.file, args.decoder, baseline)
    print(format_report(result, show_errors=args.errors))
    if args.bench:
        result["throughput"] = benchmark_file(args.file, args.decoder)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    return 0
