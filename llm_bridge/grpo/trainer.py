"""GRPO configuration and training: run settings, size presets, the TRL trainer, results.

:class:`GRPORun` holds everything a ``wlf grpo`` run needs; :func:`size_defaults` fills what it
leaves open; :func:`make_grpo_trainer` builds TRL's ``GRPOTrainer`` (single turn: the reward
functions of ``llm_bridge.rewards``; multi turn: ``week_score`` and the ``rollout_func`` of
:mod:`llm_bridge.grpo.multiturn`); :func:`train_grpo` runs it and saves the model, the trainer
log and the reward curves.  Heavy imports (torch, transformers, trl, peft) happen inside
functions.

Longer than 400 lines on purpose: the run's options, TRL's config built from them, the
trainer and its reward curves are read together when a TRL version changes.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..rewards import RewardConfig, reward_funcs, reward_weights, week_score
from .data import prompt_dataset, prompt_rows
from .multiturn import make_rollout_func, week_rows

TRL_VERSION = "1.16.0"
"""The TRL version the trainer glue (config fields, ``rollout_func`` contract) is written
against."""

PRESET_SIZES: tuple[str, ...] = ("cpu-smoke", "cpu-smollm2", "gpu-1.5b")


@dataclass
class GRPORun:
    """Everything a ``wlf grpo`` run needs.  ``size`` picks the defaults of
    :func:`size_defaults`; fields left ``None`` take them."""

    model: str
    out: str = "wlf_out/llm_grpo"
    preset: str = "week_v2"
    size: str = "cpu-smoke"
    multi_turn: bool = False
    lora: bool | None = None
    steps: int | None = None
    resume: bool = False
    wandb: bool = False
    seed: int = 0
    n_prompts: int | None = None
    num_generations: int | None = None
    batch_size: int | None = None
    max_completion_length: int | None = None
    learning_rate: float | None = None
    temperature: float | None = None
    beta: float | None = None
    save_steps: int | None = None
    show_options: bool = True
    include_system: bool = True
    compact: bool | None = None
    """Compact prompts (``llm_bridge.prompts.compact_prompt``; single turn only)."""
    adapter: str | None = None
    """A LoRA adapter (e.g. from a supervised warm-up) that GRPO keeps training; the KL
    reference is then the model without the adapter, so use ``beta=0``."""
    dtype: str = "auto"
    """Base weights' dtype on CPU: ``auto`` = bf16 where the CPU has native bf16 (LoRA weights
    stay fp32); fp32 elsewhere."""
    threads: int | None = None
    reward: RewardConfig = field(default_factory=RewardConfig)

    def resolved(self) -> GRPORun:
        """A copy with every ``None`` filled from the size preset."""
        d = size_defaults(self.size, self.multi_turn)
        return replace(
            self,
            **{k: (getattr(self, k) if getattr(self, k) is not None else v) for k, v in d.items()},
        )


def size_defaults(size: str, multi_turn: bool = False) -> dict[str, Any]:
    """Defaults of a preset size.

    * ``cpu-smoke``: the tiny offline model on CPU; a few prompts, short replies, seconds a step.
    * ``cpu-smollm2``: SmolLM2-135M-Instruct on a CPU: LoRA r=16, bf16 base weights where the CPU
      has native bf16, compact prompts, 8 completions a step (2 states x 4), 48 tokens each.
    * ``gpu-1.5b``: Qwen2.5-1.5B-Instruct on one GPU: LoRA r=16 on all linear layers, bf16,
      gradient checkpointing, 8 generations per prompt, vLLM colocated generation when vLLM is
      installed (single turn; multi-turn rollouts generate with transformers).
    """
    if size == "cpu-smoke":
        return dict(
            lora=False,
            steps=4,
            n_prompts=16 if not multi_turn else 4,
            num_generations=4,
            batch_size=4,
            max_completion_length=48 if not multi_turn else 24,
            learning_rate=5e-4,
            temperature=1.0,
            beta=0.0,
            save_steps=2,
            threads=None,
            compact=False,
        )
    if size == "cpu-smollm2":
        return dict(
            lora=True,
            steps=200,
            n_prompts=256 if not multi_turn else 16,
            num_generations=4,
            batch_size=8 if not multi_turn else 4,
            max_completion_length=48,
            learning_rate=2e-4,
            temperature=1.0,
            beta=0.0,
            save_steps=20,
            threads=None,
            compact=not multi_turn,
        )
    if size == "gpu-1.5b":
        return dict(
            lora=True,
            steps=300,
            n_prompts=512 if not multi_turn else 128,
            num_generations=8,
            batch_size=8 if not multi_turn else 4,
            max_completion_length=192 if not multi_turn else 160,
            learning_rate=5e-5,
            temperature=0.9,
            beta=0.0,
            save_steps=25,
            threads=None,
            compact=False,
        )
    raise ValueError(f"unknown preset size {size!r}; known: {', '.join(PRESET_SIZES)}")


def vllm_available() -> bool:
    """Whether vLLM can be imported (it is optional; never installed for CPU runs)."""
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def grpo_config_kwargs(run: GRPORun) -> dict[str, Any]:
    """``GRPOConfig`` keyword arguments of a run (sizes resolved).  CPU runs: ``use_cpu=True,
    bf16=False, gradient_checkpointing=False, report_to=[]`` (``["wandb"]`` with ``wandb``)."""
    r = run.resolved()
    gpu = r.size == "gpu-1.5b"
    kw: dict[str, Any] = dict(
        output_dir=str(Path(r.out) / "checkpoints"),
        max_steps=r.steps,
        per_device_train_batch_size=r.batch_size,
        num_generations=r.num_generations,
        max_completion_length=r.max_completion_length,
        learning_rate=r.learning_rate,
        temperature=r.temperature,
        top_p=1.0,
        beta=r.beta,
        logging_steps=1,
        save_steps=r.save_steps,
        save_total_limit=2,
        seed=r.seed,
        report_to=["wandb"] if r.wandb else [],
        reward_weights=None if r.multi_turn else reward_weights(r.reward),
        log_completions=False,
        disable_tqdm=True,
        dataloader_num_workers=0,
        shuffle_dataset=True,
    )
    if gpu:
        kw.update(
            bf16=True,
            gradient_checkpointing=True,
            gradient_accumulation_steps=4,
            warmup_steps=10,
            lr_scheduler_type="cosine",
            max_grad_norm=0.2,
            use_vllm=vllm_available() and not r.multi_turn,
            vllm_mode="colocate",
            vllm_gpu_memory_utilization=0.35,
        )
    else:
        kw.update(use_cpu=True, bf16=False, gradient_checkpointing=False, use_vllm=False)
    return kw


def make_grpo_config(run: GRPORun):
    """The ``trl.GRPOConfig`` of a run."""
    from trl import GRPOConfig

    return GRPOConfig(**grpo_config_kwargs(run))


def lora_config(size: str = "cpu-smoke"):
    """A ``peft.LoraConfig`` for causal LMs: all attention and MLP projections."""
    from peft import LoraConfig

    r = 16 if size in ("gpu-1.5b", "cpu-smollm2") else 8
    return LoraConfig(
        r=r,
        lora_alpha=2 * r,
        lora_dropout=0.05 if size == "gpu-1.5b" else 0.0,
        task_type="CAUSAL_LM",
        target_modules=[
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ],
    )


# ---- training ---------------------------------------------------------------------------------


def last_checkpoint(out: str | Path) -> str | None:
    """The newest ``checkpoint-N`` folder of a run, or None."""
    ckpt = Path(out) / "checkpoints"
    if not ckpt.is_dir():
        return None
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(ckpt))


def load_model(path: str | Path, size: str = "cpu-smoke", dtype: str = "float32"):
    """Model and tokenizer from a local folder, a ``.gguf`` file or a known name
    (:func:`llm_bridge.models.resolve_model`; never downloads).  ``gpu-1.5b`` loads bf16;
    on CPU, ``dtype`` decides (``auto``: bf16 where the CPU has native bf16)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..models import resolve_model
    from ..writers import inference_dtype

    path = resolve_model(path)
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    torch_dtype = torch.bfloat16 if size == "gpu-1.5b" else inference_dtype("cpu", dtype)
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=torch_dtype)
    return model, tok


