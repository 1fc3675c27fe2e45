"""Multi-turn GRPO: whole weeks played by the model through TRL's experimental ``rollout_func``.

The model replies, the simulator steps, the next event's message is appended as environment
tokens masked out of the loss (``env_mask``), and the week's final rubric score is the reward
(``llm_bridge.rewards.week_score``).  Every TRL-facing detail (pinned: trl 1.16) lives in
:func:`make_rollout_func`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wlf_jax.reference import Week, sample_scenario_py, week_to_json

from ..consequence import get_solver, read_reply
from ..prompts import render_chat
from .data import restore_week, week_description, week_messages

WEEK_KEY = "week_state"
"""Key of the user message that carries a multi-turn row's Monday state.  ``rollout_func``
receives only the prompts, so the state travels inside them; chat templates ignore the key."""


def week_rows(
    preset: str = "week_v2",
    n_weeks: int = 8,
    seed: int = 0,
    show_options: bool = True,
    include_system: bool = True,
) -> list[dict[str, Any]]:
    """Multi-turn dataset rows: Monday morning of ``n_weeks`` sampled weeks (each its own order
    and chance draws).  A GRPO group plays the same week, so its scores are comparable."""
    solver = get_solver(preset)
    rng = random.Random(seed)
    rows = []
    for _ in range(n_weeks):
        w = solver.ref.reset(*sample_scenario_py(solver.rules, rng))
        msgs = week_messages(w, preset, show_options, include_system)
        state = json.dumps(week_to_json(w))
        prompt = [{**m, WEEK_KEY: state if m["role"] == "user" else ""} for m in msgs]
        rows.append({"prompt": prompt, "state_json": state, "preset": preset})
    return rows


def followup_message(w: Week, preset: str, show_options: bool = True) -> str:
    """The user message of a later decision in a multi-turn week: the event prompt without the
    "so far" history (the conversation already holds it)."""
    from ..prompts import event_prompt

    desc = week_description(w, preset)
    desc["history"] = []
    return event_prompt(desc, show_options=show_options)


@dataclass
class WeekTranscript:
    """One week played by the model: token ids for TRL and what happened."""

    prompt_ids: list[int]
    completion_ids: list[int] = field(default_factory=list)
    env_mask: list[int] = field(default_factory=list)  # 1 = model token, 0 = environment token
    replies: list[str] = field(default_factory=list)
    actions: list[int] = field(default_factory=list)
    optimal: list[bool] = field(default_factory=list)  # see play_weeks_with_model: template twin
    qualities: list[float] = field(default_factory=list)
    score: float = 0.0
    early_end: bool = False


def _env_text(tokenizer, messages: list[dict[str, str]], reply: str, next_user: str | None) -> str:
    """Text the chat template puts after an assistant ``reply``: its end-of-turn marker and,
    when ``next_user`` is given, the next user turn and the generation prompt."""
    from ..prompts import plain_chat_format

    marker = "\x00REPLY\x00"
    with_reply = messages + [{"role": "assistant", "content": marker}]
    full = with_reply + ([{"role": "user", "content": next_user}] if next_user is not None else [])
    try:
        a = render_chat(tokenizer, with_reply, add_generation_prompt=False)
        b = render_chat(tokenizer, full, add_generation_prompt=next_user is not None)
    except ValueError:
        a = plain_chat_format(with_reply, False)
        b = plain_chat_format(full, next_user is not None)
    if not b.startswith(a[: a.index(marker)]):
        a, b = plain_chat_format(with_reply, False), plain_chat_format(full, next_user is not None)
    return b[a.index(marker) + len(marker) :]


def play_weeks_with_model(
    model,
    tokenizer,
    weeks: Sequence[Week],
    preset: str,
    *,
    max_new_tokens: int = 48,
    temperature: float = 1.0,
    top_p: float = 1.0,
    show_options: bool = True,
    include_system: bool = True,
    decoder: str = "default",
    judge: str = "default",
    track_optimal: bool = True,
) -> list[WeekTranscript]:
    """Play whole weeks with a causal LM, all weeks batched turn by turn.

    Each turn: the model continues its own token history (prompt + earlier replies + environment
    turns); the reply is decoded and judged and the simulator steps with that action and quality;
    the next event's message, rendered by the chat template, is appended as environment tokens.
    The generated tokens are used as-is, so what TRL trains on is exactly what was sampled.

    ``optimal`` (logged, not rewarded) compares each decoded action with the optimal action of
    the *template twin*: the same decisions taken with the rule book's template qualities.  The
    solver's memo covers those states after one solve; the judged qualities would make every
    week a fresh subtree to solve (Q* depends on the quality sum through the rubric).
    """
    import torch

    from ..decode import get_decoder
    from ..judge import get_judge

    solver = get_solver(preset)
    ref = solver.ref
    dec, jud = get_decoder(decoder), get_judge(judge)
    eos_ids = _eos_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids[0]
    device = next(model.parameters()).device
    state = list(weeks)
    twins = list(weeks)
    convo = [week_messages(w, preset, show_options, include_system) for w in state]
    out = [
        WeekTranscript(
            prompt_ids=tokenizer(render_chat(tokenizer, m), add_special_tokens=False)["input_ids"]
        )
        for m in convo
    ]
    active = [i for i, w in enumerate(state) if not w.done]
    while active:
        contexts = [out[i].prompt_ids + out[i].completion_ids for i in active]
        width = max(len(c) for c in contexts)
        ids = torch.full((len(active), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(active), width), dtype=torch.long)
        for r, c in enumerate(contexts):
            ids[r, width - len(c) :] = torch.tensor(c)
            mask[r, width - len(c) :] = 1
        kwargs = dict(max_new_tokens=max_new_tokens, pad_token_id=pad_id, eos_token_id=eos_ids)
        kwargs.update(
            dict(do_sample=True, temperature=temperature, top_p=top_p)
            if temperature > 0
            else dict(do_sample=False)
        )
        with torch.no_grad():
            gen = model.generate(
                input_ids=ids.to(device), attention_mask=mask.to(device), **kwargs
            )[:, width:].tolist()
        still = []
        for r, i in enumerate(active):
            toks = gen[r]
            cut = next((k + 1 for k, t in enumerate(toks) if t in eos_ids), None)
            reply_ids = toks[:cut] if cut else [t for t in toks if t != pad_id]
            ended = cut is not None
            reply = tokenizer.decode(reply_ids, skip_special_tokens=True).strip()
            w = state[i]
            e = w.slot_event[w.slot]
            read = read_reply(dec, jud, e, reply, w, preset)
            action, q = read.action, read.quality
            t = out[i]
            if track_optimal:
                t.optimal.append(action == solver.optimal_action(twins[i]))
                twins[i], _ = ref.step(twins[i], action)
            t.replies.append(reply)
            t.actions.append(action)
            t.qualities.append(q)
            w2, _ = ref.step(w, action, q)
            state[i] = w2
            nxt = None if w2.done else followup_message(w2, preset, show_options)
            env = _env_text(tokenizer, convo[i], reply, nxt)
            if ended and env.startswith(tokenizer.decode(reply_ids[-1:])):
                # the model already closed its turn
                env = env[len(tokenizer.decode(reply_ids[-1:])) :]
            env_ids = (
                tokenizer(env, add_special_tokens=False)["input_ids"]
                if (nxt is not None or not ended)
                else []
            )
            t.completion_ids += reply_ids + env_ids
            t.env_mask += [1] * len(reply_ids) + [0] * len(env_ids)
            convo[i] = (
                convo[i]
                + [{"role": "assistant", "content": reply}]
                + ([{"role": "user", "content": nxt}] if nxt is not None else [])
            )
            if w2.done:
                t.score, t.early_end = float(ref.score(w2)), bool(w2.early_end)
            else:
                still.append(i)
        active = still
    return out


def _eos_ids(model, tokenizer) -> list[int]:
    """End-of-turn token ids: the generation config's and the tokenizer's."""
    ids = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def make_rollout_func(
    preset: str,
    show_options: bool = True,
    include_system: bool = True,
    decoder: str = "default",
    judge: str = "default",
) -> Callable:
    """TRL ``rollout_func`` (experimental in trl 1.16) that plays whole weeks.

    The contract as trl 1.16 calls it: ``rollout_func(prompts, trainer)`` gets this process's
    prompts (already repeated ``num_generations`` times by TRL's sampler, one week each) and
    returns ``prompt_ids``, ``completion_ids``, ``logprobs`` (None: TRL recomputes them) and
    ``env_mask`` (0 = environment tokens, excluded from the loss); every other key is handed to
    the reward functions as a column (``week_score``, ``week_optimal_rate``, ...).  Generation uses
    the trainer's model with ``transformers.generate`` (no vLLM needed), sampling with the
    config's temperature / top_p and ``max_completion_length`` tokens per reply.
    """

    def rollout_func(prompts: list, trainer) -> dict[str, list]:
        model = trainer.accelerator.unwrap_model(trainer.model)
        tokenizer = trainer.processing_class
        weeks = [restore_week(_week_state(p)) for p in prompts]
        was_training = model.training
        model.eval()
        try:
            played = play_weeks_with_model(
                model,
                tokenizer,
                weeks,
                preset,
                max_new_tokens=trainer.args.max_completion_length,
                temperature=trainer.args.temperature,
                top_p=trainer.args.top_p,
                show_options=show_options,
                include_system=include_system,
                decoder=decoder,
                judge=judge,
            )
        finally:
            model.train(was_training)
        return {
            "prompt_ids": [t.prompt_ids for t in played],
            "completion_ids": [t.completion_ids for t in played],
            "logprobs": None,
            "env_mask": [t.env_mask for t in played],
            "week_score": [t.score for t in played],
            "week_optimal_rate": [sum(t.optimal) / max(len(t.optimal), 1) for t in played],
            "week_quality": [sum(t.qualities) / max(len(t.qualities), 1) for t in played],
            "week_early_end": [float(t.early_end) for t in played],
            "week_decisions": [len(t.actions) for t in played],
        }

    return rollout_func


def _week_state(prompt: Sequence[Mapping[str, Any]]) -> str:
    for m in prompt:
        if m.get(WEEK_KEY):
            return m[WEEK_KEY]
    raise ValueError(
        f"multi-turn prompt carries no {WEEK_KEY!r}: build the dataset with week_rows()"
    )
