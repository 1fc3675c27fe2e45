"""GRPO against the simulator: TRL's ``GRPOTrainer`` rewarded by the exact value of what a reply does.

Single turn (default)
    The prompts are decision states visited by the simulator under a mix of policies (random,
    strategic, optimal, accept-everything, epsilon-optimal), so early, late, healthy and
    exhausted states all appear.  Each dataset row carries its state (``state_json``, the
    :func:`wlf_jax.reference.week_to_json` of the plain-Python :class:`Week`) and its ``preset``;
    TRL passes those columns to the reward functions as keyword arguments, which restore the
    state and score the completion:

        reward = Q*(state, decoded action) normalised in that state (optimal -> 1, worst -> 0)
               + judge_weight * judge quality
               - format penalties (empty, over length, several contradictory decisions,
                                  illegible text: word salad, repetition, keyword lists)

    The three terms are three TRL reward functions (``q_value``, ``judge_quality``,
    ``format_penalty``) combined by ``reward_weights``, so TRL logs each component separately
    (``rewards/<name>/mean``) next to the total ``reward`` and ``frac_reward_zero_std`` (the share
    of groups whose completions all scored alike: no learning signal there).

Multi turn (``multi_turn=True``)
    Whole weeks through TRL's experimental ``rollout_func`` (pinned: trl 1.16).  The model
    replies, the simulator steps, the next event's message is appended as environment tokens
    masked out of the loss (``env_mask``), and the week's final rubric score is the reward.
    Every TRL-facing detail of this lives in :func:`make_rollout_func`.

Heavy imports (torch, transformers, trl, datasets, peft) happen inside functions.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from wlf_jax.events import DAYS, EVENTS, EVENT_IDS, STAKEHOLDERS, STATUS_NAMES, STATUS_VALUES
from wlf_jax.params import COMPONENT_NAMES
from wlf_jax.reference import Week, week_from_json, week_to_json

from .consequence import get_solver, read_reply, use_solver  # noqa: F401 - use_solver is re-exported
from .prompts import build_messages, render_chat

TRL_VERSION = "1.16.0"
"""The TRL version the trainer glue (config fields, ``rollout_func`` contract) is written against."""

SOURCE_POLICIES: tuple[str, ...] = ("random", "strategic", "optimal", "accept_all", "eps_optimal")
"""Policies that walk the simulator to collect prompt states (see :func:`visit_states`)."""

PRESET_SIZES: tuple[str, ...] = ("cpu-smoke", "cpu-smollm2", "gpu-1.5b")


# ---- the simulator side: solver, states, prompts --------------------------------------------

def sample_scenario(rules: Mapping[str, Any], rng: random.Random) -> tuple[list[int], list[float]]:
    """A week's chance in plain Python, as ``wlf_jax.state.sample_scenario`` draws it: the
    ``slot_shuffle`` slots permuted among themselves and one uniform draw per event."""
    slot_event = list(rules["slot_event"])
    shuffled = [t for t, s in enumerate(rules["slot_shuffle"]) if s]
    events = [slot_event[t] for t in shuffled]
    rng.shuffle(events)
    for t, e in zip(shuffled, events):
        slot_event[t] = e
    uniforms = [rng.random() for _ in range(len(rules["energy_delta"]))]
    return slot_event, uniforms


def _display(x, floats: bool) -> float:
    """A quantity as the prompts show it, in [0, 1]."""
    return round(float(x), 2) if floats else int(x) / 100


def describe_week(w: Week, preset: str) -> dict[str, Any]:
    """The ``WorkWeek.describe`` dict of a plain-Python week (host only, no JAX arrays).

    Same keys and values as ``WorkWeek().describe(state, params)`` for the JAX state of the
    same week (tested), so :func:`llm_bridge.prompts.build_messages` renders the same prompt.
    """
    solver = get_solver(preset)
    ref = solver.ref
    floats = ref.floats
    event = None
    if not w.done:
        e = w.slot_event[w.slot]
        spec = EVENTS[e]
        event = {
            "index": e, "id": spec.id, "title": spec.title, "sender": spec.sender,
            "channel": spec.channel, "stakeholder": spec.stakeholder, "body": spec.body,
            "actions": [{"index": i, "name": a.name, "meaning": a.meaning} for i, a in enumerate(spec.actions)],
        }
    history = [{"event": EVENTS[e].id, "action": EVENTS[e].actions[w.actions[e]].name}
               for e in w.slot_event if e >= 0 and w.actions[e] >= 0]
    return {
        "preset": preset,
        "day": DAYS[w.day],
        "day_index": w.day,
        "decisions": w.count,
        "event": event,
        "status": {
            "energy": _display(w.values[0], floats),
            "sprint_health": _display(w.values[1], floats),
            "trust": {n: _display(t, floats) for n, t in zip(STAKEHOLDERS, w.values[2:])},
            **{n: STATUS_VALUES[n][v] for n, v in zip(STATUS_NAMES, w.status)},
        },
        "pending": [EVENTS[i].id for i in range(len(EVENTS)) if i in w.pending],
        "history": history,
        "rubric": dict(zip(COMPONENT_NAMES, ref.components(w))),
        "score": ref.score(w),
        "done": w.done,
        "early_end": w.early_end,
    }


def week_messages(w: Week, preset: str, show_options: bool = True,
                  include_system: bool = True, compact: bool = False) -> list[dict[str, str]]:
    """Chat messages (system + user) for the current decision of a plain-Python week."""
    return build_messages(describe_week(w, preset), show_options=show_options, include_system=include_system,
                          compact=compact)


@lru_cache(maxsize=None)
def _fixed_map(name: str) -> tuple[int, ...]:
    from agents.fixed import action_map

    return tuple(int(a) for a in action_map(name))


def _policy_action(name: str, w: Week, preset: str, rng: random.Random) -> int:
    """Action of a source policy in decision state ``w``."""
    e = w.slot_event[w.slot]
    if name == "random":
        return rng.randrange(3)
    if name in ("strategic", "accept_all"):
        return _fixed_map(name)[e]
    if name == "optimal":
        return get_solver(preset).optimal_action(w)
    if name == "eps_optimal":
        return rng.randrange(3) if rng.random() < 0.3 else get_solver(preset).optimal_action(w)
    raise KeyError(f"unknown source policy {name!r}; known: {', '.join(SOURCE_POLICIES)}")


def visit_states(preset: str, n_weeks: int, policies: Sequence[str] = SOURCE_POLICIES,
                 seed: int = 0) -> list[tuple[str, Week]]:
    """Play ``n_weeks`` weeks with the source policies in turn (week ``i`` uses
    ``policies[i % len]``) and return every decision state visited, as ``(policy, week)``."""
    solver = get_solver(preset)
    ref = solver.ref
    rng = random.Random(seed)
    out: list[tuple[str, Week]] = []
    for i in range(n_weeks):
        name = policies[i % len(policies)]
        w = ref.reset(*sample_scenario(solver.rules, rng))
        while not w.done:
            out.append((name, w))
            w, _ = ref.step(w, _policy_action(name, w, preset, rng))
    return out


def state_row(w: Week, preset: str, source: str = "", show_options: bool = True,
              include_system: bool = True, compact: bool = False) -> dict[str, Any]:
    """One prompt-dataset row: the chat prompt plus what the reward needs to restore the state."""
    return {
        "prompt": week_messages(w, preset, show_options, include_system, compact),
        "state_json": json.dumps(week_to_json(w)),
        "preset": preset,
        "event": EVENT_IDS[w.slot_event[w.slot]],
        "day": int(w.day),
        "energy": float(w.values[0]) / (1.0 if get_solver(preset).ref.floats else 100.0),
        "decision": int(w.count),
        "source": source,
    }


def prompt_rows(preset: str = "week_v2", n_rows: int = 64, seed: int = 0,
                policies: Sequence[str] = SOURCE_POLICIES, show_options: bool = True,
                include_system: bool = True, compact: bool = False) -> list[dict[str, Any]]:
    """``n_rows`` distinct decision states (deduplicated on what the future depends on),
    drawn at random from the states the source policies visit, as dataset rows."""
    from agents.exact import state_key

    rng = random.Random(seed + 1)
    seen, pool = set(), []
    n_weeks = max(len(policies), n_rows // 2)
    for attempt in range(8):
        for src, w in visit_states(preset, n_weeks, policies, seed=seed + 1000 * attempt):
            key = state_key(get_solver(preset).canonical(w))
            if key not in seen:
                seen.add(key)
                pool.append((src, w))
        if len(pool) >= n_rows:
            break
    rng.shuffle(pool)
    return [state_row(w, preset, src, show_options, include_system, compact) for src, w in pool[:n_rows]]


def restore_week(state_json: str | Mapping[str, Any]) -> Week:
    """The :class:`Week` a row carries (``state_json`` as a string or an already parsed dict)."""
    d = json.loads(state_json) if isinstance(state_json, str) else state_json
    return week_from_json(d)


def prompt_dataset(rows: Sequence[Mapping[str, Any]]):
    """A ``datasets.Dataset`` of rows (conversational ``prompt`` column + state columns)."""
    from datasets import Dataset

    return Dataset.from_list([dict(r) for r in rows])


# ---- the reward -------------------------------------------------------------------------------

@dataclass(frozen=True)
class RewardConfig:
    """Weights and limits of the single-turn reward."""

    judge_weight: float = 0.3
    empty_penalty: float = 1.0
    over_length_penalty: float = 0.5
    unreadable_penalty: float = 0.5
    """On top of the unreadable consequence (the worst action's value, quality 0): a reply that
    commits to no decision (echo, loop, someone else's message, contradictory decisions)."""
    max_chars: int = 700
    decoder: str = "default"
    judge: str = "default"
    illegible_penalty: float = 1.5
    """Times (1 - legibility): word salad, repetition, keyword lists, junk or text aimed at a grader
    would otherwise earn the value of whatever action the decoder reads into it."""


def completion_text(completion: Any) -> str:
    """The text of a TRL completion: a string, or conversational ``[{"role", "content"}]``."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        return str(completion.get("content") or "")
    if isinstance(completion, Sequence):
        return "".join(completion_text(m) for m in completion if not isinstance(m, Mapping)
                       or m.get("role", "assistant") == "assistant")
    return str(completion)


def normalised_q(qs: Sequence[float], action: int) -> float:
    """Q*(s, a) rescaled within the state: the best action -> 1, the worst -> 0 (1 when all
    actions are worth the same)."""
    lo, hi = min(qs), max(qs)
    if hi - lo < 1e-12:
        return 1.0
    return (qs[action] - lo) / (hi - lo)


LEGIBILITY_GATES: tuple[str, ...] = ("stuffing", "repetition", "injection", "junk")


def legibility(event: int | str, text: str) -> float:
    """How much ``text`` reads as a message, in [0, 1]: the product of the default judge's
    anti-gaming gates (keyword stuffing, repetition, grader-directed text, junk; not topic
    relevance, so a terse "No." stays legible).  At least 0.5 for 99.9% of the labelled replies;
    1 for an empty reply (emptiness has its own penalty)."""
    from .judge import judge_details

    gates = judge_details(event, text or "").gates
    out = 1.0
    for k in LEGIBILITY_GATES:
        out *= gates.get(k, 1.0)
    return out


def format_penalties(event: int | str, text: str, cfg: RewardConfig = RewardConfig(),
                     unreadable: bool | None = None) -> dict[str, float]:
    """The format penalties of a reply (each >= 0): ``empty``, ``over_length``, ``unreadable``
    (the decoder's verdict: a reply that commits to no decision; decoded here unless given) and
    ``illegible`` (``illegible_penalty * (1 - legibility)``)."""
    from .decode import get_decoder

    stripped = (text or "").strip()
    if unreadable is None:
        unreadable = get_decoder(cfg.decoder).decode(event, stripped).unreadable
    return {
        "empty": cfg.empty_penalty if not stripped else 0.0,
        "over_length": cfg.over_length_penalty if len(stripped) > cfg.max_chars else 0.0,
        "unreadable": cfg.unreadable_penalty if unreadable else 0.0,
        "illegible": cfg.illegible_penalty * (1.0 - legibility(event, stripped)),
    }


@dataclass(frozen=True)
class ScoredReply:
    """Everything the reward knows about one completion in one state."""

    action: int
    confidence: float
    optimal: bool
    q: tuple[float, float, float]
    q_norm: float
    quality: float
    penalties: dict[str, float]
    unreadable: str | None = None
    """The kind of unreadable reply (``action`` is then the worst action it is read as)."""

    @property
    def penalty(self) -> float:
        return sum(self.penalties.values())

    def total(self, cfg: RewardConfig = RewardConfig()) -> float:
        """The scalar reward: ``q_norm + judge_weight * quality - penalties``."""
        return self.q_norm + cfg.judge_weight * self.quality - self.penalty


def score_reply(w: Week, preset: str, text: str, cfg: RewardConfig = RewardConfig()) -> ScoredReply:
    """Decode and judge ``text`` written in decision state ``w`` and look up Q* of its action."""
    from .decode import get_decoder
    from .judge import get_judge

    solver = get_solver(preset)
    e = w.slot_event[w.slot]
    read = read_reply(get_decoder(cfg.decoder), get_judge(cfg.judge), e, text or "", w, preset)
    d = read.decoded
    qs = solver.q(w)
    return ScoredReply(
        action=read.action, confidence=float(d.confidence),
        optimal=not d.unreadable and read.action == solver.optimal_action(w),
        q=tuple(qs), q_norm=normalised_q(qs, read.action), quality=read.quality,
        penalties=format_penalties(e, text, cfg, unreadable=d.unreadable), unreadable=d.reason,
    )


class RewardScorer:
    """The single-turn reward as TRL reward functions, sharing one cache of scored replies.

    ``funcs()`` returns ``[q_value, judge_quality, format_penalty]`` and ``weights()`` the
    matching ``reward_weights`` ``[1, judge_weight, 1]`` (``format_penalty`` is <= 0).  Each
    function has TRL's signature ``f(prompts, completions, **columns) -> list[float]`` and reads
    the ``state_json`` and ``preset`` columns.  ``q_value`` also logs ``optimal_rate`` and
    ``decoder_confidence`` through TRL's ``log_metric`` when given.
    """

    def __init__(self, cfg: RewardConfig = RewardConfig()):
        self.cfg = cfg
        self._cache: dict[tuple[str, str, str], ScoredReply] = {}

    def score(self, state_json: str, preset: str, text: str) -> ScoredReply:
        key = (state_json, preset, text)
        hit = self._cache.get(key)
        if hit is None:
            if len(self._cache) > 50_000:
                self._cache.clear()
            hit = self._cache[key] = score_reply(restore_week(state_json), preset, text, self.cfg)
        return hit

    def _scored(self, completions, state_json, preset) -> list[ScoredReply]:
        return [self.score(s, p, completion_text(c)) for c, s, p in zip(completions, state_json, preset)]

    def funcs(self) -> list[Callable[..., list[float]]]:
        """The three reward functions (their ``__name__`` is what TRL logs)."""
        scorer = self

        def q_value(prompts, completions, state_json, preset, **kw) -> list[float]:
            scored = scorer._scored(completions, state_json, preset)
            log = kw.get("log_metric")
            if log and scored:
                log("optimal_rate", sum(s.optimal for s in scored) / len(scored))
                log("decoder_confidence", sum(s.confidence for s in scored) / len(scored))
            return [s.q_norm for s in scored]

        def judge_quality(prompts, completions, state_json, preset, **kw) -> list[float]:
            return [s.quality for s in scorer._scored(completions, state_json, preset)]

        def format_penalty(prompts, completions, state_json, preset, **kw) -> list[float]:
            return [-s.penalty for s in scorer._scored(completions, state_json, preset)]

        return [q_value, judge_quality, format_penalty]

    def weights(self) -> list[float]:
        return [1.0, self.cfg.judge_weight, 1.0]

    def __call__(self, prompts, completions, state_json, preset, **kw) -> list[float]:
        """The total reward in one call (for evaluation outside TRL)."""
        return [s.total(self.cfg) for s in self._scored(completions, state_json, preset)]


# ---- multi turn: whole weeks ------------------------------------------------------------------

WEEK_KEY = "week_state"
"""Key of the user message that carries a multi-turn row's Monday state.  ``rollout_func``
receives only the prompts, so the state travels inside them; chat templates ignore the key."""


def week_rows(preset: str = "week_v2", n_weeks: int = 8, seed: int = 0, show_options: bool = True,
              include_system: bool = True) -> list[dict[str, Any]]:
    """Multi-turn dataset rows: Monday morning of ``n_weeks`` sampled weeks (each its own order
    and chance draws).  A GRPO group plays the same week, so its scores are comparable."""
    solver = get_solver(preset)
    rng = random.Random(seed)
    rows = []
    for _ in range(n_weeks):
        w = solver.ref.reset(*sample_scenario(solver.rules, rng))
        msgs = week_messages(w, preset, show_options, include_system)
        state = json.dumps(week_to_json(w))
        prompt = [{**m, WEEK_KEY: state if m["role"] == "user" else ""} for m in msgs]
        rows.append({"prompt": prompt, "state_json": state, "preset": preset})
    return rows


def followup_message(w: Week, preset: str, show_options: bool = True) -> str:
    """The user message of a later decision in a multi-turn week: the event prompt without the
    "so far" history (the conversation already holds it)."""
    from .prompts import event_prompt

    desc = describe_week(w, preset)
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
    from .prompts import plain_chat_format

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
    return b[a.index(marker) + len(marker):]


def play_weeks_with_model(model, tokenizer, weeks: Sequence[Week], preset: str, *, max_new_tokens: int = 48,
                          temperature: float = 1.0, top_p: float = 1.0, show_options: bool = True,
                          include_system: bool = True, decoder: str = "default", judge: str = "default",
                          track_optimal: bool = True) -> list[WeekTranscript]:
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

    from .decode import get_decoder
    from .judge import get_judge

    solver = get_solver(preset)
    ref = solver.ref
    dec, jud = get_decoder(decoder), get_judge(judge)
    eos_ids = _eos_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids[0]
    device = next(model.parameters()).device
    state = list(weeks)
    twins = list(weeks)
    convo = [week_messages(w, preset, show_options, include_system) for w in state]
    out = [WeekTranscript(prompt_ids=tokenizer(render_chat(tokenizer, m), add_special_tokens=False)["input_ids"])
           for m in convo]
    active = [i for i, w in enumerate(state) if not w.done]
    while active:
        contexts = [out[i].prompt_ids + out[i].completion_ids for i in active]
        width = max(len(c) for c in contexts)
        ids = torch.full((len(active), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(active), width), dtype=torch.long)
        for r, c in enumerate(contexts):
            ids[r, width - len(c):] = torch.tensor(c)
            mask[r, width - len(c):] = 1
        kwargs = dict(max_new_tokens=max_new_tokens, pad_token_id=pad_id, eos_token_id=eos_ids)
        kwargs.update(dict(do_sample=True, temperature=temperature, top_p=top_p) if temperature > 0 else dict(do_sample=False))
        with torch.no_grad():
            gen = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), **kwargs)[:, width:].tolist()
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
                env = env[len(tokenizer.decode(reply_ids[-1:])):]  # the model already closed its turn
            env_ids = tokenizer(env, add_special_tokens=False)["input_ids"] if (nxt is not None or not ended) else []
            t.completion_ids += reply_ids + env_ids
            t.env_mask += [1] * len(reply_ids) + [0] * len(env_ids)
            convo[i] = convo[i] + [{"role": "assistant", "content": reply}] + (
                [{"role": "user", "content": nxt}] if nxt is not None else [])
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


def make_rollout_func(preset: str, show_options: bool = True, include_system: bool = True,
                      decoder: str = "default", judge: str = "default") -> Callable:
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
                model, tokenizer, weeks, preset, max_new_tokens=trainer.args.max_completion_length,
                temperature=trainer.args.temperature, top_p=trainer.args.top_p, show_options=show_options,
                include_system=include_system, decoder=decoder, judge=judge)
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
    raise ValueError(f"multi-turn prompt carries no {WEEK_KEY!r}: build the dataset with week_rows()")


def week_score(prompts, completions, week_score, **kw) -> list[float]:
    """Multi-turn reward: the final rubric score of the week the completion played (logs the
    decoded-action optimality rate, mean judged quality and early-end rate too)."""
    log = kw.get("log_metric")
    if log and week_score:
        for name in ("week_optimal_rate", "week_quality", "week_early_end"):
            if name in kw:
                log(name, sum(kw[name]) / len(kw[name]))
    return [float(s) for s in week_score]


# ---- configuration ----------------------------------------------------------------------------

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

    def resolved(self) -> "GRPORun":
        """A copy with every ``None`` filled from the size preset."""
        d = size_defaults(self.size, self.multi_turn)
        return replace(self, **{k: (getattr(self, k) if getattr(self, k) is not None else v) for k, v in d.items()})


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
        return dict(lora=False, steps=4, n_prompts=16 if not multi_turn else 4, num_generations=4,
                    batch_size=4, max_completion_length=48 if not multi_turn else 24, learning_rate=5e-4,
                    temperature=1.0, beta=0.0, save_steps=2, threads=2, compact=False)
    if size == "cpu-smollm2":
        return dict(lora=True, steps=200, n_prompts=256 if not multi_turn else 16, num_generations=4,
                    batch_size=8 if not multi_turn else 4, max_completion_length=48, learning_rate=2e-4,
                    temperature=1.0, beta=0.0, save_steps=20, threads=None, compact=not multi_turn)
    if size == "gpu-1.5b":
        return dict(lora=True, steps=300, n_prompts=512 if not multi_turn else 128, num_generations=8,
                    batch_size=8 if not multi_turn else 4, max_completion_length=192 if not multi_turn else 160,
                    learning_rate=5e-5, temperature=0.9, beta=0.0, save_steps=25, threads=None, compact=False)
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
        reward_weights=None if r.multi_turn else RewardScorer(r.reward).weights(),
        log_completions=False,
        disable_tqdm=True,
        dataloader_num_workers=0,
        shuffle_dataset=True,
    )
    if gpu:
        kw.update(bf16=True, gradient_checkpointing=True, gradient_accumulation_steps=4,
                  warmup_steps=10, lr_scheduler_type="cosine", max_grad_norm=0.2,
                  use_vllm=vllm_available() and not r.multi_turn, vllm_mode="colocate",
                  vllm_gpu_memory_utilization=0.35)
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
    return LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.05 if size == "gpu-1.5b" else 0.0, task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])


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

    from .llm_policy import inference_dtype
    from .models import resolve_model

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
    return prompt_rows(r.preset, r.n_prompts, r.seed, show_options=r.show_options, include_system=r.include_system,
                       compact=r.compact)


def make_trainer(run: GRPORun, rows: Sequence[Mapping[str, Any]] | None = None, model=None, tokenizer=None):
    """A ``trl.GRPOTrainer`` for the run (rows, model and tokenizer built when not given)."""
    import os

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from trl import GRPOTrainer

    r = run.resolved()
    if model is None or tokenizer is None:
        model, tokenizer = load_model(r.model, r.size, r.dtype)
    if r.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, r.adapter, is_trainable=True)
    rows = build_rows(r) if rows is None else rows
    kwargs: dict[str, Any] = {}
    if r.multi_turn:
        kwargs["reward_funcs"] = [week_score]
        kwargs["rollout_func"] = make_rollout_func(r.preset, r.show_options, r.include_system,
                                                   r.reward.decoder, r.reward.judge)
    else:
        kwargs["reward_funcs"] = RewardScorer(r.reward).funcs()
    if r.lora and not r.adapter:
        kwargs["peft_config"] = lora_config(r.size)
    return GRPOTrainer(model=model, args=make_grpo_config(r), train_dataset=prompt_dataset(rows),
                       processing_class=tokenizer, **kwargs)


def reward_curves(log_history: Sequence[Mapping[str, Any]]) -> dict[str, list]:
    """Per-step curves from a trainer's ``log_history``: ``step``, ``reward``, ``reward_std``,
    ``frac_reward_zero_std`` and every ``rewards/<name>/mean`` and logged extra metric."""
    rows = [h for h in log_history if "reward" in h]
    keys = ["reward", "reward_std", "frac_reward_zero_std"]
    keys += sorted({k for h in rows for k in h if k.startswith("rewards/") and k.endswith("/mean")})
    keys += [k for k in ("optimal_rate", "decoder_confidence", "week_optimal_rate", "week_quality",
                         "week_early_end") if any(k in h for h in rows)]
    curves: dict[str, list] = {"step": [int(h.get("step", i + 1)) for i, h in enumerate(rows)]}
    for k in keys:
        curves[k] = [None if h.get(k) is None else float(h[k]) for h in rows]
    return curves


def window_mean(values: Sequence[float | None], first: bool, window: int) -> float:
    """Mean of the first (or last) ``window`` non-missing values (NaN when there are none)."""
    vals = [v for v in values if v is not None and not math.isnan(v)]
    part = vals[:window] if first else vals[-window:]
    return float(sum(part) / len(part)) if part else float("nan")


def plot_reward_curves(curves: Mapping[str, list], path: str | Path, title: str = "GRPO reward") -> Path:
    """Reward (total and components) and ``frac_reward_zero_std`` against the step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    steps = curves.get("step", [])
    for k, v in curves.items():
        if k in ("step", "reward_std", "frac_reward_zero_std") or not v:
            continue
        label = k.replace("rewards/", "").replace("/mean", "")
        ax.plot(steps, [float("nan") if x is None else x for x in v], marker=".",
                lw=2.5 if k == "reward" else 1.2, label=label)
    ax.set_ylabel("mean per step")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax2.plot(steps, [float("nan") if x is None else x for x in curves.get("frac_reward_zero_std", [])],
             marker=".", color="grey")
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


def train_grpo(run: GRPORun, rows: Sequence[Mapping[str, Any]] | None = None,
               json_path: str | Path | None = None) -> dict[str, Any]:
    """Train one GRPO run and save model, trainer log, reward curves (JSON + PNG) and the result.

    With ``run.resume`` it continues from the newest checkpoint in ``out/checkpoints`` (if any)
    up to ``run.steps`` in total.  Returns the result dict (also written to ``out/result.json``
    and ``json_path``): ``model, steps, wall_s, reward_mean_first, reward_mean_last,
    reward_curve, frac_reward_zero_std`` plus components, mode and paths.
    """
    import torch

    r = run.resolved()
    if r.threads and r.size != "gpu-1.5b":
        torch.set_num_threads(r.threads)
    out = Path(r.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    trainer = make_trainer(r, rows)
    resume_from = last_checkpoint(out) if r.resume else None
    trainer.train(resume_from_checkpoint=resume_from)
    wall = time.perf_counter() - t0
    paths = save_trained(trainer, out, bool(r.lora))
    history = trainer.state.log_history
    (out / "trainer_log.json").write_text(json.dumps(history, indent=1))
    curves = reward_curves(history)
    (out / "reward_curves.json").write_text(json.dumps(curves, indent=1))
    mode = "multi-turn" if r.multi_turn else "single-turn"
    png = plot_reward_curves(curves, out / "grpo_reward_curves.png", f"GRPO {mode} on {r.preset} ({r.size})")
    window = max(1, len(curves["reward"]) // 4)
    result = {
        "model": r.model,
        "steps": int(trainer.state.global_step),
        "wall_s": round(wall, 3),
        "reward_mean_first": window_mean(curves["reward"], True, window),
        "reward_mean_last": window_mean(curves["reward"], False, window),
        "reward_window": window,
        "reward_curve": curves["reward"],
        "frac_reward_zero_std": curves["frac_reward_zero_std"],
        "components": {k: v for k, v in curves.items() if k not in ("step", "reward", "frac_reward_zero_std")},
        "mode": mode,
        "preset": r.preset,
        "size": r.size,
        "lora": bool(r.lora),
        "resumed_from": resume_from,
        "trl_version": _trl_version(),
        "config": {k: v for k, v in asdict(r).items() if k != "reward"} | {"reward": asdict(r.reward)},
        "paths": {**paths, "trainer_log": str(out / "trainer_log.json"),
                  "reward_curves": str(out / "reward_curves.json"), "reward_png": str(png)},
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
        f"GRPO {result['mode']} on {result['preset']} ({result['size']}{', LoRA' if result['lora'] else ''}): "
        f"{result['steps']} steps in {result['wall_s']:.1f} s",
        f"  reward  first {result['reward_mean_first']:.4f} -> last {result['reward_mean_last']:.4f} "
        f"(mean of {result['reward_window']} logged step(s) each)",
        "  frac_reward_zero_std " + " ".join(f"{x:.2f}" for x in result["frac_reward_zero_std"] if x is not None),
    ]
    for k, v in result["components"].items():
        vals = [x for x in v if x is not None]
        if vals and k != "reward_std":
            lines.append(f"  {k:<28} first {vals[0]:.4f}  last {vals[-1]:.4f}")
    if result.get("resumed_from"):
        lines.append(f"  resumed from {result['resumed_from']}")
    lines.append(f"  saved {result['paths']['model']}; curves {result['paths']['reward_png']}")
    return "\n".join(lines)

