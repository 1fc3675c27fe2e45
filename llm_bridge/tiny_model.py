"""An offline tiny model: a randomly initialised Qwen2-architecture causal LM and a byte-level
BPE tokenizer trained here, saved as an ordinary Hugging Face folder.

Model weights cannot be downloaded in this project's test environments, yet the LLM side
(prompt rendering, batched generation, decoding, judging, GRPO plumbing) has to run end to end.
The tiny model makes that possible: ``AutoTokenizer.from_pretrained(dir)`` and
``AutoModelForCausalLM.from_pretrained(dir)`` load it like any real model.  Its replies are
random text - it is for exercising the pipeline, not for playing well.

    from llm_bridge.tiny_model import build_tiny_model
    path = build_tiny_model("/tmp/tiny")      # ~0.25 M parameters, a few seconds on CPU

torch, transformers and tokenizers are imported inside the functions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
"""ChatML, the template family of Qwen2 instruct models."""


def tokenizer_corpus() -> list[str]:
    """Text the tokenizer is trained on: the event catalogue, the system prompt, a rendered
    prompt per event and the labelled training replies (all local)."""
    from wlf_jax.events import DAYS, EVENTS

    from .decode import TRAIN_FILE, load_labelled
    from .prompts import event_prompt, system_prompt

    texts = [system_prompt()]
    for i, spec in enumerate(EVENTS):
        texts += [spec.title, spec.sender, spec.body] + [a.meaning for a in spec.actions]
        desc = {
            "day": DAYS[min(4, i // 3)],
            "decisions": i,
            "status": {
                "energy": 0.87 - 0.05 * i,
                "sprint_health": 0.8,
                "trust": {
                    "david_chen": 0.75,
                    "sundar": 0.8,
                    "priya": 0.9,
                    "rahul": 0.88,
                    "arjun": 0.82,
                },
                "staging": "broken",
                "leave": "pending",
                "appraisal": "not_done",
                "oncall": "not_accepted",
                "sleep_debt": "rested",
            },
            "pending": [],
            "history": [],
            "event": {
                "id": spec.id,
                "title": spec.title,
                "sender": spec.sender,
                "channel": spec.channel,
                "body": spec.body,
                "actions": [
                    {"index": k, "name": a.name, "meaning": a.meaning}
                    for k, a in enumerate(spec.actions)
                ],
            },
        }
        texts.append(event_prompt(desc))
    try:
        texts += [r.text for r in load_labelled(TRAIN_FILE)]
    except (OSError, ValueError):
        pass
    return texts


def train_tokenizer(
    texts: Iterable[str] | None = None, vocab_size: int = 2048, model_max_length: int = 4096
):
    """Train a byte-level BPE tokenizer with ChatML special tokens and chat template.

    Returns a ``transformers`` fast tokenizer (``eos`` = ``<|im_end|>``, ``pad`` =
    ``<|endoftext|>``).  Byte-level: any text, including emoji and control bytes, encodes.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = list(texts) if texts is not None else tokenizer_corpus()
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
        additional_special_tokens=["<|im_start|>"],
        padding_side="left",  # batched generation pads on the left
        model_max_length=model_max_length,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_model(
    out_dir: str | Path,
    vocab_size: int = 2048,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 192,
    max_positions: int = 4096,
    seed: int = 0,
) -> Path:
    """Build and save the tiny model and its tokenizer in ``out_dir``; returns the path.

    Default size: about 0.23 M parameters (tied embeddings).  Deterministic in ``seed``.
    """
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig, Qwen2Config

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(vocab_size=vocab_size, model_max_length=max_positions)
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        bos_token_id=pad,
        eos_token_id=eos,
        pad_token_id=pad,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config = GenerationConfig(
        bos_token_id=pad,
        eos_token_id=eos,
        pad_token_id=pad,
        do_sample=True,
        temperature=1.0,
        top_p=1.0,
        max_new_tokens=48,
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    n_params = sum(p.numel() for p in model.parameters())
    (out / "tiny_model.json").write_text(
        json.dumps(
            {
                "what": "randomly initialised Qwen2-architecture model with a locally trained byte-level "
                "BPE tokenizer, for offline pipeline tests (its text is random)",
                "parameters": n_params,
                "seed": seed,
                "vocab_size": len(tokenizer),
            },
            indent=2,
        )
    )
    return out


def parameter_count(path: str | Path) -> int:
    """Number of parameters of a saved model folder."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    return sum(p.numel() for p in model.parameters())