def build_rows(run: GRPORun) -> list[dict[str, Any]]:
    """The run's prompt rows (decision states, or Monday mornings in multi-turn mode)."""
    r = run.resolved()
    if r.multi_turn:
        return week_rows(r.preset, r.n_prompts, r.seed, r.show_options, r.include_system)
    return prompt_rows(
        r.preset,
        r.n_prompts,
        r.seed,
        show_options=r.show_options,
        include_system=r.include_system,
        compact=r.compact,
    )


def score_completion_tokens_only() -> bool:
    """Make TRL's fused LM head score only the completion tokens on the CPU, as it does on
    Triton devices.  Returns whether the patch is (now) in place.

    TRL 1.16 projects every position of every sequence through the LM head (49,152 words for
    SmolLM2) unless the device runs Triton, so that tile shapes stay fixed for compilers that
    would recompile on every new shape; masked positions are then thrown away.  Eager torch on a
    CPU compiles nothing, and a GRPO step's sequences are about 85% prompt, so this paid for six
    times the head's forward and backward: about a third of a SmolLM2 step.  The log-probs of
    the completion tokens are the same either way (``tests/test_grpo.py`` checks it); the switch
    is only TRL's own ``compact`` branch.  Without the private name (another TRL), nothing
    changes."""
    import trl.trainer.utils as trl_utils

    current = getattr(trl_utils, "_use_triton", None)
    if current is None:
        return False
    if getattr(current, "wlf_compact_on_cpu", False):
        return True

    def compact_here(device) -> bool:
        return device.type == "cpu" or current(device)

    compact_here.wlf_compact_on_cpu = True
    trl_utils._use_triton = compact_here
    return True


