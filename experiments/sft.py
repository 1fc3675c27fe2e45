"""Supervised warm-up of a causal LM on written replies (loss on the reply tokens only).

:func:`script_examples` draws replies of mixed quality from the scripted personas;
:func:`sft_fit` fits a model (full or LoRA) to any ``(prompt messages, reply, tag)`` examples.
Used by the GRPO experiments (:mod:`experiments.grpo_experiment`, :mod:`experiments.llm_stages`).
torch is imported inside :func:`sft_fit`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from llm_bridge.prompts import render_chat
from llm_bridge.writers import SCRIPTS

PERSONAS: tuple[str, ...] = ("people_pleaser", "stonewaller", "strategic")
"""The scripted writers a warm-up mixes: one of them at random for every state."""


def script_examples(
    rows: Sequence[Mapping[str, Any]],
    personas: Sequence[str] = PERSONAS,
    per_row: int = 3,
    seed: int = 0,
) -> list[tuple[list[dict[str, str]], str, str]]:
    """``(prompt messages, reply, persona)`` pairs: for every row, ``per_row`` scripted replies,
    each from a persona and phrasing drawn at random (mixed quality on purpose)."""
    rng = random.Random(seed)
    out = []
    for r in rows:
        for _ in range(per_row):
            p = rng.choice(list(personas))
            out.append((r["prompt"], rng.choice(SCRIPTS[p][r["event"]]), p))
    return out


def encode_example(tokenizer, messages, reply: str) -> tuple[list[int], list[int]]:
    """Token ids of prompt + reply + end of turn, and labels (-100 on the prompt)."""
    prompt = tokenizer(render_chat(tokenizer, messages), add_special_tokens=False)["input_ids"]
    answer = tokenizer(reply, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return prompt + answer, [-100] * len(prompt) + answer


def pad_batch(tokenizer, batch: Sequence[tuple[list[int], list[int]]]):
    """Right-padded ``(input_ids, labels, attention_mask)`` tensors of :func:`encode_example`
    pairs (labels padded with -100)."""
    import torch

    width = max(len(x) for x, _ in batch)
    ids = torch.full((len(batch), width), tokenizer.pad_token_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, (x, y) in enumerate(batch):
        ids[i, : len(x)], labels[i, : len(y)], mask[i, : len(x)] = (
            torch.tensor(x),
            torch.tensor(y),
            1,
        )
    return ids, labels, mask


def sft_fit(
    model_path: str | Path,
    examples: Sequence[tuple[Sequence[Mapping[str, str]], str, str]],
    out_dir: str | Path,
    steps: int = 150,
    batch_size: int = 8,
    learning_rate: float = 3e-3,
    seed: int = 0,
    threads: int | None = None,
    lora: bool = False,
    dtype: str = "float32",
) -> dict[str, Any]:
    """Fit a causal LM to replies (loss on the reply tokens only) with AdamW; saves to ``out_dir``
    (with ``lora``: only a LoRA adapter, r=16 on every projection, fp32 over base weights of
    ``dtype``).  ``threads``: torch's CPU threads (default: torch's own, which honours
    ``OMP_NUM_THREADS``).

    Returns ``{"steps", "wall_s", "loss_first", "loss_last", "loss_curve"}``.
    """
    import torch

    from llm_bridge.grpo import load_model, lora_config

    if threads:  # else torch's default (honours OMP_NUM_THREADS)
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model, tok = load_model(model_path, dtype=dtype)
    if lora:
        from peft import get_peft_model

        model = get_peft_model(model, lora_config("cpu-smollm2"))
    model.train()
    data = [encode_example(tok, m, r) for m, r, _ in examples]
    rng = random.Random(seed)
    opt = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=learning_rate, weight_decay=0.0
    )
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 10) * max(0.1, 1 - s / steps)
    )
    losses = []
    t0 = time.perf_counter()
    from tqdm import tqdm

    for _ in tqdm(range(steps), desc="supervised warm-up", unit="step", leave=False):
        ids, labels, mask = pad_batch(tok, rng.sample(data, min(batch_size, len(data))))
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    out = Path(out_dir)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    k = max(1, steps // 10)
    return {
        "steps": steps,
        "wall_s": round(time.perf_counter() - t0, 2),
        "loss_first": sum(losses[:k]) / k,
        "loss_last": sum(losses[-k:]) / k,
        "loss_curve": losses,
    }
