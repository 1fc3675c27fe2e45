"""`wlf decode-eval --file F.jsonl [--decoder NAME] [--json PATH] [--bench] [--cv K]
[--readers LABELS ...]`."""

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
    p.add_argument(
        "--cv",
        type=int,
        metavar="K",
        help="K-fold cross-validation grouped by prompt, for a file the decoder is fitted on "
        "(llm_bridge/data/replies_styles_dev.jsonl, smollm2_dev.jsonl, smollm2_dev_options.jsonl): "
        "the gate is refitted without each fold before the fold is decoded",
    )
    p.add_argument("--seed", type=int, default=0, help="shuffle of the prompts into --cv folds")
    p.add_argument(
        "--readers",
        nargs="+",
        metavar="LABELS",
        help='other readers\' labels of the same replies (JSONL, one {"event", "action"} line '
        "per reply, in the file's order): print how often the readers agree with each other and "
        "the decoder with each, and its accuracy on the replies all readers label alike",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    import json
    from pathlib import Path

    from llm_bridge.decode import load_labelled
    from llm_bridge.decode_eval import (
        benchmark_file,
        cross_validate,
        evaluate_file,
        format_agreement,
        format_report,
        load_reader_labels,
        reader_agreement,
    )

    baseline = None if args.baseline in ("none", "") else args.baseline
    if args.readers and args.cv is not None:
        raise SystemExit(
            "wlf decode-eval: --readers compares the fitted decoder with each reader; "
            "leave --cv out (the cross-validated decoder differs per fold)"
        )
    if (
        args.readers
        and len({str(Path(p).resolve()) for p in [args.file, *args.readers]})
        < len(args.readers) + 1
    ):
        raise SystemExit("wlf decode-eval: give --file and each --readers file once")
    if args.cv is not None:
        if args.decoder not in ("default", "hybrid_v2"):
            raise SystemExit("--cv refits the default decoder's gate; leave --decoder out")
        try:
            result = cross_validate(args.file, args.cv, args.seed)
        except ValueError as exc:
            raise SystemExit(f"wlf decode-eval: {exc}") from None
        print(f"{args.cv}-fold cross-validation over {result['groups']} prompts (seed {args.seed})")
    else:
        result = evaluate_file(args.file, args.decoder, baseline)
    print(format_report(result, show_errors=args.errors))
    if args.readers:
        rows = load_labelled(args.file)
        paths = [args.file, *args.readers]
        stems = [Path(p).stem for p in paths]
        names = stems if len(set(stems)) == len(stems) else paths  # short names when unique
        try:
            readers = {n: load_reader_labels(p, rows) for n, p in zip(names[1:], args.readers)}
        except ValueError as exc:
            raise SystemExit(f"wlf decode-eval: {exc}") from None
        result["readers"] = reader_agreement(rows, readers, args.decoder, first=names[0])
        print()
        print(format_agreement(result["readers"]))
    if args.bench:
        result["throughput"] = benchmark_file(args.file, args.decoder)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    return 0
