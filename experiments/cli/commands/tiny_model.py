"""`wlf tiny-model --out DIR`: build the offline tiny model (random Qwen2 + local tokenizer)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "tiny-model",
        help="build a tiny randomly initialised Qwen2 model + locally trained tokenizer (offline)",
        description="Train a byte-level BPE tokenizer (ChatML template) on the project's own text "
        "and save it with a randomly initialised Qwen2-architecture causal LM as a normal Hugging "
        "Face folder, loadable with AutoModelForCausalLM/AutoTokenizer.from_pretrained. For "
        "offline pipeline tests and CPU smoke runs; its replies are random text.",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--vocab-size", type=int, default=2048)
    p.add_argument("--hidden-size", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args) -> int:
    import json
    from pathlib import Path

    from llm_bridge.tiny_model import build_tiny_model

    path = build_tiny_model(
        args.out,
        vocab_size=args.vocab_size,
        hidden_size=args.hidden_size,
        num_layers=args.layers,
        seed=args.seed,
    )
    info = json.loads((Path(path) / "tiny_model.json").read_text())
    print(f"wrote {path}: {info['parameters']:,} parameters, vocabulary {info['vocab_size']}")
    return 0