def make_grpo_trainer(
    run: GRPORun, rows: Sequence[Mapping[str, Any]] | None = None, model=None, tokenizer=None
):
    """A ``trl.GRPOTrainer`` for the run (rows, model and tokenizer built when not given)."""
    import os

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from trl import GRPOTrainer

    r = run.resolved()
    score_completion_tokens_only()
    if model is None or tokenizer is None:
        model, tokenizer = load_model(r.model, r.size, r.dtype)
    if r.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, r.adapter, is_trainable=True)
    rows = build_rows(r) if rows is None else rows
    kwargs: dict[str, Any] = {}
    if r.multi_turn:
        kwargs["reward_funcs"] = [week_score]
        kwargs["rollout_func"] = make_rollout_func(
            r.preset, r.show_options, r.include_system, r.reward.decoder, r.reward.judge
        )
    else:
        kwargs["reward_funcs"] = reward_funcs(r.reward)
    if r.lora and not r.adapter:
        kwargs["peft_config"] = lora_config(r.size)
    return GRPOTrainer(
        model=model,
        args=make_grpo_config(r),
        train_dataset=prompt_dataset(rows),
        processing_class=tokenizer,
        **kwargs,
    )


def reward_curves(log_history: Sequence[Mapping[str, Any]]) -> dict[str, list]:
    """Per-step curves from a trainer's ``log_history``: ``step``, ``reward``, ``reward_std``,
    ``frac_reward_zero_std`` and every ``rewards/<name>/mean`` and logged extra metric."""
    rows = [h for h in log_history if "reward" in h]
    keys = ["reward", "reward_std", "frac_reward_zero_std"]
    keys += sorted({k for h in rows for k in h if k.startswith("rewards/") and k.endswith("/mean")})
    keys += [
        k
        for k in (
            "optimal_rate",
            "decoder_confidence",
            "week_optimal_rate",
            "week_quality",
            "week_early_end",
        )
        if any(k in h for h in rows)
    ]
    curves: dict[str, list] = {"step": [int(h.get("step", i + 1)) for i, h in enumerate(rows)]}
    for k in keys:
        curves[k] = [None if h.get(k) is None else float(h[k]) for h in rows]
    return curves


def window_mean(values: Sequence[float | None], first: bool, window: int) -> float:
    """Mean of the first (or last) ``window`` non-missing values (NaN when there are none)."""
    vals = [v for v in values if v is not None and not math.isnan(v)]
    part = vals[:window] if first else vals[-window:]
    return float(sum(part) / len(part)) if part else float("nan")


