"""GRPO over the served week: TRL's GRPOTrainer(environment_factory=...) whose single tool,
send_message(text), plays each rollout's week on a running `wlf serve` through OpenEnv.

    wlf serve --port 8000 &                           # the environment server
    wlf tiny-model --out /tmp/wlf_tiny                # an offline model (or any local chat model)
    python examples/grpo_over_server.py --model /tmp/wlf_tiny --chat-template qwen2_5 --steps 2

The tiny model is randomly initialised: it exercises the pipeline but rarely emits a tool call,
so its rewards stay 0.  A real chat model with tool calling (e.g. a Qwen2.5/Qwen3 instruct
folder on disk) plays the week through the tool and is rewarded by the week's return.
"""

from __future__ import annotations

import argparse


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default="http://127.0.0.1:8000", help="the `wlf serve` URL")
    p.add_argument("--model", required=True, help="local model folder (no download)")
    p.add_argument("--out", default="wlf_out/grpo_over_server", help="output folder")
    p.add_argument("--preset", default="week_v2")
    p.add_argument("--weeks", type=int, default=16, help="training weeks (seeds 0..N-1)")
    p.add_argument("--steps", type=int, default=10, help="optimizer steps")
    p.add_argument("--generations", type=int, default=4, help="rollouts per week (GRPO group size)")
    p.add_argument("--completion-tokens", type=int, default=512)
    p.add_argument("--chat-template", default=None, help="qwen2_5: use TRL's Qwen2.5 tool template")
    args = p.parse_args()

    from llm_bridge.serve.trl import build_trainer, close_environments

    trainer = build_trainer(
        args.url,
        args.model,
        args.out,
        seeds=range(args.weeks),
        preset=args.preset,
        max_steps=args.steps,
        num_generations=args.generations,
        batch_size=args.generations,
        max_completion_length=args.completion_tokens,
        chat_template=args.chat_template,
    )
    try:
        trainer.train()
    finally:
        close_environments(trainer)
    for row in trainer.state.log_history:
        if "reward" in row:
            print(
                f"step {row.get('step', '?')}: reward {row['reward']:.4f} "
                f"(tool calls per rollout {row.get('tools/call_frequency', 0)})"
            )


if __name__ == "__main__":
    main()
