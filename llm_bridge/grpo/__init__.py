"""GRPO against the simulator: TRL's ``GRPOTrainer`` rewarded by the exact value of what a
reply does.

Single turn (default)
    The prompts are decision states the simulator visits under a mix of policies
    (:mod:`.data`); the reward is three TRL reward functions, ``q_value``, ``judge_quality`` and
    ``format_penalty``, in :mod:`llm_bridge.rewards`.

Multi turn (``multi_turn=True``)
    Whole weeks through TRL's experimental ``rollout_func`` (:mod:`.multiturn`); the week's final
    rubric score is the reward (``llm_bridge.rewards.week_score``).

Configuration and training (:class:`GRPORun`, :func:`train_grpo`) are in :mod:`.trainer`.
"""

from .data import (
    prompt_dataset,
    prompt_rows,
    restore_week,
    state_row,
    visit_states,
    week_messages,
)
from .multiturn import WEEK_KEY, make_rollout_func, play_weeks_with_model, week_rows
from .trainer import (
    GRPORun,
    build_rows,
    format_result,
    grpo_config_kwargs,
    load_model,
    lora_config,
    make_grpo_config,
    make_grpo_trainer,
    size_defaults,
    train_grpo,
    vllm_available,
)

__all__ = [
    "GRPORun",
    "WEEK_KEY",
    "build_rows",
    "format_result",
    "grpo_config_kwargs",
    "load_model",
    "lora_config",
    "make_grpo_config",
    "make_grpo_trainer",
    "make_rollout_func",
    "play_weeks_with_model",
    "prompt_dataset",
    "prompt_rows",
    "restore_week",
    "size_defaults",
    "state_row",
    "train_grpo",
    "visit_states",
    "vllm_available",
    "week_messages",
    "week_rows",
]