def plot_reward_curves(
    curves: Mapping[str, list], path: str | Path, title: str = "GRPO reward"
) -> Path:
    """Reward (total and components) and ``frac_reward_zero_std`` against the step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (ax, ax2) = plt.subplots(
        2, 1, figsize=(7, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    steps = curves.get("step", [])
    for k, v in curves.items():
        if k in ("step", "reward_std", "frac_reward_zero_std") or not v:
            continue
        label = k.replace("rewards/", "").replace("/mean", "")
        ax.plot(
            steps,
            [float("nan") if x is None else x for x in v],
            marker=".",
            lw=2.5 if k == "reward" else 1.2,
            label=label,
        )
    ax.set_ylabel("mean per step")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    flat = curves.get("frac_reward_zero_std", [])
    ax2.plot(steps, [float("nan") if x is None else x for x in flat], marker=".", color="grey")
    ax2.set_ylabel("flat groups")
    ax2.set_xlabel("step")
    ax2.set_ylim(-0.05, 1.05)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def save_trained(trainer, out: str | Path, lora: bool) -> dict[str, str]:
    """Save the trained weights: ``out/model`` (a full model folder, LoRA merged in) and, with
    LoRA, ``out/adapter`` too.  Returns the paths written."""
    out = Path(out)
    tok = trainer.processing_class
    model = trainer.accelerator.unwrap_model(trainer.model)
    paths = {}
    if lora:
        model.save_pretrained(out / "adapter")
        tok.save_pretrained(out / "adapter")
        paths["adapter"] = str(out / "adapter")
        model = model.merge_and_unload()
    model.save_pretrained(out / "model")
    tok.save_pretrained(out / "model")
    paths["model"] = str(out / "model")
    return paths


def train_grpo(
    run: GRPORun,
    rows: Sequence[Mapping[str, Any]] | None = None,
    json_path: str | Path | None = None,
) -> dict[str, Any]:
    """Train one GRPO run and save model, trainer log, reward curves (JSON + PNG) and the result.

    With ``run.resume`` it continues from the newest checkpoint in ``out/checkpoints`` (if any)
    up to ``run.steps`` in total.  Returns the result dict (also written to ``out/result.json``
    and ``json_path``): ``model, steps, wall_s, reward_mean_first, reward_mean_last,
    reward_curve, frac_reward_zero_std`` plus components, mode and paths.
    """
    import torch

    r = run.resolved()
    if r.threads and r.size != "gpu-1.5b":  # else torch's default (honours OMP_NUM_THREADS)
        torch.set_num_threads(r.threads)
    out = Path(r.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    trainer = make_grpo_trainer(r, rows)
    resume_from = last_checkpoint(out) if r.resume else None
    start_step = int(Path(resume_from).name.split("-")[-1]) if resume_from else 0
    trainer.train(resume_from_checkpoint=resume_from)
    wall = time.perf_counter() - t0
    paths = save_trained(trainer, out, bool(r.lora))
    history = trainer.state.log_history
    (out / "trainer_log.json").write_text(json.dumps(history, indent=1))
    curves = reward_curves(history)
    (out / "reward_curves.json").write_text(json.dumps(curves, indent=1))
    mode = "multi-turn" if r.multi_turn else "single-turn"
    png = plot_reward_curves(
        curves, out / "grpo_reward_curves.png", f"GRPO {mode} on {r.preset} ({r.size})"
    )
    window = max(1, len(curves["reward"]) // 4)
    result = {
        "model": r.model,
        "steps": int(trainer.state.global_step),
        "steps_this_run": int(trainer.state.global_step) - start_step,
        "wall_s": round(wall, 3),
        "reward_mean_first": window_mean(curves["reward"], True, window),
        "reward_mean_last": window_mean(curves["reward"], False, window),
        "reward_window": window,
        "reward_curve": curves["reward"],
        "frac_reward_zero_std": curves["frac_reward_zero_std"],
        "components": {
            k: v for k, v in curves.items() if k not in ("step", "reward", "frac_reward_zero_std")
        },
        "mode": mode,
        "preset": r.preset,
        "size": r.size,
        "lora": bool(r.lora),
        "resumed_from": resume_from,
        "trl_version": _trl_version(),
        "config": (
            {k: v for k, v in asdict(r).items() if k != "reward"} | {"reward": asdict(r.reward)}
        ),
        "paths": {
            **paths,
            "trainer_log": str(out / "trainer_log.json"),
            "reward_curves": str(out / "reward_curves.json"),
            "reward_png": str(png),
        },
    }
    (out / "result.json").write_text(json.dumps(result, indent=1))
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(result, indent=1))
    return result


def _trl_version() -> str:
    import trl

    return trl.__version__


def format_result(result: Mapping[str, Any]) -> str:
    """A few lines summarising a run for the terminal."""
    lines = [
        f"GRPO {result['mode']} on {result['preset']} "
        f"({result['size']}{', LoRA' if result['lora'] else ''}): "
        f"{result['steps']} steps in {result['wall_s']:.1f} s",
        f"  reward  first {result['reward_mean_first']:.4f} "
        f"-> last {result['reward_mean_last']:.4f} "
        f"(mean of {result['reward_window']} logged step(s) each)",
        "  frac_reward_zero_std "
        + " ".join(f"{x:.2f}" for x in result["frac_reward_zero_std"] if x is not None),
    ]
    for k, v in result["components"].items():
        vals = [x for x in v if x is not None]
        if vals and k != "reward_std":
            lines.append(f"  {k:<28} first {vals[0]:.4f}  last {vals[-1]:.4f}")
    if result.get("resumed_from"):
        lines.append(f"  resumed from {result['resumed_from']}")
    lines.append(f"  saved {result['paths']['model']}; curves {result['paths']['reward_png']}")
    return "\n".join(lines)
