"""GRPO over the served week: TRL's ``GRPOTrainer(environment_factory=...)`` whose single tool,
``send_message(text)``, plays the week on a running `wlf serve` through the OpenEnv client.

TRL (1.16) builds one environment per rollout with ``environment_factory()``, calls
``reset(**row)`` before generation (the returned text is appended to the prompt), exposes the
environment's public methods as tools, and scores each rollout with ``get_reward()``.  So
trainers that talk OpenEnv get the same week as everyone else: same decoder, judge, rewards.

    trainer = build_trainer("http://127.0.0.1:8000", "/path/to/model", "out/", seeds=range(64))
    trainer.train()

torch, transformers, trl and datasets are imported inside the functions that need them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from .environment import MAX_TEXT_BYTES, SESSION_CLOSED, WeekAction

INTRO = (
    "Your week starts now. Answer each message by calling the send_message tool with the "
    "reply you would send, one call per message, until the week is over.\n\n"
)


def clip_utf8(text: str, limit: int = MAX_TEXT_BYTES) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8 (whole characters)."""
    data = text.encode("utf-8", errors="ignore")
    return text if len(data) <= limit else data[:limit].decode("utf-8", errors="ignore")


def step_report(obs) -> str:
    """What ``send_message`` returns: how the reply was read, then the next situation."""
    last = obs.last or {}
    head = (
        f"Your reply was read as '{last.get('action', '?')}' (message quality "
        f"{last.get('quality', 0.0):.2f}); reward {obs.reward or 0.0:+.3f}."
    )
    return head + "\n\n" + obs.situation


class WeekToolEnv:
    """One rollout's week on the server, for ``GRPOTrainer(environment_factory=...)``.

    Public methods are what TRL sees: ``reset`` (called with the dataset row), the tool
    ``send_message`` and ``get_reward`` (sum of the simulator's rewards of this week so far).
    Each instance keeps one WebSocket session open and reuses it across resets.
    """

    def __init__(self, base_url: str, preset: str = "week_v2"):
        self._base_url, self._preset = base_url, preset
        self._client = None
        self._return, self._done = 0.0, True

    def reset(self, seed: int | None = None, preset: str | None = None, **columns: Any) -> str:
        """Start the week ``seed`` (a dataset column; random when absent); returns its first
        situation."""
        kwargs = {"seed": None if seed is None else int(seed), "preset": preset or self._preset}
        try:
            result = self._session().reset(**kwargs)
        except Exception as exc:  # noqa: BLE001 - closed for idleness: the next call reconnects
            closed = type(exc).__name__ in ("ConnectionClosedOK", "ConnectionClosedError")
            if SESSION_CLOSED not in str(exc) and not closed:
                raise
            result = self._session().reset(**kwargs)
        self._return, self._done = 0.0, bool(result.done)
        return result.observation.situation

    def send_message(self, text: str) -> str:
        """Send your reply to the message you are answering now.

        Args:
            text: The message you send, in your own words, to the person who wrote to you.

        Returns:
            How your reply was read, then the next message of the week with your status, or the end-of-week summary.
        """
        if self._done:
            return "The week is over. There is nothing left to answer."
        result = self._session().step(WeekAction(message=clip_utf8(str(text))))
        self._return += float(result.reward or 0.0)
        self._done = bool(result.done)
        return step_report(result.observation)

    def get_reward(self) -> float:
        """The week's return so far: the sum of the simulator's rewards of the replies sent."""
        return float(self._return)

    def _session(self):
        """The open OpenEnv session (connected on first use)."""
        if self._client is None:
            from .client import WeekClient

            self._client = WeekClient(base_url=self._base_url).sync()
            self._client.connect()
        return self._client

    def _close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def environment_factory(base_url: str, preset: str = "week_v2"):
    """The zero-argument factory TRL wants: ``functools.partial(WeekToolEnv, base_url, preset)``."""
    return functools.partial(WeekToolEnv, base_url, preset)


def week_dataset(seeds: Iterable[int], preset: str = "week_v2"):
    """A ``datasets.Dataset`` with one row per week: the chat prompt (system prompt + intro) and
    the ``seed`` and ``preset`` columns that TRL passes to :meth:`WeekToolEnv.reset`."""
    from datasets import Dataset

    from llm_bridge.prompts import system_prompt

    seeds = [int(s) for s in seeds]
    prompt = [{"role": "system", "content": system_prompt()}, {"role": "user", "content": INTRO}]
    return Dataset.from_dict(
        {"prompt": [prompt] * len(seeds), "seed": seeds, "preset": [preset] * len(seeds)}
    )


def load_tokenizer(model_path: str, chat_template: str | None = None):
    """The model's tokenizer, left-padded; ``chat_template="qwen2_5"`` swaps in TRL's Qwen2.5
    template (tool calls as ``<tool_call>`` JSON), for models whose own template knows no tools,
    like the offline tiny model."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if chat_template == "qwen2_5":
        from trl.chat_template_utils import qwen2_5_chat_template

        tokenizer.chat_template = qwen2_5_chat_template
    elif chat_template:
        raise ValueError(f"unknown chat template {chat_template!r}; known: qwen2_5")
    return tokenizer


def build_trainer(
    base_url: str,
    model_path: str,
    output_dir: str,
    seeds: Iterable[int] = range(16),
    preset: str = "week_v2",
    max_steps: int = 10,
    num_generations: int = 4,
    batch_size: int = 4,
    max_completion_length: int = 512,
    max_tool_calls: int = 16,
    learning_rate: float = 1e-6,
    chat_template: str | None = None,
    seed: int = 0,
    **config: Any,
):
    """A ``GRPOTrainer`` whose rollouts play weeks on the server at ``base_url`` through the tool
    ``send_message``; the reward is each week's return (``WeekToolEnv.get_reward``).

    Extra keyword arguments go to ``GRPOConfig``.  Runs on the CPU when no GPU is present.
    """
    import os

    import torch
    from trl import GRPOConfig, GRPOTrainer

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    cuda = torch.cuda.is_available()
    args = GRPOConfig(
        output_dir=output_dir,
        per_device_train_batch_size=batch_size,
        num_generations=num_generations,
        max_completion_length=max_completion_length,
        max_tool_calling_iterations=max_tool_calls,
        max_steps=max_steps,
        learning_rate=learning_rate,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=not cuda,
        bf16=cuda,
        seed=seed,
        **config,
    )
    return GRPOTrainer(
        model=model_path,
        args=args,
        train_dataset=week_dataset(seeds, preset),
        processing_class=load_tokenizer(model_path, chat_template),
        environment_factory=environment_factory(base_url, preset),
    )


def close_environments(trainer) -> None:
    """Close the WebSocket sessions of a trainer's environments."""
    for pool in getattr(trainer, "_environment_pool", {}).values():
        for env in pool:
            env._close()
